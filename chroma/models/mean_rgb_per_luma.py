"""Paper villarenteria's baseline0 as its section 4.1 states it: the mean RGB colour of each luma level.

Over a dataset, each channel's average for each of the 256 gray tones, a 3x256
matrix; every pixel is painted with the mean RGB of its tone. The tone is the
luma Y = 0.299 R + 0.587 G + 0.114 B of the 8-bit image (the paper prints 0.144
for blue, a typo of the standard weights it cites [6]). Unlike chroma's
baseline0 (chroma.models.baseline0), which predicts a*b* per L* level and keeps
the input's lightness, this estimator predicts the whole colour, lightness
included: the evaluation scores its own L (chroma.evaluation.evaluate takes a
colorizer's {"L", "ab"}).
"""

import tensorflow as tf

from chroma import color

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, the paper's [6]


class MeanRGBPerLuma:
    """batch (scaled "L" and "ab" of the colour image) -> {"L", "ab"}, scaled Lab of the mean RGB of each pixel's
    luma level. `fit` adds a dataset's per-level RGB sums; a level never seen predicts its own gray."""

    def __init__(self, levels=256):
        self.levels = levels
        self.rgb_sums = tf.Variable(tf.zeros((levels, 3)), trainable=False)
        self.pixel_counts = tf.Variable(tf.zeros((levels,)), trainable=False)

    def luma_levels(self, rgb):
        """RGB in [0, 1] (..., 3) -> the gray tone of each pixel, an index in [0, levels)."""
        luma = tf.tensordot(rgb, tf.constant(LUMA_WEIGHTS), axes=1)
        return tf.cast(tf.clip_by_value(tf.round(luma * (self.levels - 1)), 0, self.levels - 1), tf.int32)

    def fit(self, dataset):
        """Adds every batch of `dataset` (scaled L and ab) to the per-level sums; returns self."""
        for batch in dataset:
            rgb = tf.reshape(color.scaled_lab_to_rgb(batch["L"], batch["ab"]), [-1, 3])
            levels = self.luma_levels(rgb)
            self.rgb_sums.assign_add(tf.math.unsorted_segment_sum(rgb, levels, self.levels))
            self.pixel_counts.assign_add(tf.math.unsorted_segment_sum(tf.ones_like(levels, tf.float32), levels,
                                                                      self.levels))
        return self

    def mean_rgb(self):
        """The fitted (levels, 3) matrix (the paper's M, transposed); an unseen level is its own gray."""
        seen = self.pixel_counts > 0
        gray = tf.repeat(tf.linspace(0.0, 1.0, self.levels)[:, None], 3, axis=1)
        return tf.where(seen[:, None], self.rgb_sums / tf.maximum(self.pixel_counts, 1.0)[:, None], gray)

    def __call__(self, batch):
        rgb = color.scaled_lab_to_rgb(batch["L"], batch["ab"])  # the gray input is this image's luma
        scaled_l, scaled_ab = color.rgb_to_scaled_lab(tf.gather(self.mean_rgb(), self.luma_levels(rgb)))
        return {"L": scaled_l, "ab": scaled_ab}
