"""ChromaGAN's generator (Vitoria, Raad & Ballester 2020), paper villarenteria's reference model (sections 2, 4.2.1).

Villarenteria section 2: "a pretrained VGG-16 model which then splits into two
tracks, one which produces a class distribution vector, and another which
produces chrominance information. Both branches are then fused by
concatenating the output features and then a single branch of Conv-Relu
layers with up-sampling in between follows". Layer sizes are ChromaGAN's
architecture figure as the public release builds it (pvitoria/ChromaGAN,
SOURCE/ChromaGAN.py, `colorization_model`), which villarenteria's Model A
ports (4.2.1).
"""

import warnings

import keras

from chroma.models.blocks import keras_weights_path, same_conv, upsampling_decoder
from chroma.models.generator import Generator

# VGG-16 up to block4_conv3 (three poolings) gives H/8; the global branch's two stride-2 convolutions H/32.
GLOBAL_REDUCTION = 32
TRUNK_OUTPUT = "block4_conv3"
VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _conv_relu_bn(filters, strides, name):
    """The release's order: convolution with ReLU, then batch norm, named <name>_conv and <name>_bn.

    The batch norm keeps Keras's defaults (momentum 0.99, epsilon 1e-3, gamma
    ones), which the Keras release uses; synchronized=True only makes its
    statistics those of the global batch under a distribution strategy (the
    paper's 8 TPU cores), as every trained batch norm in chroma is.
    """
    return [same_conv(filters, strides, name=f"{name}_conv"),
            keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")]


def _vgg16_to_block4(image_size, weights, channels):
    with warnings.catch_warnings():
        # Keras warns of inputs other than 1 or 3 channels; Model B's fourth (the caption) is meant.
        warnings.filterwarnings("ignore", "This model usually expects", UserWarning)
        vgg = keras.applications.VGG16(
            include_top=False, weights=weights, input_shape=(image_size, image_size, channels)
        )
    return keras.Model(vgg.input, vgg.get_layer(TRUNK_OUTPUT).output, name="vgg16_trunk")


def vgg16_trunk(image_size, weights, channels=3):
    """Three gray channels (S,S,3) -> VGG-16's block4_conv3, 512@S/8: its first 10 convolutions and 3 poolings.

    The release cuts keras.applications.VGG16(include_top=False) at layers[-6],
    which is block4_conv3. These weights are fine-tuned with the rest.
    channels=4 is villarenteria's Model B (4.2.3), whose caption channel follows
    the gray ones: block1_conv1 reads it through a kernel slice of its own,
    which starts random (Keras's Glorot) while every other weight is VGG-16's.
    """
    weights = keras_weights_path(
        weights, VGG16_NOTOP_FILE, "ChromaGANGenerator",
        "Copy the file there (keras.applications.VGG16(include_top=False, weights='imagenet') on a machine "
        "with internet writes it), or pass vgg_weights=<local weights file> or None for random weights.",
    )
    if channels == 3:
        return _vgg16_to_block4(image_size, weights, 3)
    trunk = _vgg16_to_block4(image_size, None, channels)
    if weights is not None:
        pretrained = _vgg16_to_block4(image_size, weights, 3)
        for layer in trunk.layers[1:]:
            values = pretrained.get_layer(layer.name).get_weights()
            if layer.name == "block1_conv1":
                kernel = layer.get_weights()[0]
                kernel[:, :, :3] = values[0]
                values[0] = kernel
            layer.set_weights(values)
    return trunk


def gray_input(scaled_l):
    """Scaled L (B,S,S,1) -> the trunk's three gray channels.

    The release feeds OpenCV's 8-bit L / 255 = L / 100, in [0, 1], tiled to
    three channels (its dataClass.py and np.tile(trainL, [1, 1, 1, 3]) in
    train), with no VGG mean subtraction.
    """
    return keras.ops.repeat((scaled_l + 1.0) / 2.0, 3, axis=-1)


def fuse(mid_level, global_vector):
    """Mid-level features (B,S/8,S/8,256) and the global vector (B,256) -> fused (B,S/8,S/8,512).

    The vector copied to every S/8 position, after the mid-level features (release order).
    """
    side = mid_level.shape[1]
    copies = keras.ops.tile(keras.ops.reshape(global_vector, (-1, 1, 1, 256)), (1, side, side, 1))
    return keras.ops.concatenate([mid_level, copies], axis=-1)


def check_image_size(model, image_size):
    """The class and global heads read a fixed (S/32)^2 x 512 map: S must be a multiple of 32."""
    if image_size % GLOBAL_REDUCTION:
        raise ValueError(f"{model} needs image_size divisible by {GLOBAL_REDUCTION}, got {image_size}")


def check_input_size(model, image_size, scaled_l):
    """Scaled L must be image_size x image_size, the size the global vector's weights were made for."""
    if any(side is not None and side != image_size for side in scaled_l.shape[1:3]):
        raise ValueError(
            f"{model}(image_size={image_size}) needs {image_size}x{image_size} inputs, got {tuple(scaled_l.shape[1:3])}"
        )


def global_features_network():
    """512@S/8 -> flat 512@S/32: four 3x3 convolutions of 512 (strides 2, 1, 2, 1), each ReLU + batch norm."""
    layers = []
    for index, strides in enumerate((2, 1, 2, 1), start=1):
        layers += _conv_relu_bn(512, strides, f"global{index}")
    return keras.Sequential(layers + [keras.layers.Flatten()], name="global_features")


def global_vector_network():
    """Flat global features -> the 256 vector tiled into the fusion: fully connected 1024, 512, 256.

    No activation, as in the release.
    """
    return keras.Sequential([keras.layers.Dense(units) for units in (1024, 512, 256)], name="global_vector")


def classification_network(num_classes):
    """Flat global features -> class logits: fully connected 4096, 4096, num_classes (no activation, as released).

    The release ends in a softmax; logits leave here, in float32 whatever the
    dtype policy, and the KL loss applies a log-softmax.
    """
    return keras.Sequential(
        [keras.layers.Dense(4096), keras.layers.Dense(4096), keras.layers.Dense(num_classes, dtype="float32")],
        name="classifier",
    )


def mid_level_network():
    """512@S/8 -> 256@S/8: two 3x3 convolutions, 512 then 256, each ReLU + batch norm."""
    return keras.Sequential(_conv_relu_bn(512, 1, "mid1") + _conv_relu_bn(256, 1, "mid2"), name="mid_level")


def colorization_network():
    """Fused 512@S/8 -> scaled ab (S, S, 2): Conv-ReLU layers with nearest-neighbour x2 upsampling between.

    1x1 conv 256, conv 128, up, conv 64, conv 64, up, conv 32, conv 2, up: Deep
    Koalarization's fusion convolution and decoder (both after Iizuka et al.),
    so it is built from them. The release's last conv is a sigmoid for its ab in
    [0, 1]; chroma's scaled ab is [-1, 1], so tanh, in float32 whatever the
    dtype policy.
    """
    return keras.Sequential([same_conv(256, kernel_size=1, name="fusion"), *upsampling_decoder().layers],
                            name="colorization")


@keras.saving.register_keras_serializable(package="chroma")
class ChromaGANGenerator(Generator):
    """{"L": scaled L (B,S,S,1)} -> {"ab": scaled ab (B,S,S,2), "class_logits": (B, num_classes)}, both float32.

    S is `image_size` (224 in ChromaGAN and villarenteria section 5): the class
    and global heads read a fixed (S/32)^2 x 512 map, so it must be a multiple
    of 32. `vgg_weights` initialises the VGG-16 trunk: None (random),
    "imagenet" (only from the Keras cache file, see keras_weights_cache) or a
    local weights file of keras.applications.VGG16(include_top=False).

    The class logits depend on the trunk and the global convolutions only; the
    ab output on everything but the class head. `num_classes=None` leaves the
    class head out, and the output is {"ab"} alone (paper villarenteria's
    figure 3: the release "without classification head"). Sub-networks are
    attributes, never lists, so tf.train.Checkpoint sees their weights.
    """

    def __init__(self, image_size=224, num_classes=1000, vgg_weights=None, **kwargs):
        super().__init__(**kwargs)
        check_image_size("ChromaGANGenerator", image_size)
        self.image_size = image_size
        self.num_classes = num_classes
        self.vgg_weights = vgg_weights
        self.trunk = vgg16_trunk(image_size, vgg_weights)
        self.global_features = global_features_network()
        self.global_vector = global_vector_network()
        if num_classes is not None:
            self.classifier = classification_network(num_classes)
        self.mid_level = mid_level_network()
        self.colorization = colorization_network()
        self.build({"L": (None, image_size, image_size, 1)})

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        check_input_size("ChromaGANGenerator", self.image_size, scaled_l)
        trunk = self.trunk(gray_input(scaled_l), training=training)
        global_features = self.global_features(trunk, training=training)
        fused = fuse(self.mid_level(trunk, training=training), self.global_vector(global_features, training=training))
        outputs = {"ab": self.colorization(fused, training=training)}
        if self.num_classes is not None:
            outputs["class_logits"] = self.classifier(global_features, training=training)
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "vgg_weights": self.vgg_weights,
        }

    @classmethod
    def from_config(cls, config):
        return rebuilt_with_random_vgg(cls, config)


def rebuilt_with_random_vgg(cls, config):
    """`cls` from its config with random VGG-16 weights, `vgg_weights` kept as configured.

    A .keras file holds every weight, so reloading never needs the VGG file.
    """
    config = dict(config)
    vgg_weights = config.pop("vgg_weights")
    model = cls(**config, vgg_weights=None)
    model.vgg_weights = vgg_weights
    return model
