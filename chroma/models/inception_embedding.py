"""Paper bruvik's feature extractor (section 5.3.3): a frozen Inception-ResNet-v2 class embedding of the gray image.

The gray input is resized to 299x299 and given as three equal channels, the
gray image in sRGB, mapped to the range the network was trained on. The
network is Keras's (1000 ImageNet classes) or a TF-Hub / SavedModel
classifier (1001: TF-slim's background class first, the paper's 1001-d
embedding). chroma never downloads: weights come from files already on disk.
"""


import keras
import tensorflow as tf

from chroma.color import scaled_lab_to_rgb
from chroma.models.blocks import keras_weights_path
from chroma.models.loading import saved_model_on_load

INPUT_SIZE = 299
KERAS_CLASSES = 1000
KERAS_WEIGHTS_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"


@keras.saving.register_keras_serializable(package="chroma")
class InceptionEmbedding(keras.layers.Layer):
    """Scaled L (B,H,W,1) -> the frozen network's class vector (B, classes), any H and W.

    `source="keras"`: keras.applications.InceptionResNetV2 with `weights`
    None (random), "imagenet" (only from the Keras cache file, see
    keras_weights_cache) or a local .h5 path; 1000 classes, input in [-1, 1].
    Any other `source` is a TF-Hub handle or local SavedModel directory given
    to hub.load: a callable TF2 SavedModel mapping RGB images in [0, 1] to
    logits, as TF-Hub's image classifiers do; `classes` is its output size.
    Its variables are TensorFlow's, not Keras's: a .keras file does not store
    them, it loads `source` again.

    `probabilities=True` returns the softmax, the class-probability vector
    Deep Koalarization's Keras implementation fuses; False returns the logits,
    "the final layer preceding the softmax" of section 5.3.3. No weight is
    trainable and the network always runs in inference mode.
    """

    def __init__(self, source="keras", weights=None, probabilities=True, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.pretrained_weights = weights
        self.probabilities = probabilities
        if source == "keras":
            self.network = keras.applications.InceptionResNetV2(
                weights=keras_weights_path(
                    weights, KERAS_WEIGHTS_FILE, "InceptionEmbedding",
                    "Copy the file there (keras.applications.InceptionResNetV2(weights='imagenet') on a machine "
                    "with internet writes it), or pass weights=<local .h5 path>, source=<local TF-Hub SavedModel "
                    "directory>, or weights=None for random weights (smoke runs only).",
                ),
                classifier_activation="softmax" if probabilities else None,
            )
            self.classes = KERAS_CLASSES
        else:
            if weights is not None:
                raise ValueError(f"weights={weights!r} is for source='keras'; the SavedModel {source!r} has its own")
            import tensorflow_hub as hub  # only this source needs it

            self.module = hub.load(source)
            if not callable(self.module):
                raise ValueError(f"{source!r} is not a callable TF2 SavedModel (images in [0, 1] -> logits)")
            # Tracing, not running, the module tells its output size.
            traced = tf.function(self.module).get_concrete_function(
                tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)
            )
            self.classes = int(traced.structured_outputs.shape[-1])
        self.trainable = False

    def network_input(self, scaled_l):
        """Scaled L -> what the network reads: the gray image in sRGB, 299x299x3, in [-1, 1] (Keras) or [0, 1]."""
        scaled_l = tf.image.resize(tf.cast(scaled_l, tf.float32), (INPUT_SIZE, INPUT_SIZE))
        gray_rgb = scaled_lab_to_rgb(scaled_l, tf.concat([tf.zeros_like(scaled_l)] * 2, axis=-1))
        # keras.applications.inception_resnet_v2.preprocess_input's "tf" mode; TF-Hub image models read [0, 1].
        return gray_rgb * 2.0 - 1.0 if self.source == "keras" else gray_rgb

    def call(self, scaled_l):
        images = self.network_input(scaled_l)
        if self.source == "keras":
            return self.network(images, training=False)
        logits = self.module(images)
        return tf.nn.softmax(logits) if self.probabilities else logits

    def compute_output_shape(self, input_shape):
        # Declared, so symbolic calls never trace the 299x299 network.
        return (input_shape[0], self.classes)

    def get_config(self):
        return {
            **super().get_config(),
            "source": self.source,
            "weights": self.pretrained_weights,
            "probabilities": self.probabilities,
        }

    @classmethod
    def from_config(cls, config):
        # Loaded from a file: Keras's network carries its weights in the archive, so no path is read; a TF-Hub
        # SavedModel comes from the user, never from the file.
        if config.get("source", "keras") == "keras":
            return cls(**{**config, "weights": None})
        return cls(**{**config, "source": saved_model_on_load("inception", config["source"], "Inception embedding")})
