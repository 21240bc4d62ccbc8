"""Paper bruvik's segmentation prior (sections 4.3 and 5.3.2): per-pixel class probabilities of the gray image.

The paper feeds the maps of a DeepLabV3-ResNet50 trained on the 20 Pascal VOC
categories plus background (21 classes) to the Inception-GAN's first layer.
chroma takes the segmenter as a TF2 SavedModel (a local directory or TF-Hub
handle) and never downloads one; offline a seeded random stand-in keeps the
architecture and its cost but carries no semantics.

A DeepLabV3 for `source`: on a machine with internet, wrap any 21-class Pascal
VOC segmenter (keras-hub's "deeplab_v3_plus_resnet50_pascalvoc" preset, or
torchvision's deeplabv3_resnet50 converted) in a `tf.Module` whose
`__call__(images)` takes RGB in [0, 1], (B, H, W, 3) float32, applies the
model's own input normalisation and returns logits (B, h, w, 21) at any h, w;
`tf.saved_model.save` it and copy the directory here.
"""

import keras
import tensorflow as tf

from chroma.color import scaled_lab_to_rgb
from chroma.models.loading import saved_model_on_load

PASCAL_VOC_CLASSES = 21  # 20 categories and background (section 4.3)
RANDOM_SEED = 1234


@keras.saving.register_keras_serializable(package="chroma")
class SegmentationPrior(keras.layers.Layer):
    """Scaled L (B,H,W,1) -> a frozen segmenter's class probabilities (B,H,W,classes), any H and W.

    `source="random"`: a seeded 3x3 convolution with softmax, frozen: the
    stand-in for offline and smoke runs (its weights travel in .keras files).
    Otherwise `source` is a SavedModel directory or TF-Hub handle given to
    hub.load (see the module docstring); `classes` is then read from it. Its
    maps are resized bilinearly to the input's size. Nothing is trainable.
    """

    def __init__(self, source="random", classes=PASCAL_VOC_CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        if source == "random":
            self.classes = classes
            self.network = keras.layers.Conv2D(
                classes, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=RANDOM_SEED),
                bias_initializer="zeros", name="random_segmenter",
            )
        else:
            import tensorflow_hub as hub  # only this source needs it

            self.module = hub.load(source)
            if not callable(self.module):
                raise ValueError(f"{source!r} is not a callable TF2 SavedModel (RGB in [0, 1] -> per-pixel logits)")
            traced = tf.function(self.module).get_concrete_function(tf.TensorSpec((None, None, None, 3), tf.float32))
            self.classes = int(traced.structured_outputs.shape[-1])
            if classes != self.classes:
                raise ValueError(f"the segmenter {source!r} gives {self.classes} classes, not {classes}")
        self.trainable = False

    def build(self, input_shape):
        if self.source == "random":
            self.network.build((*input_shape[:-1], 3))

    def call(self, scaled_l):
        # Section 5.3.2: the gray image stacked to three channels, as the segmenter reads RGB.
        scaled_l = tf.cast(scaled_l, tf.float32)
        gray_rgb = scaled_lab_to_rgb(scaled_l, tf.concat([tf.zeros_like(scaled_l)] * 2, axis=-1))
        if self.source == "random":
            return tf.nn.softmax(self.network(gray_rgb))
        logits = tf.image.resize(self.module(gray_rgb), tf.shape(scaled_l)[1:3], method="bilinear")
        return tf.nn.softmax(logits)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.classes)

    def get_config(self):
        return {**super().get_config(), "source": self.source, "classes": self.classes}

    @classmethod
    def from_config(cls, config):
        # Loaded from a file: the random stand-in's weights are in the archive; a segmenter comes from the user.
        if config.get("source", "random") != "random":
            config = {**config, "source": saved_model_on_load("deeplabv3", config["source"], "segmentation prior")}
        return cls(**config)
