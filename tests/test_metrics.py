"""Metrics against scikit-image and NumPy references, on photos that ship with scikit-image."""


import keras
import numpy as np
import pytest
import skimage.data
import skimage.metrics
import skimage.transform
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from chroma import color
from chroma import metrics
from chroma.metrics.keras_metrics import POOLED_RESULTS

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket")


def load_photos(size):
    """The four photos as one float32 batch (4, size, size, 3) in [0, 1]."""
    photos = [
        skimage.transform.resize(getattr(skimage.data, name)(), (size, size), anti_aliasing=True)
        for name in PHOTO_NAMES
    ]
    return np.stack(photos).astype(np.float32)


@pytest.fixture(scope="module")
def photos():
    return load_photos(128)


@pytest.fixture(scope="module")
def small_photos():
    return load_photos(24)[:3]


def add_noise(images, stddev, seed=0):
    noise = np.random.default_rng(seed).normal(0.0, stddev, images.shape)
    return np.clip(images + noise, 0.0, 1.0).astype(np.float32)


def grayify(images):
    luminance = images @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return np.repeat(luminance[..., None], 3, axis=-1)


def shift_colours(images):
    return np.clip(images + np.float32([0.08, -0.05, 0.1]), 0.0, 1.0).astype(np.float32)


def desaturate(images, amount=0.6):
    return (amount * grayify(images) + (1.0 - amount) * images).astype(np.float32)


DISTORTIONS = {"noise": lambda x: add_noise(x, 0.05), "gray": grayify, "shift": shift_colours}


