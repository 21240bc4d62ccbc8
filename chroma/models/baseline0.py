"""baseline0 (paper villarenteria, section 4.1): the mean colour of each gray level.

The paper averages, over a dataset, the colour that produced each of the 256
gray tones and paints every pixel with the mean for its tone. Here the colour is
the a*b* pair and the tone is L* quantised to 256 levels, so baseline0 keeps the
input's lightness like every other chroma model and is evaluated the same way.
It is the floor every trained model must beat.
"""

import keras
import tensorflow as tf

from chroma.models.generator import Generator


@keras.saving.register_keras_serializable(package="chroma")
class MeanColorBaseline(Generator):
    """{"L": scaled L} -> {"ab"}: for each pixel, the mean scaled ab seen at its gray level.

    `fit` does not descend a gradient: its train step adds each batch's ab sums
    and pixel counts per level, so one epoch over a dataset is the exact fit, and
    under a distribution strategy the replicas' sums add up. A level never seen
    in training predicts gray (ab = 0).
    """

    def __init__(self, levels=256, **kwargs):
        # A table of means, kept and looked up in float32 whatever the mixed-precision policy of the runs around it.
        super().__init__(**{"dtype": "float32", **kwargs})
        self.levels = levels
        self.ab_sums = self.add_weight(
            shape=(levels, 2), initializer="zeros", trainable=False,
            aggregation="sum", name="ab_sums",
        )
        self.pixel_counts = self.add_weight(
            shape=(levels,), initializer="zeros", trainable=False,
            aggregation="sum", name="pixel_counts",
        )
        self.built = True  # all weights exist already; fit never calls the model

    def gray_levels(self, scaled_l):
        """Scaled L in [-1, 1], shape (..., 1) -> level index in [0, levels), shape (...)."""
        position = (tf.squeeze(scaled_l, -1) + 1.0) * 0.5 * (self.levels - 1)
        return tf.cast(tf.clip_by_value(tf.round(position), 0, self.levels - 1), tf.int32)

    def mean_colors(self):
        """The fitted (levels, 2) table of mean scaled ab."""
        counts = tf.maximum(self.pixel_counts, 1.0)[:, None]
        return tf.convert_to_tensor(self.ab_sums) / counts

    def call(self, batch):
        return {"ab": tf.gather(self.mean_colors(), self.gray_levels(batch["L"]))}

    def train_step(self, data):
        levels = tf.reshape(self.gray_levels(data["L"]), [-1])
        ab = tf.reshape(data["ab"], [-1, 2])
        self.ab_sums.assign_add(tf.math.unsorted_segment_sum(ab, levels, self.levels))
        self.pixel_counts.assign_add(
            tf.math.unsorted_segment_sum(tf.ones_like(levels, tf.float32), levels, self.levels)
        )
        # Compiled metrics score the table fitted so far, so fit's progress bar shows them too.
        return {**self.test_step(data), "levels_seen": tf.math.count_nonzero(self.pixel_counts > 0)}

    def test_step(self, data):
        scaled_l = data["L"]
        predicted_ab = self(data)["ab"]
        scores = self.compute_metrics(
            scaled_l,
            tf.concat([scaled_l, data["ab"]], axis=-1),
            tf.concat([scaled_l, predicted_ab], axis=-1),
        )
        scores.pop("loss", None)  # baseline0 minimises no loss; Keras would log a constant 0
        return scores

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
