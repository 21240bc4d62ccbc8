"""The AuC of Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), section 3.1 as the facts sheet
(zhang2016-facts.md) gives it: the share of pixels whose ab distance to the truth is within a threshold, swept
from 0 to 150, and the area under that cumulative curve normalised to 100 %.

Inputs are scaled Lab (B, H, W, 3) = concat(L, ab), as `chroma.color.scale_lab` makes them; distances are
Euclidean in a*b* units. Pure TF ops: they run eagerly, in `tf.function` and in `tf.data.Dataset.map`.
"""

import tensorflow as tf

from chroma.color import AB_SCALE
from chroma.metrics.image_quality import _as_image_pair

# Thresholds 0, 1, ..., 150 in a*b* units. The sweep's range is the paper's; its step is unconfirmed.
AUC_MAX_THRESHOLD = 150.0
AUC_THRESHOLD_STEP = 1.0
_THRESHOLD_COUNT = round(AUC_MAX_THRESHOLD / AUC_THRESHOLD_STEP) + 1


def _ab_distances(true_scaled_lab, pred_scaled_lab):
    """(B, H, W) Euclidean ab distance in a*b* units."""
    true_scaled_lab, pred_scaled_lab = _as_image_pair(true_scaled_lab, pred_scaled_lab, channels=3)
    return AB_SCALE * tf.norm(true_scaled_lab[..., 1:] - pred_scaled_lab[..., 1:], axis=-1)


def _area_percent(distances, pixel_weights):
    """(B,) the area under each image's weighted cumulative share of pixels within each threshold, in %."""
    batch = tf.shape(distances)[0]
    # Each pixel counts from the first threshold at or above its distance on, and never beyond the last (NaN
    # included): summing a histogram of those first thresholds is the cumulative curve, with no
    # (pixels x thresholds) tensor.
    first_threshold = tf.where(
        distances <= AUC_MAX_THRESHOLD, tf.math.ceil(distances / AUC_THRESHOLD_STEP), float(_THRESHOLD_COUNT)
    )
    first_threshold = tf.reshape(tf.cast(first_threshold, tf.int32), [batch, -1])
    pixel_weights = tf.reshape(pixel_weights, [batch, -1])
    histogram = tf.math.bincount(
        first_threshold, weights=pixel_weights, minlength=_THRESHOLD_COUNT, maxlength=_THRESHOLD_COUNT, axis=-1
    )
    shares = tf.math.divide_no_nan(
        tf.cumsum(histogram, axis=-1), tf.reduce_sum(pixel_weights, axis=-1, keepdims=True)
    )
    # Trapezoid rule over the thresholds, over the swept range: 100 when every pixel is exact.
    area = AUC_THRESHOLD_STEP * tf.reduce_sum(shares[:, 1:] + shares[:, :-1], axis=-1) / 2.0
    return 100.0 * area / AUC_MAX_THRESHOLD


def auc_ab(true_scaled_lab, pred_scaled_lab):
    """The paper's (non-rebalanced) AuC per image, (B,) in %.

    Every image of a batch has the same pixel count, so the mean of these per-image AuCs equals the AuC of
    the curve pooled over all their pixels, which is what the paper reports over its test set.
    """
    distances = _ab_distances(true_scaled_lab, pred_scaled_lab)
    return _area_percent(distances, tf.ones_like(distances))


def auc_ab_rebalanced(true_scaled_lab, pred_scaled_lab, pixel_weights):
    """The rebalanced AuC per image, (B,) in %: each pixel's share weighted by pixel_weights (B, H, W).

    The paper weighs each pixel inversely to the prior of its true colour's bin (lambda = 0): in
    chroma.ab_bins, `rebalancing_weights(prior, lam=0)` at `nearest_bin` of the true ab. An image of total
    weight 0 scores 0. Images differ in total weight, so pooling over a test set as the paper does is the
    mean of these values weighted by each image's total pixel weight, not their plain mean.
    """
    distances = _ab_distances(true_scaled_lab, pred_scaled_lab)
    return _area_percent(distances, tf.cast(pixel_weights, distances.dtype))