def skimage_ssim(true, pred):
    return skimage.metrics.structural_similarity(
        true,
        pred,
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


# --- PSNR, SSIM, MSE ---


@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_psnr_matches_skimage(photos, distortion):
    predictions = DISTORTIONS[distortion](photos)
    expected = [
        skimage.metrics.peak_signal_noise_ratio(t, p, data_range=1.0)
        for t, p in zip(photos, predictions)
    ]
    np.testing.assert_allclose(metrics.psnr(photos, predictions), expected, atol=1e-3)


def test_psnr_of_identical_images_is_capped_at_100db(photos):
    np.testing.assert_allclose(metrics.psnr(photos, photos), [100.0] * 4, rtol=1e-6)


@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_ssim_matches_skimage(photos, distortion):
    predictions = DISTORTIONS[distortion](photos)
    expected = [skimage_ssim(t, p) for t, p in zip(photos, predictions)]
    np.testing.assert_allclose(metrics.ssim(photos, predictions), expected, atol=1e-3)


def test_ssim_of_identical_images_is_one(photos):
    np.testing.assert_allclose(metrics.ssim(photos, photos), [1.0] * 4, atol=1e-5)


def test_ssim_per_channel_matches_skimage_per_channel_and_averages_to_ssim(photos):
    predictions = shift_colours(photos)
    per_channel = metrics.ssim_per_channel(photos, predictions).numpy()
    assert per_channel.shape == (4, 3)
    expected = [
        [skimage_ssim(t[..., c : c + 1], p[..., c : c + 1]) for c in range(3)]
        for t, p in zip(photos, predictions)
    ]
    np.testing.assert_allclose(per_channel, expected, atol=1e-3)
    np.testing.assert_allclose(per_channel.mean(axis=1), metrics.ssim(photos, predictions), atol=1e-6)


def test_mse_known_values():
    true = np.zeros((2, 4, 4, 3), np.float32)
    pred = np.full((2, 4, 4, 3), 0.1, np.float32)
    pred[1] = 0.2
    np.testing.assert_allclose(metrics.mse_unit(true, pred), [0.01, 0.04], rtol=1e-5)
    np.testing.assert_allclose(metrics.mse_8bit(true, pred), [25.5**2, 51.0**2], rtol=1e-5)


def test_mse_8bit_is_255_squared_times_mse_unit(photos):
    predictions = add_noise(photos, 0.1)
    np.testing.assert_allclose(
        metrics.mse_8bit(photos, predictions),
        255.0**2 * metrics.mse_unit(photos, predictions).numpy(),
        rtol=1e-6,
    )


# --- UIQI ---


def uiqi_reference(true, pred, window=8):
    """Wang's img_qi.m window by window in float64, averaged over channels too."""
    qualities = []
    for channel in range(true.shape[-1]):
        x = sliding_window_view(true[..., channel].astype(np.float64), (window, window))
        y = sliding_window_view(pred[..., channel].astype(np.float64), (window, window))
        x, y = x.reshape(-1, window * window), y.reshape(-1, window * window)
        mean_x, mean_y = x.mean(axis=1), y.mean(axis=1)
        covariance = ((x - mean_x[:, None]) * (y - mean_y[:, None])).mean(axis=1)
        variance_term = x.var(axis=1) + y.var(axis=1)
        mean_term = mean_x**2 + mean_y**2
        quality = np.ones_like(mean_x)
        flat = (variance_term == 0) & (mean_term != 0)  # where mean_term is 0, Q stays 1
        quality[flat] = 2 * mean_x[flat] * mean_y[flat] / mean_term[flat]
        textured = variance_term * mean_term != 0
        quality[textured] = (
            4 * covariance[textured] * mean_x[textured] * mean_y[textured]
        ) / (variance_term[textured] * mean_term[textured])
        qualities.append(quality)
    return np.mean(qualities)


def with_flat_patches(images):
    """Photos with flat squares: black, mid-gray and a different gray per image."""
    images = images.copy()
    images[:, :20, :20] = 0.0
    images[:, 30:50, 30:50] = 0.5
    images[:, 60:70, :] = np.linspace(0.2, 0.8, len(images), dtype=np.float32)[:, None, None, None]
    return images


def test_uiqi_matches_numpy_reference(photos):
    photos = photos[:, :64, :64]
    cases = [
        (photos, add_noise(photos, 0.05)),
        (photos, grayify(photos)),
        (photos, shift_colours(photos)),
        # Flat in both (0/0 windows), and flat in the truth only.
        (with_flat_patches(photos), with_flat_patches(add_noise(photos, 0.05))[::-1]),
        (with_flat_patches(photos), add_noise(photos, 0.05)),
    ]
    for true, pred in cases:
        expected = [uiqi_reference(t, p) for t, p in zip(true, pred)]
        np.testing.assert_allclose(metrics.uiqi(true, pred), expected, atol=1e-4)


def test_uiqi_of_identical_images_is_one(photos):
    np.testing.assert_allclose(metrics.uiqi(photos, photos), [1.0] * 4, atol=1e-6)


def test_uiqi_of_flat_identical_images_is_one_not_nan():
    flat = np.stack([np.full((12, 12, 3), value, np.float32) for value in (0.0, 0.3, 1.0)])
    np.testing.assert_array_equal(metrics.uiqi(flat, flat), [1.0, 1.0, 1.0])


def test_uiqi_of_two_flat_images_compares_their_means():
    true = np.full((1, 10, 10, 3), 0.2, np.float32)
    pred = np.full((1, 10, 10, 3), 0.6, np.float32)
    expected = 2 * 0.2 * 0.6 / (0.2**2 + 0.6**2)
    np.testing.assert_allclose(metrics.uiqi(true, pred), [expected], rtol=1e-5)


def test_uiqi_decreases_with_noise(photos):
    scores = np.stack([metrics.uiqi(photos, add_noise(photos, s)) for s in (0.01, 0.05, 0.2)])
    assert np.all(np.diff(scores, axis=0) < 0), scores


# --- UIQI as torchmetrics computes it (paper agosti) ---


def gaussian_window(size=11, sigma=1.5):
    offsets = np.arange(size) - (size - 1) / 2
    window = np.outer(*2 * [np.exp(-(offsets**2) / (2 * sigma**2))])
    return window / window.sum()


def uiqi_torchmetrics_reference(true, pred):
    """torchmetrics 0.11's UIQI of one image in exact-arithmetic terms, window by window:
    Gaussian-weighted centred moments over every full 11x11 window, a flat window's
    variance exactly 0, and 0/0 windows NaN."""
    weights = gaussian_window()
    qualities = []
    for channel in range(true.shape[-1]):
        x = sliding_window_view(true[..., channel].astype(np.float64), (11, 11))
        y = sliding_window_view(pred[..., channel].astype(np.float64), (11, 11))
        mean_x, mean_y = (weights * x).sum(axis=(2, 3)), (weights * y).sum(axis=(2, 3))
        dx, dy = x - mean_x[..., None, None], y - mean_y[..., None, None]
        flat_x, flat_y = np.ptp(x, axis=(2, 3)) == 0, np.ptp(y, axis=(2, 3)) == 0
        var_x = np.where(flat_x, 0.0, (weights * dx * dx).sum(axis=(2, 3)))
        var_y = np.where(flat_y, 0.0, (weights * dy * dy).sum(axis=(2, 3)))
        covariance = np.where(flat_x | flat_y, 0.0, (weights * dx * dy).sum(axis=(2, 3)))
        denominator = (var_x + var_y) * (mean_x**2 + mean_y**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            quality = np.where(denominator > 0, 4 * covariance * mean_x * mean_y / denominator, np.nan)
        qualities.append(quality)
    return np.mean(qualities)


def unit_lab(rgb):
    """What agosti fed torchmetrics: scaled Lab mapped to [0, 1], L / 100 and ab / 220 + 1/2."""
    return 0.5 * as_scaled_lab(rgb).numpy() + 0.5


def test_uiqi_torchmetrics_matches_numpy_reference(photos):
    photos = photos[:, :64, :64]
    lab = unit_lab(photos)
    cases = [
        (photos, add_noise(photos, 0.05)),
        (photos, grayify(photos)),
        (lab, unit_lab(desaturate(photos))),
        # Flat in both (0/0 windows: NaN images), and flat in the truth only.
        (with_flat_patches(photos), with_flat_patches(add_noise(photos, 0.05))[::-1]),
        (with_flat_patches(photos), add_noise(photos, 0.05)),
    ]
    for true, pred in cases:
        expected = [uiqi_torchmetrics_reference(t, p) for t, p in zip(true, pred)]
        np.testing.assert_allclose(metrics.uiqi_torchmetrics(true, pred), expected, atol=1e-5)
    assert np.all(np.isnan(metrics.uiqi_torchmetrics(*cases[3])))


def test_uiqi_torchmetrics_known_values(photos):
    photos = photos[1:]  # the astronaut has a flat black 11x11 window: NaN, like the flat images below
    np.testing.assert_allclose(metrics.uiqi_torchmetrics(photos, photos), [1.0] * 3, atol=1e-6)
    # y = 0.75 x: Q = (2 * 0.75 / (1 + 0.75^2))^2 in every window, torchmetrics' docstring 0.9216.
    np.testing.assert_allclose(metrics.uiqi_torchmetrics(photos, 0.75 * photos), [0.9216] * 3, atol=1e-6)
    # Flat identical images: 0/0, NaN in torchmetrics 0.8-0.11, where Wang's code scores 1.
    flat = np.full((2, 12, 12, 3), 0.4, np.float32)
    assert np.all(np.isnan(metrics.uiqi_torchmetrics(flat, flat)))
    np.testing.assert_array_equal(metrics.uiqi(flat, flat), [1.0, 1.0])


def test_uiqi_torchmetrics_window_makes_noise_cost_more_than_chroma_uiqi(photos):
    noisy = add_noise(photos, 0.05)
    gaussian, uniform = metrics.uiqi_torchmetrics(photos, noisy).numpy(), metrics.uiqi(photos, noisy).numpy()
    # sigma 1.5 weighs ~20 pixels where the 8x8 window averages 64: noisier local correlations.
    assert np.all(gaussian < uniform - 0.05), (gaussian, uniform)


def test_gray_output_scores_a_third_on_agosti_inputs_but_high_on_rgb(photos):
    true_l, true_ab = color.rgb_to_scaled_lab(photos)
    true_lab = tf.concat([true_l, true_ab], axis=-1)
    gray_lab = tf.concat([true_l, tf.zeros_like(true_ab)], axis=-1)
    # L is copied (Q = 1) and a flat ab has zero covariance (Q = 0): 1/3 for each defined image.
    per_image = metrics.uiqi_torchmetrics(0.5 * true_lab + 0.5, 0.5 * gray_lab + 0.5).numpy()
    defined = per_image[~np.isnan(per_image)]
    assert len(defined) >= 2, per_image
    np.testing.assert_allclose(defined, 1.0 / 3.0, atol=1e-6)
    scores = {}
    for name in ("uiqi_torchmetrics", "uiqi"):
        metric = metrics.ColorizationMetric(name)
        metric.update_state(true_lab, gray_lab)
        scores[name] = float(metric.result())
    assert scores["uiqi_torchmetrics"] == pytest.approx(1.0 / 3.0, abs=1e-6)
    assert scores["uiqi"] > 0.7, scores


# --- Colorfulness, L1 on ab ---


def colorfulness_reference(image):
    red, green, blue = np.moveaxis(255.0 * image.astype(np.float64), -1, 0)
    rg, yb = red - green, 0.5 * (red + green) - blue
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def test_colorfulness_matches_numpy_reference(photos):
    expected = [colorfulness_reference(image) for image in photos]
    np.testing.assert_allclose(metrics.colorfulness(photos), expected, rtol=1e-4)


def test_colorfulness_of_gray_images_is_zero(photos):
    np.testing.assert_allclose(metrics.colorfulness(grayify(photos)), [0.0] * 4, atol=1e-4)


def test_colorfulness_drops_when_photos_are_desaturated(photos):
    saturated = metrics.colorfulness(photos).numpy()
    desaturated = metrics.colorfulness(desaturate(photos)).numpy()
    assert np.all(saturated > 1.5 * desaturated), (saturated, desaturated)


def test_l1_ab_known_value():
    true_ab = np.zeros((2, 4, 4, 2), np.float32)
    pred_ab = np.full((2, 4, 4, 2), 0.5, np.float32)
    pred_ab[0, :, :, 1] = -0.25
    pred_ab[1] = -1.0
    np.testing.assert_allclose(metrics.l1_ab(true_ab, pred_ab), [0.375, 1.0], rtol=1e-6)


# --- Input validation ---


def test_mismatched_or_malformed_inputs_raise_clear_errors(photos):
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(photos, photos[:, :64])
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        metrics.ssim(photos[0], photos[0])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(photos[:, :10, :10], photos[:, :10, :10])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.uiqi_torchmetrics(photos[:, :10, :10], photos[:, :10, :10])
    with pytest.raises(ValueError, match="2 channels"):
        metrics.l1_ab(photos, photos)
    with pytest.raises(TypeError, match="float"):
        metrics.mse_unit(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 4, 3), np.uint8))


