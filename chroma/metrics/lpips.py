"""LPIPS, the learned perceptual distance of Zhang, Isola, Efros, Shechtman & Wang 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", as a Keras model; paper 002 reports it (section 4)
with AlexNet, as Zhang et al. advise.

The feature network is torchvision's AlexNet `features` (or VGG16's), rebuilt layer for layer, so the
PyTorch weights of the `lpips` package load one to one. Nothing is downloaded: the weights come from a
local .npz file holding the state dict of `lpips.LPIPS` under torchvision's names, in PyTorch's layout
(conv kernels OIHW; the loader transposes them to Keras' HWIO). On a machine that is online, with
`pip install torch torchvision lpips`:

    import numpy as np, lpips
    net = "alex"  # or "vgg"
    state = lpips.LPIPS(net=net).state_dict()  # torchvision's ImageNet backbone + lpips' v0.1 heads
    arrays = {}
    for key, tensor in state.items():
        if key.startswith("net.slice"):  # lpips keeps torchvision's indices: net.slice2.3.weight is features.3.weight
            arrays["features." + key.split(".", 2)[2]] = tensor.numpy()
        elif key.startswith("lin") and not key.startswith("lins."):  # lins.N... repeats linN...
            arrays[key] = tensor.numpy()
    np.savez(f"lpips_{net}.npz", **arrays)

then `LPIPS(net, weights="lpips_alex.npz")`. `weights=None` gives random weights: right for tests of the
mechanics, meaningless as a perceptual distance.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from chroma import color
from chroma.metrics.image_quality import _as_image_pair

# torchvision's `features` Sequentials: ("conv", index, filters, kernel size, stride, padding), each
# convolution followed by a ReLU at index + 1, and ("pool", index, size, stride), max pooling that drops
# the remainder as PyTorch does. `taps`: the convolutions whose ReLU LPIPS compares (section 3):
# AlexNet's relu1..relu5, VGG16's relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
FEATURE_NETWORKS = {
    "alex": {
        "layers": (
            ("conv", 0, 64, 11, 4, 2), ("pool", 2, 3, 2),
            ("conv", 3, 192, 5, 1, 2), ("pool", 5, 3, 2),
            ("conv", 6, 384, 3, 1, 1),
            ("conv", 8, 256, 3, 1, 1),
            ("conv", 10, 256, 3, 1, 1),
        ),
        "taps": (0, 3, 6, 8, 10),
    },
    "vgg": {
        "layers": (
            ("conv", 0, 64, 3, 1, 1), ("conv", 2, 64, 3, 1, 1), ("pool", 4, 2, 2),
            ("conv", 5, 128, 3, 1, 1), ("conv", 7, 128, 3, 1, 1), ("pool", 9, 2, 2),
            ("conv", 10, 256, 3, 1, 1), ("conv", 12, 256, 3, 1, 1), ("conv", 14, 256, 3, 1, 1), ("pool", 16, 2, 2),
            ("conv", 17, 512, 3, 1, 1), ("conv", 19, 512, 3, 1, 1), ("conv", 21, 512, 3, 1, 1), ("pool", 23, 2, 2),
            ("conv", 24, 512, 3, 1, 1), ("conv", 26, 512, 3, 1, 1), ("conv", 28, 512, 3, 1, 1),
        ),
        "taps": (2, 7, 14, 21, 28),
    },
}
# The smallest side whose last tap is still at least one pixel.
MIN_IMAGE_SIZE = {"alex": 31, "vgg": 16}

# lpips' ScalingLayer: its inputs in [-1, 1] are shifted and scaled to the statistics of ImageNet images.
INPUT_SHIFT = (-0.030, -0.088, -0.188)
INPUT_SCALE = (0.458, 0.448, 0.450)
# lpips' normalize_tensor: features / (their channel-wise L2 norm + 1e-10).
NORM_EPSILON = 1e-10

HOW_TO_GET_WEIGHTS = (
    "Convert the weights of the `lpips` package once, on a machine that is online, with the recipe in the "
    "docstring of chroma.metrics.lpips (torch + lpips -> .npz), or pass weights=None for random weights "
    "(tests only: they measure nothing perceptual)."
)


def feature_network(net):
    """torchvision's AlexNet or VGG16 `features` as a functional model: RGB (B,H,W,3) -> the five tapped ReLUs.

    Convolutions are named features_<index> after their place in torchvision's Sequential.
    """
    layout = FEATURE_NETWORKS[net]
    image = keras.Input((None, None, 3))
    x, taps = image, []
    for kind, index, *settings in layout["layers"]:
        if kind == "conv":
            filters, kernel_size, stride, padding = settings
            # Explicit symmetric zero padding, as PyTorch pads: 'same' would pad AlexNet's stride-4 conv1 otherwise.
            x = keras.layers.ZeroPadding2D(padding, name=f"features_{index}_pad")(x)
            x = keras.layers.Conv2D(filters, kernel_size, strides=stride, activation="relu",
                                    name=f"features_{index}")(x)
            if index in layout["taps"]:
                taps.append(x)
        else:
            size, stride = settings
            x = keras.layers.MaxPooling2D(size, strides=stride, name=f"features_{index}")(x)
    return keras.Model(image, taps, name=f"{net}_features")


def _tap_channels(net):
    layout = FEATURE_NETWORKS[net]
    return [layer[2] for layer in layout["layers"] if layer[0] == "conv" and layer[1] in layout["taps"]]


@keras.saving.register_keras_serializable(package="chroma")
class LPIPS(keras.Model):
    """LPIPS distance (Zhang et al. 2018, eq. 1): two RGB batches in [0, 1], (B,H,W,3) each -> (B,) distances.

    Both images go through the feature network; each tapped feature map is normalised to unit length along
    its channels, the squared difference of the two is weighed channel-wise by a non-negative 1x1 "lin" head
    without bias, averaged over space, and the five layers' values are summed. Identical images score 0;
    larger is more different.

    Args:
        net: "alex" (AlexNet, the default, as in Zhang et al. and paper 002) or "vgg" (VGG16).
        weights: path to a .npz of converted `lpips` weights (see the module docstring), or None for random
            weights, good for tests only. Nothing is ever downloaded.

    Images must be at least 31x31 pixels for AlexNet, 16x16 for VGG16.
    """

    def __init__(self, net="alex", weights=None, **kwargs):
        if net not in FEATURE_NETWORKS:
            raise ValueError(f"LPIPS net must be one of {sorted(FEATURE_NETWORKS)}, got {net!r}")
        super().__init__(**kwargs)
        self.net = net
        self.features = feature_network(net)
        self.heads = []
        for tap, channels in enumerate(_tap_channels(net)):
            # NonNeg is lpips' clamp_weights: negative weights would let distances go below zero.
            head = keras.layers.Conv2D(
                1, 1, use_bias=False, kernel_initializer=keras.initializers.RandomUniform(0.0, 1.0 / channels),
                kernel_constraint=keras.constraints.NonNeg(), name=f"lin{tap}",
            )
            head.build((None, None, None, channels))
            self.heads.append(head)
        if weights is not None:
            self.load_npz_weights(weights)
        # Every variable exists now, whatever the image size: nothing is left to build on the first call.
        self.built = True

    def torch_variables(self):
        """The model's variables under their names in the .npz (PyTorch's state dict keys)."""
        variables = {}
        for kind, index, *_ in FEATURE_NETWORKS[self.net]["layers"]:
            if kind == "conv":
                layer = self.features.get_layer(f"features_{index}")
                variables[f"features.{index}.weight"] = layer.kernel
                variables[f"features.{index}.bias"] = layer.bias
        for tap, head in enumerate(self.heads):
            variables[f"lin{tap}.model.1.weight"] = head.kernel
        return variables

    def load_npz_weights(self, path):
        """Loads a .npz of PyTorch-layout `lpips` weights (module docstring); checks every name and shape first."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no LPIPS weights at {path}. " + HOW_TO_GET_WEIGHTS)
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        variables = self.torch_variables()
        unexpected = sorted(set(arrays) - set(variables))
        if unexpected:
            raise ValueError(f"{path} holds arrays that LPIPS-{self.net} does not have: {unexpected}")
        for key, variable in variables.items():
            if key not in arrays:
                raise ValueError(f"{path} has no array {key!r}, which LPIPS-{self.net} needs. " + HOW_TO_GET_WEIGHTS)
            if arrays[key].shape != _torch_shape(variable):
                raise ValueError(f"{path}: array {key!r} has shape {arrays[key].shape}, LPIPS-{self.net} needs "
                                 f"{_torch_shape(variable)} (PyTorch layout)")
            if key.startswith("lin") and np.any(arrays[key] < 0):
                raise ValueError(f"{path}: array {key!r} has negative weights; LPIPS heads are non-negative")
        for key, variable in variables.items():
            # PyTorch's conv kernels are OIHW, Keras' HWIO.
            variable.assign(arrays[key].transpose(2, 3, 1, 0) if arrays[key].ndim == 4 else arrays[key])

    def call(self, rgb_a, rgb_b):
        rgb_a, rgb_b = _as_image_pair(rgb_a, rgb_b, channels=3, min_size=MIN_IMAGE_SIZE[self.net])
        features_a = self.features(self._scale(rgb_a))
        features_b = self.features(self._scale(rgb_b))
        distance = 0.0
        for head, tap_a, tap_b in zip(self.heads, features_a, features_b):
            squared_difference = keras.ops.square(_unit_normalize(tap_a) - _unit_normalize(tap_b))
            distance = distance + keras.ops.mean(head(squared_difference), axis=[1, 2, 3])
        return distance

    def _scale(self, rgb):
        shift = keras.ops.convert_to_tensor(INPUT_SHIFT, dtype=rgb.dtype)
        scale = keras.ops.convert_to_tensor(INPUT_SCALE, dtype=rgb.dtype)
        return (2.0 * rgb - 1.0 - shift) / scale

    def get_config(self):
        # A saved model carries its weights, so the .npz path (which may not exist where it is loaded) is not kept.
        return {**super().get_config(), "net": self.net, "weights": None}


