"""ChromaGAN's class oracle: a frozen ImageNet VGG-16 whose class distribution of the gray image is the target of
the generator's class head (paper villarenteria section 5: "ChromaGAN uses a pretained VGG-16 as the 'oracle' of
correct labels"; the term L_s of section 2).
"""

import keras
import tensorflow as tf

from chroma.models.blocks import keras_weights_path

INPUT_SIZE = 224
CLASSES = 1000
VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


@keras.saving.register_keras_serializable(package="chroma")
class VGGClassOracle(keras.layers.Layer):
    """Scaled L (B,H,W,1) -> VGG-16's 1000 class probabilities (B, 1000), float32; nothing trainable.

    `weights`: None (random), "imagenet" (only from the Keras cache file, see
    keras_weights_cache) or a local weights file of
    keras.applications.VGG16(include_top=True). The image is resized to
    224x224 and always runs in inference mode.
    """

    def __init__(self, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.pretrained_weights = weights
        # Logits, not Keras's softmax: the softmax is taken in float32 below, so it sums to 1 under mixed precision.
        self.network = keras.applications.VGG16(
            weights=keras_weights_path(
                weights, VGG16_FILE, "VGGClassOracle",
                "Copy the file there (keras.applications.VGG16(weights='imagenet') on a machine with internet "
                "writes it), or pass weights=<local weights file> or None for random weights (smoke runs only).",
            ),
            classifier_activation=None,
        )
        self.trainable = False
        # The network's weights exist already: count_params() and saving work before any call.
        self.built = True

    def network_input(self, scaled_l):
        """Scaled L -> the 224x224 gray image in [0, 255] as three equal channels, VGG-preprocessed.

        The release tiles its L channel (L / 100 in [0, 1]) three times; here
        it is scaled to [0, 255] and given VGG-16's own "caffe" preprocessing
        (BGR, ImageNet mean subtracted), the input its ImageNet weights expect.
        """
        gray = tf.image.resize(tf.cast(scaled_l, tf.float32), (INPUT_SIZE, INPUT_SIZE))
        gray = (gray + 1.0) * 127.5
        return keras.applications.vgg16.preprocess_input(tf.concat([gray] * 3, axis=-1))

    def call(self, scaled_l):
        logits = self.network(self.network_input(scaled_l), training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32))

    def compute_output_shape(self, input_shape):
        # Declared, so symbolic calls never trace the 224x224 network.
        return (input_shape[0], CLASSES)

    def get_config(self):
        return {**super().get_config(), "weights": self.pretrained_weights}

    @classmethod
    def from_config(cls, config):
        # A .keras file holds the network's weights, so reloading starts from random ones and never needs the file.
        config = dict(config)
        weights = config.pop("weights")
        oracle = cls(**config, weights=None)
        oracle.pretrained_weights = weights
        return oracle
