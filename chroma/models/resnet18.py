"""torchvision's ResNet-18 (papers nampouri A.2 and efthymiadis 3.1), laid out as keras-hub's ResNetBackbone.

Keras ships no ResNet-18, so it is built here. Its layers carry the names, and
its functional graph the layout, of keras-hub's ResNetBackbone, so the
weights of keras-hub's "resnet_18_imagenet" preset load into it one to one
without keras-hub.
"""

import json
from pathlib import Path

import h5py
import keras

from chroma.models.blocks import batch_norm

KERAS_HUB_PRESET = "resnet_18_imagenet"
KERAS_HUB_WEIGHTS_FILE = "model.weights.h5"
KERAS_HUB_CONFIG = {  # ResNetBackbone's config in that preset: the only architecture the encoder can take
    "input_conv_filters": [64],
    "input_conv_kernel_sizes": [7],
    "stackwise_num_filters": [64, 128, 256, 512],
    "stackwise_num_blocks": [2, 2, 2, 2],
    "stackwise_num_strides": [1, 2, 2, 2],
    "block_type": "basic_block",
    "use_pre_activation": False,
}
WHERE_TO_GET_WEIGHTS = (
    "Pass backbone_weights=None (chroma reproduce: --asset resnet18=none) to train the encoder from scratch. "
    "For the ImageNet weights, on a machine online run `python -c \"import kagglehub; "
    f"print(kagglehub.model_download('keras/resnetv1/keras/{KERAS_HUB_PRESET}/1'))\"` and copy the directory "
    f"it prints (keras-hub's {KERAS_HUB_PRESET} preset: config.json, {KERAS_HUB_WEIGHTS_FILE}) here; "
    "a .weights.h5 file saved from a ResNetUNetGenerator's `encoder` works too."
)


def _he_init():
    """torchvision's ResNet initialisation, kaiming_normal_(mode="fan_out"); a fresh instance per layer."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters, kernel_size, strides, padding, name):
    # PyTorch pads a stride-2 convolution symmetrically, TensorFlow's 'same' does not: stride-2 convolutions get
    # an explicit ZeroPadding2D and 'valid', so pretrained weights see the pixels they were trained on.
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=_he_init(), name=name,
    )


def _norm(name):
    return batch_norm(gamma_initializer="ones", name=name)


def _basic_block(x, filters, stride, name):
    """torchvision's BasicBlock: two 3x3 conv + BN, the first with ReLU; a 1x1 conv + BN shortcut if it downsamples."""
    if stride > 1:
        shortcut = _conv(filters, 1, stride, "valid", f"{name}_0_conv")(x)
        shortcut = _norm(f"{name}_0_bn")(shortcut)
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_1_pad")(x)
    else:
        shortcut = x
    x = _conv(filters, 3, stride, "valid" if stride > 1 else "same", f"{name}_1_conv")(x)
    x = _norm(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(filters, 3, 1, "same", f"{name}_2_conv")(x)
    x = _norm(f"{name}_2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def resnet18_encoder(name="resnet18", input_channels=3, stacks=4):
    """ResNet-18 (figure 12) as a functional model: RGB (B,H,W,3) -> its five feature maps.

    Outputs, at H=W=256: the stem's ReLU (64@128, the skip before the last
    upsampling) and layer1..layer4 (64@64, 128@32, 256@16, 512@8).
    `input_channels` and `stacks` (how many of layer1..layer4 to keep, each
    adding one output) build the cut, grayscale ResNet-18 of paper
    efthymiadis's baseline (resnet_cnn.py).
    """
    image = keras.Input((None, None, input_channels))
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(image)
    x = _conv(64, 7, 2, "valid", "conv1_conv")(x)
    x = _norm("conv1_bn")(x)
    stem = keras.layers.Activation("relu", name="conv1_relu")(x)
    # Zero padding before the max pool equals PyTorch's -inf padding here: its input is a ReLU's, never negative.
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(stem)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    features = [stem]
    for stack, filters in enumerate(KERAS_HUB_CONFIG["stackwise_num_filters"][:stacks]):
        for block in range(KERAS_HUB_CONFIG["stackwise_num_blocks"][stack]):
            stride = KERAS_HUB_CONFIG["stackwise_num_strides"][stack] if block == 0 else 1
            x = _basic_block(x, filters, stride, f"stack{stack}_block{block}")
        features.append(x)
    return keras.Model(image, features, name=name)


def load_keras_hub_weights(encoder, preset_dir):
    """Copies keras-hub's ResNet-18 preset (config.json + model.weights.h5) into `encoder`, read with h5py.

    Keras stores a functional model's weights under layers/<class>[_<n>]/vars/<i>,
    numbering each layer class in the model's layer order. The encoder's graph
    is keras-hub's, so its convolutions and batch norms, in order, are the
    preset's conv2d, conv2d_1, ... and batch_normalization, batch_normalization_1, ...
    Every shape is checked, and the layer name where the file records one.
    """
    preset_dir = Path(preset_dir)
    config_path, weights_path = preset_dir / "config.json", preset_dir / KERAS_HUB_WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(f"{preset_dir} is not a keras-hub preset directory: it has no {path.name}. "
                                    + WHERE_TO_GET_WEIGHTS)
    config = json.loads(config_path.read_text())
    backbone = config.get("config", {})
    differing = {key: backbone.get(key) for key, value in KERAS_HUB_CONFIG.items() if backbone.get(key) != value}
    if config.get("class_name") != "ResNetBackbone" or differing:
        raise ValueError(f"{config_path} is not keras-hub's ResNet-18 ({KERAS_HUB_PRESET}): "
                         f"class {config.get('class_name')!r}, differing settings {differing}")

    counters = {}
    with h5py.File(weights_path, "r") as weights_file:
        for layer in encoder.layers:
            if not layer.weights:
                continue
            kind = {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization"}[type(layer).__name__]
            counters[kind] = counters.get(kind, -1) + 1
            entry = f"layers/{kind}" + (f"_{counters[kind]}" if counters[kind] else "") + "/vars"
            if entry not in weights_file:
                raise ValueError(f"{weights_path} has no {entry} for encoder layer {layer.name}: "
                                 "not the weights of a keras-hub ResNet-18")
            stored = weights_file[entry]
            stored_name = stored.attrs.get("name")
            if stored_name is not None and stored_name != layer.name:
                raise ValueError(f"{weights_path}: {entry} holds layer {stored_name}, expected {layer.name}")
            if len(stored) != len(layer.weights):
                raise ValueError(f"{weights_path}: {entry} holds {len(stored)} variables, "
                                 f"encoder layer {layer.name} has {len(layer.weights)}")
            for index, variable in enumerate(layer.weights):
                value = stored[str(index)][()]
                if value.shape != tuple(variable.shape):
                    raise ValueError(f"{weights_path}: {entry}/{index} has shape {value.shape}, encoder variable "
                                     f"{layer.name}/{variable.name} has {tuple(variable.shape)}")
                variable.assign(value)