def _torch_shape(variable):
    """A Keras variable's shape in PyTorch's layout: HWIO conv kernels are OIHW there."""
    shape = tuple(variable.shape)
    return tuple(shape[axis] for axis in (3, 2, 0, 1)) if len(shape) == 4 else shape


def _unit_normalize(features):
    norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(features), axis=-1, keepdims=True))
    return features / (norm + NORM_EPSILON)


def lpips_distance(true_rgb, pred_rgb, model):
    """LPIPS of each image pair, (B,), with an `LPIPS` model: RGB batches in [0, 1], (B,H,W,3)."""
    return model(true_rgb, pred_rgb)


def evaluate_lpips(colorizer, dataset, model):
    """Mean LPIPS over every image of a batched chroma dataset, the way `chroma.evaluation.evaluate` scores.

    `colorizer` maps a batch to scaled ab, as for `evaluate`; both the truth and the prediction keep the
    batch's L. Add the result to `evaluate`'s scores to get an "lpips" column:
    `scores["lpips"] = evaluate_lpips(colorizer, dataset, LPIPS(weights="lpips_alex.npz"))`.
    """
    total, count = 0.0, 0
    for batch in dataset:
        true_rgb = color.scaled_lab_to_rgb(batch["L"], batch["ab"])
        pred_rgb = color.scaled_lab_to_rgb(batch["L"], colorizer(batch))
        distances = lpips_distance(true_rgb, pred_rgb, model)
        total += float(tf.reduce_sum(distances))
        count += int(tf.size(distances))
    return total / count