# --- Graph mode and tf.data ---


def metric_inputs(name, photos):
    if name == "colorfulness":
        return (photos,)
    if name == "l1_ab":
        true_ab = color.rgb_to_scaled_lab(photos)[1].numpy()
        return true_ab, color.rgb_to_scaled_lab(desaturate(photos))[1].numpy()
    return photos, add_noise(photos, 0.05)


FUNCTIONS = {
    name: getattr(metrics, name)
    for name in (
        "psnr",
        "ssim",
        "ssim_per_channel",
        "mse_8bit",
        "mse_unit",
        "uiqi",
        "uiqi_torchmetrics",
        "colorfulness",
        "l1_ab",
    )
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_metric_in_tf_function_with_unknown_shapes(name, small_photos):
    inputs = metric_inputs(name, small_photos)
    metric = FUNCTIONS[name]
    specs = [tf.TensorSpec([None, None, None, x.shape[-1]], tf.float32) for x in inputs]
    graph_metric = tf.function(metric, input_signature=specs)
    expected = metric(*inputs).numpy()
    assert np.all(np.isfinite(expected)) and expected.shape[0] == 3
    np.testing.assert_allclose(graph_metric(*inputs), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_metric_in_tf_data_map(name, small_photos):
    inputs = metric_inputs(name, small_photos)
    metric = FUNCTIONS[name]
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(2).map(metric)
    from_dataset = np.concatenate([batch.numpy() for batch in dataset])  # batches of 2 and 1
    np.testing.assert_allclose(from_dataset, metric(*inputs), rtol=1e-5, atol=1e-6)


# --- Keras metric ---


def as_scaled_lab(rgb):
    return tf.concat(color.rgb_to_scaled_lab(rgb), axis=-1)


@pytest.fixture(scope="module")
def lab_batches(small_photos):
    """Scaled Lab truth, and predictions with each image's ab damped by a different factor."""
    true_lab = as_scaled_lab(small_photos)
    ab_factor = tf.constant([0.2, 0.5, 0.9], shape=[3, 1, 1, 1])
    pred_lab = tf.concat([true_lab[..., :1], ab_factor * true_lab[..., 1:]], axis=-1)
    return true_lab, pred_lab


def expected_per_image(name, true_lab, pred_lab):
    """The per-image values, computed without the Keras metric."""
    if name == "l1_ab":
        return np.abs(true_lab[..., 1:] - pred_lab[..., 1:]).mean(axis=(1, 2, 3))
    if name == "auc_ab":  # takes scaled Lab; its values are checked against a direct sweep in test_auc.py
        return metrics.auc_ab(true_lab, pred_lab).numpy()
    if name in ("ssim_torchmetrics", "uiqi_torchmetrics"):
        true_unit, pred_unit = 0.5 * np.asarray(true_lab) + 0.5, 0.5 * np.asarray(pred_lab) + 0.5
        if name == "ssim_torchmetrics":
            return np.array([skimage_ssim(t, p) for t, p in zip(true_unit, pred_unit)])
        return np.array([uiqi_torchmetrics_reference(t, p) for t, p in zip(true_unit, pred_unit)])
    true_rgb = color.scaled_lab_to_rgb(true_lab[..., :1], true_lab[..., 1:])
    pred_rgb = color.scaled_lab_to_rgb(pred_lab[..., :1], pred_lab[..., 1:])
    if name == "colorfulness":
        return metrics.colorfulness(pred_rgb).numpy()
    return getattr(metrics, name)(true_rgb, pred_rgb).numpy()


@pytest.mark.parametrize("name", sorted(set(metrics.SCALED_LAB_METRICS) - set(POOLED_RESULTS)))
def test_keras_metric_averages_over_images_across_unequal_batches(name, lab_batches):
    true_lab, pred_lab = lab_batches
    per_image = expected_per_image(name, true_lab, pred_lab)
    # The image mean must differ from the mean of the two batch means.
    assert not np.isclose(per_image.mean(), (per_image[:2].mean() + per_image[2]) / 2, rtol=1e-4)

    metric = metrics.ColorizationMetric(name)
    metric.update_state(true_lab[:2], pred_lab[:2])
    metric.update_state(true_lab[2:], pred_lab[2:])
    assert metric.name == name
    np.testing.assert_allclose(metric.result(), per_image.mean(), rtol=1e-5)


def test_keras_psnr_torchmetrics_pools_squared_errors_over_all_images(lab_batches):
    true_lab, pred_lab = lab_batches
    # torchmetrics' PeakSignalNoiseRatio(data_range=1.0), dim=None: one PSNR of every squared error.
    squared_errors = (0.5 * (np.asarray(true_lab) - np.asarray(pred_lab))) ** 2
    expected = 10 * np.log10(1.0 / squared_errors.mean())
    metric = metrics.ColorizationMetric("psnr_torchmetrics")
    metric.update_state(true_lab[:2], pred_lab[:2])
    metric.update_state(true_lab[2:], pred_lab[2:])
    np.testing.assert_allclose(metric.result(), expected, rtol=1e-5)
    per_image_psnr = 10 * np.log10(1.0 / squared_errors.mean(axis=(1, 2, 3)))
    assert not np.isclose(expected, per_image_psnr.mean(), atol=0.1)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_psnr_from_mse_known_values():
    np.testing.assert_allclose(metrics.psnr_from_mse([0.01, 1.0, 0.0]), [20.0, 0.0, 100.0], rtol=1e-6)


def test_keras_uiqi_torchmetrics_leaves_nan_images_out(lab_batches):
    true_lab, pred_lab = lab_batches
    # Image 1 gets a flat 12x12 square in truth and prediction alike: a 0/0 window, NaN.
    true_lab, pred_lab = true_lab.numpy(), pred_lab.numpy()
    true_lab[1, :12, :12] = pred_lab[1, :12, :12] = 0.2
    per_image = expected_per_image("uiqi_torchmetrics", true_lab, pred_lab)
    assert np.isnan(per_image[1]) and not np.any(np.isnan(per_image[[0, 2]]))
    metric = metrics.ColorizationMetric("uiqi_torchmetrics")
    metric.update_state(true_lab[:2], pred_lab[:2])
    metric.update_state(true_lab[2:], pred_lab[2:], sample_weight=[2.0])
    np.testing.assert_allclose(metric.result(), (per_image[0] + 2 * per_image[2]) / 3, rtol=1e-5)


def test_keras_colorfulness_scores_the_prediction(lab_batches):
    true_lab, pred_lab = lab_batches
    metric = metrics.ColorizationMetric("colorfulness")
    metric.update_state(true_lab, pred_lab)
    swapped = metrics.ColorizationMetric("colorfulness")
    swapped.update_state(pred_lab, true_lab)
    assert metric.result() < 0.9 * swapped.result()


def test_keras_metric_sample_weight_weighs_images(lab_batches):
    true_lab, pred_lab = lab_batches
    per_image = expected_per_image("psnr", true_lab, pred_lab)
    metric = metrics.ColorizationMetric("psnr")
    metric.update_state(true_lab, pred_lab, sample_weight=[1.0, 0.0, 3.0])
    np.testing.assert_allclose(metric.result(), (per_image[0] + 3 * per_image[2]) / 4, rtol=1e-5)


def test_keras_metric_reset_state(lab_batches):
    true_lab, pred_lab = lab_batches
    metric = metrics.ColorizationMetric("l1_ab")
    metric.update_state(true_lab, pred_lab)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(true_lab[2:], pred_lab[2:])
    np.testing.assert_allclose(
        metric.result(), expected_per_image("l1_ab", true_lab[2:], pred_lab[2:])[0], rtol=1e-5
    )


def test_keras_metric_config_round_trips(lab_batches):
    true_lab, pred_lab = lab_batches
    original = metrics.ColorizationMetric("ssim", name="val_ssim", dtype="float64")
    restored = metrics.ColorizationMetric.from_config(original.get_config())
    deserialized = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(original))
    for metric in (restored, deserialized):
        assert isinstance(metric, metrics.ColorizationMetric)
        assert (metric.metric, metric.name, metric.dtype) == ("ssim", "val_ssim", "float64")
    original.update_state(true_lab, pred_lab)
    restored.update_state(true_lab, pred_lab)
    np.testing.assert_allclose(restored.result(), original.result(), rtol=1e-7)


def test_unknown_metric_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid ones: .*'colorfulness'.*'psnr'"):
        metrics.ColorizationMetric("lpips")


def test_keras_metric_rejects_ab_only_predictions(lab_batches):
    true_lab, pred_lab = lab_batches
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        metrics.ColorizationMetric("psnr").update_state(true_lab, pred_lab[..., 1:])


def test_colorization_metrics_in_model_evaluate(lab_batches):
    true_lab, _ = lab_batches
    # A "model" that halves L and ab: its predictions differ from the truth in colour and light.
    model = keras.Sequential([keras.Input(true_lab.shape[1:]), keras.layers.Rescaling(0.5)])
    model.compile(loss="mae", metrics=metrics.colorization_metrics())
    scores = model.evaluate(true_lab, true_lab, batch_size=2, return_dict=True, verbose=0)
    pred_lab = 0.5 * true_lab
    for name in ("psnr", "ssim", "colorfulness"):
        expected = expected_per_image(name, true_lab, pred_lab).mean()
        np.testing.assert_allclose(scores[name], expected, rtol=1e-4)


@pytest.mark.xdist_group("two_replicas")  # one worker, so the fixture's process starts once
def test_keras_metric_sums_state_across_mirrored_replicas(two_replicas):
    state = two_replicas["metric"]  # a batch of 3 split 2 + 1 over the replicas
    assert state["count"] == 3.0
    assert state["result"] == pytest.approx(0.3, rel=1e-5)
