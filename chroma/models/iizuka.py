"""CNN + classifier of paper efthymiadis, section 3.2 (figure 2): Iizuka et al.'s "Let there be Color!".

Six networks, each a Keras model attribute of IizukaColorizer: low-level
features, mid-level features, global features, classification, fusion and
colorization. Layer sizes are those section 3.2.1 lists; like the paper's
reference [18] (Joniak's implementation) the network has no batch norm, and
every layer has a bias and a ReLU except the class logits and the sigmoid
output convolution.
"""

import keras

from chroma.models.blocks import same_conv
from chroma.models.generator import Generator

# The low-level network's three stride-2 convolutions bring the image to 1/8 (28x28 at 224), the global
# network's two more to 1/32 (7x7), flattened into its first fully connected layer.
LOW_LEVEL_REDUCTION = 8
GLOBAL_REDUCTION = 32


def low_level_network():
    """Scaled L -> 512@H/8: six 3x3 convolutions, strides 2,1,2,1,2,1 in place of max pooling (3.2.1)."""
    layers = [same_conv(filters, strides) for filters, strides in
              ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))]
    return keras.Sequential(layers, name="low_level")


def mid_level_network():
    """512@H/8 -> 256@H/8: two 3x3 stride-1 convolutions, 512 then 256 channels."""
    return keras.Sequential([same_conv(512), same_conv(256)], name="mid_level")


def global_features_network(image_size):
    """512@H/8 -> (the 512 vector the classifier reads, the 256 vector the fusion layer reads).

    Four 3x3 convolutions of 512 channels, strides 2,1,2,1, flattened (7x7x512
    at 224), then fully connected layers of 1024 and 512, and a third of 256
    that feeds only the fusion layer.
    """
    side = image_size // LOW_LEVEL_REDUCTION
    low_level = keras.Input((side, side, 512))
    x = low_level
    for strides in (2, 1, 2, 1):
        x = same_conv(512, strides)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(1024, activation="relu")(x)
    for_classifier = keras.layers.Dense(512, activation="relu")(x)
    for_fusion = keras.layers.Dense(256, activation="relu", name="to_fusion")(for_classifier)
    return keras.Model(low_level, [for_classifier, for_fusion], name="global_features")


def classification_network(num_classes):
    """The global 512 vector -> class logits: fully connected 256 (ReLU), then num_classes.

    Logits, in float32 whatever the dtype policy: the cross-entropy applies the softmax.
    """
    return keras.Sequential(
        [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(num_classes, dtype="float32")],
        name="classifier",
    )


def fusion_network(image_size):
    """[mid-level 256@H/8, global 256 vector] -> 256@H/8.

    The global vector is copied to every position and concatenated, global
    first as section 3.2.1 names them, with the mid-level features (512
    channels); a 1x1 convolution brings them to 256.
    """
    side = image_size // LOW_LEVEL_REDUCTION
    mid_level = keras.Input((side, side, 256))
    global_vector = keras.Input((256,))
    tiled = keras.layers.Reshape((side, side, 256))(keras.layers.RepeatVector(side * side)(global_vector))
    fused = same_conv(256, kernel_size=1)(keras.layers.Concatenate()([tiled, mid_level]))
    return keras.Model([mid_level, global_vector], fused, name="fusion")


def colorization_network():
    """256@H/8 -> scaled ab (H, W, 2).

    Conv 128, up x2, conv 64, conv 64, up x2, conv 32, conv 2 with sigmoid, up
    x2; nearest-neighbour upsampling, 3x3 convolutions. The sigmoid's [0, 1] is
    mapped by 2s - 1 to [-1, 1], chroma's scaled ab. The last layers run in
    float32 whatever the dtype policy, so ab leaves in float32 under mixed precision.
    """
    return keras.Sequential(
        [
            same_conv(128), keras.layers.UpSampling2D(2),
            same_conv(64), same_conv(64), keras.layers.UpSampling2D(2),
            same_conv(32),
            same_conv(2, activation="sigmoid", dtype="float32"),
            keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32"),
            keras.layers.UpSampling2D(2, dtype="float32"),
        ],
        name="colorization",
    )


@keras.saving.register_keras_serializable(package="chroma")
class IizukaColorizer(Generator):
    """{"L": scaled L (B,S,S,1)} -> {"ab": scaled ab (B,S,S,2), "class_logits": (B, num_classes)} (section 3.2).

    S is `image_size` (224 in the paper, 3.2.3): the global network's first
    fully connected layer reads a fixed (S/32)^2 x 512 map, so every image must
    be resized to it; it must be a multiple of 32. `num_classes` (27 in the
    paper) has no default: the dataset's labels decide it. The sub-networks are
    attributes, never lists, so tf.train.Checkpoint sees their weights.

    The classification loss's gradient reaches only the classifier, the global
    and the low-level networks (3.2.3) by construction: the logits do not
    depend on the mid-level, fusion or colorization networks. `has_classifier`
    tells a training engine to add that loss.
    """

    has_classifier = True

    def __init__(self, num_classes, image_size=224, **kwargs):
        super().__init__(**kwargs)
        if image_size % GLOBAL_REDUCTION:
            raise ValueError(f"IizukaColorizer needs image_size divisible by {GLOBAL_REDUCTION}, got {image_size}")
        self.num_classes = num_classes
        self.image_size = image_size
        self.low_level = low_level_network()
        self.mid_level = mid_level_network()
        self.global_features = global_features_network(image_size)
        self.classifier = classification_network(num_classes)
        self.fusion = fusion_network(image_size)
        self.colorization = colorization_network()
        self.build({"L": (None, image_size, image_size, 1)})

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        if any(side is not None and side != self.image_size for side in scaled_l.shape[1:3]):
            raise ValueError(
                f"IizukaColorizer(image_size={self.image_size}) needs {self.image_size}x{self.image_size} inputs, "
                f"got {tuple(scaled_l.shape[1:3])}"
            )
        low_level = self.low_level(scaled_l, training=training)
        for_classifier, for_fusion = self.global_features(low_level, training=training)
        fused = self.fusion([self.mid_level(low_level, training=training), for_fusion], training=training)
        return {
            "ab": self.colorization(fused, training=training),
            "class_logits": self.classifier(for_classifier, training=training),
        }

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "image_size": self.image_size}
