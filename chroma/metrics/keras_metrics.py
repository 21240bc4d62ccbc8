"""Keras metrics that score colorizations given as scaled Lab, as models see them.

`y_true` and `y_pred` are (B, H, W, 3) = concat(L, ab), scaled to [-1, 1] as in
`chroma.color.scale_lab`. The RGB metrics convert both to sRGB first; the
"*_torchmetrics" ones score what paper agosti fed torchmetrics instead.
"""

import keras
import tensorflow as tf

from chroma import color
from chroma.metrics import image_quality
from chroma.metrics.auc import auc_ab


def _scaled_lab_to_rgb(scaled_lab):
    return color.scaled_lab_to_rgb(scaled_lab[..., :1], scaled_lab[..., 1:])


def _on_rgb(rgb_metric):
    """Lifts an RGB metric (true_rgb, pred_rgb) -> (B,) to scaled Lab inputs."""

    def lab_metric(true_lab, pred_lab):
        return rgb_metric(_scaled_lab_to_rgb(true_lab), _scaled_lab_to_rgb(pred_lab))

    return lab_metric


def unit_lab(scaled_lab):
    """Paper agosti's metric inputs: scaled Lab mapped to [0, 1] channel by channel, so L / 100 and
    ab / 220 + 1/2, which the authors fed torchmetrics as if RGB (NNDL-recoloring-GAN, train.py,
    `Trainer._update_metrics`; its scaled Lab is chroma's: L / 50 - 1, ab / 110)."""
    return 0.5 * scaled_lab + 0.5


def _on_unit_lab(metric):
    """Lifts a metric to paper agosti's metric inputs (`unit_lab`), not RGB."""

    def lab_metric(true_lab, pred_lab):
        return metric(unit_lab(true_lab), unit_lab(pred_lab))

    return lab_metric


def _prediction_colorfulness(true_lab, pred_lab):
    # Colorfulness has no reference: it scores how vivid the prediction is.
    del true_lab
    return image_quality.colorfulness(_scaled_lab_to_rgb(pred_lab))


def _ab_l1(true_lab, pred_lab):
    return image_quality.l1_ab(true_lab[..., 1:], pred_lab[..., 1:])


# Metric name -> function (true_scaled_lab, pred_scaled_lab) -> one value per image.
SCALED_LAB_METRICS = {
    "psnr": _on_rgb(image_quality.psnr),
    "ssim": _on_rgb(image_quality.ssim),
    "mse_8bit": _on_rgb(image_quality.mse_8bit),
    "mse_unit": _on_rgb(image_quality.mse_unit),
    "uiqi": _on_rgb(image_quality.uiqi),
    "colorfulness": _prediction_colorfulness,
    "l1_ab": _ab_l1,
    # Zhang, Isola & Efros 2016, section 3.1: the non-rebalanced AuC in %, on scaled Lab like the others.
    "auc_ab": auc_ab,
    # Paper agosti's three torchmetrics columns, each given data_range=1.0 there.
    # SSIM: torchmetrics' definition is chroma's `ssim`; only the inputs differ.
    "ssim_torchmetrics": _on_unit_lab(image_quality.ssim),
    # PSNR: the per-image MSE, pooled below into one PSNR.
    "psnr_torchmetrics": _on_unit_lab(image_quality.mse_unit),
    "uiqi_torchmetrics": _on_unit_lab(image_quality.uiqi_torchmetrics),
}

# Metrics whose result is a function of the mean of their per-image values:
# torchmetrics' PeakSignalNoiseRatio (dim=None) sums squared errors over every
# image it is given before taking the log, rather than averaging per-image PSNRs.
POOLED_RESULTS = {"psnr_torchmetrics": image_quality.psnr_from_mse}

# Metrics whose NaN per-image values are left out of the mean: agosti's code keeps
# only the images whose torchmetrics UIQI is not NaN (`uiqi[~torch.isnan(uiqi)]`).
SKIPS_NAN = frozenset({"uiqi_torchmetrics"})


def _check_scaled_lab(images, name):
    images = tf.convert_to_tensor(images)
    shape = images.shape
    if shape.rank is not None and (shape.rank != 4 or shape[-1] not in (None, 3)):
        raise ValueError(
            f"{name} must be scaled Lab of shape (B, H, W, 3) = concat(L, ab), got {images.shape}"
        )
    return tf.cast(images, tf.float32)


@keras.saving.register_keras_serializable(package="chroma")
class ColorizationMetric(keras.metrics.Metric):
    """Running mean over images of one metric from `SCALED_LAB_METRICS`.

    Args:
        metric: one of `SCALED_LAB_METRICS`' names.
        name: the metric's name in logs; defaults to `metric`.
        dtype: dtype of the result; defaults to Keras' floatx.

    `update_state(y_true, y_pred, sample_weight=None)` takes scaled Lab batches
    (B, H, W, 3); `sample_weight`, if given, weighs each image, shape (B,).
    Metrics in `POOLED_RESULTS` report their function of that mean; those in
    `SKIPS_NAN` give NaN images no weight.
    """

    def __init__(self, metric="psnr", name=None, dtype=None):
        if metric not in SCALED_LAB_METRICS:
            raise ValueError(
                f"Unknown colorization metric {metric!r}; valid ones: {sorted(SCALED_LAB_METRICS)}"
            )
        super().__init__(name=name or metric, dtype=dtype)
        self.metric = metric
        self._metric_fn = SCALED_LAB_METRICS[metric]
        # Sum aggregation: under tf.distribute each replica's totals are added, as in keras.metrics.Mean.
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = _check_scaled_lab(y_true, "y_true")
        y_pred = _check_scaled_lab(y_pred, "y_pred")
        values = tf.cast(self._metric_fn(y_true, y_pred), self.dtype)
        if sample_weight is None:
            weights = tf.ones_like(values)
        else:
            weights = tf.reshape(tf.cast(sample_weight, self.dtype), [-1])
            weights = tf.broadcast_to(weights, tf.shape(values))
        if self.metric in SKIPS_NAN:
            defined = tf.logical_not(tf.math.is_nan(values))
            values = tf.where(defined, values, tf.zeros_like(values))
            weights = tf.where(defined, weights, tf.zeros_like(weights))
        self.total.assign_add(tf.reduce_sum(values * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        mean = tf.math.divide_no_nan(self.total, self.count)
        if self.metric in POOLED_RESULTS:
            return tf.where(self.count > 0, POOLED_RESULTS[self.metric](mean), tf.zeros_like(mean))
        return mean

    def get_config(self):
        return {**super().get_config(), "metric": self.metric}


def colorization_metrics(names=("psnr", "ssim", "colorfulness")):
    """One `ColorizationMetric` per name, for `model.compile(metrics=...)`."""
    return [ColorizationMetric(name) for name in names]
