"""The AuC of Zhang, Isola & Efros 2016, section 3.1 (chroma.metrics.auc)."""

import numpy as np
import pytest
import tensorflow as tf

from chroma import color, metrics
from chroma.metrics.auc import AUC_MAX_THRESHOLD, AUC_THRESHOLD_STEP
from helpers import photo_lab


@pytest.fixture(scope="module")
def true_lab():
    """Two real photos as scaled Lab (2, 16, 16, 3)."""
    return tf.concat(photo_lab(16), axis=-1)


def with_ab(true_lab, scaled_ab):
    return tf.concat([true_lab[..., :1], scaled_ab], axis=-1)


def gray(true_lab):
    return with_ab(true_lab, tf.zeros_like(true_lab[..., 1:]))


def shifted_in_a(true_lab, units):
    return with_ab(true_lab, true_lab[..., 1:] + tf.constant([units / color.AB_SCALE, 0.0]))


def swept_auc(true_lab, pred_lab, pixel_weights=None):
    """The sweep done directly in NumPy: every threshold against every pixel."""
    distances = color.AB_SCALE * np.linalg.norm(np.asarray(true_lab)[..., 1:] - np.asarray(pred_lab)[..., 1:], axis=-1)
    if pixel_weights is None:
        pixel_weights = np.ones_like(distances)
    thresholds = np.arange(0.0, AUC_MAX_THRESHOLD + AUC_THRESHOLD_STEP / 2, AUC_THRESHOLD_STEP)
    within = distances[..., None] <= thresholds
    shares = np.sum(within * pixel_weights[..., None], axis=(1, 2)) / np.sum(pixel_weights, axis=(1, 2))[:, None]
    return 100.0 * np.trapezoid(shares, thresholds, axis=-1) / AUC_MAX_THRESHOLD


def test_the_truth_scores_100(true_lab):
    np.testing.assert_array_equal(metrics.auc_ab(true_lab, true_lab), [100.0, 100.0])


def test_gray_scores_between_0_and_100_on_photos_as_a_direct_sweep_does(true_lab):
    scores = metrics.auc_ab(true_lab, gray(true_lab)).numpy()
    assert scores.shape == (2,) and np.all((0.0 < scores) & (scores < 100.0)), scores
    np.testing.assert_allclose(scores, swept_auc(true_lab, gray(true_lab)), rtol=1e-5)


@pytest.mark.parametrize("units, expected", [(49.75, 100.5 / 150 * 100), (50.25, 99.5 / 150 * 100)])
def test_a_constant_error_of_about_50_scores_about_two_thirds(true_lab, units, expected):
    # Every pixel is within the thresholds from 50 (or 51) on, and the trapezoid rule gives the step from 49
    # (or 50) half its height: (150 - 50 +- 0.5) / 150. Exactly 50 would sit on a threshold, where float32
    # rounding of ab / 110 decides.
    np.testing.assert_allclose(metrics.auc_ab(true_lab, shifted_in_a(true_lab, units)), expected, atol=1e-4)


def test_colours_farther_than_the_sweep_score_0(true_lab):
    np.testing.assert_array_equal(metrics.auc_ab(true_lab, shifted_in_a(true_lab, 151.0)), [0.0, 0.0])


def test_rebalanced_with_uniform_weights_is_the_plain_auc(true_lab):
    pred_lab = gray(true_lab)
    uniform = tf.fill(true_lab.shape[:3], 3.0)
    np.testing.assert_allclose(
        metrics.auc_ab_rebalanced(true_lab, pred_lab, uniform), metrics.auc_ab(true_lab, pred_lab), rtol=1e-6
    )


def test_rebalanced_weights_each_pixel_as_a_direct_sweep_does(true_lab):
    pred_lab = gray(true_lab)
    pixel_weights = np.random.default_rng(0).uniform(0.0, 2.0, true_lab.shape[:3]).astype(np.float32)
    np.testing.assert_allclose(
        metrics.auc_ab_rebalanced(true_lab, pred_lab, pixel_weights),
        swept_auc(true_lab, pred_lab, pixel_weights),
        rtol=1e-5,
    )


def test_rebalanced_weight_on_the_badly_predicted_pixels_lowers_the_score(true_lab):
    # Exact on the left half, 100.25 units off (between two thresholds) on the right half.
    bad = np.zeros(true_lab.shape[:3], np.float32)
    bad[:, :, 8:] = 1.0
    pred_lab = with_ab(true_lab, true_lab[..., 1:] + bad[..., None] * np.float32([100.25 / color.AB_SCALE, 0.0]))
    plain = metrics.auc_ab(true_lab, pred_lab).numpy()
    rebalanced = metrics.auc_ab_rebalanced(true_lab, pred_lab, bad).numpy()
    assert np.all(rebalanced < plain - 10.0), (rebalanced, plain)
    np.testing.assert_allclose(rebalanced, 49.5 / 150 * 100, atol=1e-4)  # only the pixels off by 100.25 count


def test_in_tf_function_with_unknown_shapes(true_lab):
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    graph_auc = tf.function(metrics.auc_ab, input_signature=[spec, spec])
    np.testing.assert_allclose(
        graph_auc(true_lab, gray(true_lab)), metrics.auc_ab(true_lab, gray(true_lab)), rtol=1e-6
    )


def test_keras_metric_gives_the_functions_mean(true_lab):
    pred_lab = gray(true_lab)
    metric = metrics.ColorizationMetric("auc_ab")
    metric.update_state(true_lab, pred_lab)
    np.testing.assert_allclose(metric.result(), np.mean(metrics.auc_ab(true_lab, pred_lab)), rtol=1e-6)
