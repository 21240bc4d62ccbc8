"""Image-quality metrics the colorization papers report, as pure TensorFlow ops.

Every function takes batches, channels last, shape (B, H, W, C), and returns one
float32 value per image, shape (B,) (`ssim_per_channel`: (B, C); `psnr_from_mse`
maps MSEs to dB). RGB inputs are floats in [0, 1]. Being plain TF ops, they run
eagerly, inside `tf.function` and inside `tf.data.Dataset.map`.
"""

import math

import tensorflow as tf

# PSNR of identical images is +inf; flooring the MSE at 1e-10 caps it at 100 dB
# so averages over a test set stay finite.
PSNR_MSE_FLOOR = 1e-10

# Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error
# visibility to structural similarity", section III-C: 11x11 Gaussian window
# with sigma 1.5, K1 = 0.01, K2 = 0.03. Data range is 1.
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2

# Wang & Bovik 2002, "A universal image quality index", section III: 8x8 window
# moved pixel by pixel.
UIQI_WINDOW_SIZE = 8


def _as_image_batch(images, name, channels=None, min_size=None):
    """Float32 tensor of shape (B, H, W, C); raises on what can be checked statically."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(f"{name} must be a float tensor, got {images.dtype}")
    shape = images.shape
    if shape.rank is not None:
        if shape.rank != 4:
            raise ValueError(f"{name} must have shape (B, H, W, C), got {shape}")
        if channels is not None and shape[-1] not in (None, channels):
            raise ValueError(f"{name} must have {channels} channels, got shape {shape}")
        if min_size is not None and any(size is not None and size < min_size for size in shape[1:3]):
            raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels, got {shape}")
    return tf.cast(images, tf.float32)


def _as_image_pair(true_images, pred_images, channels=None, min_size=None):
    true_images = _as_image_batch(true_images, "true images", channels, min_size)
    pred_images = _as_image_batch(pred_images, "predicted images", channels, min_size)
    if not true_images.shape.is_compatible_with(pred_images.shape):
        raise ValueError(
            f"true and predicted images differ in shape: {true_images.shape} vs {pred_images.shape}"
        )
    return true_images, pred_images


def mse_unit(true_rgb, pred_rgb):
    """Mean squared error per image on the [0, 1] scale (villarenteria's model tables)."""
    true_rgb, pred_rgb = _as_image_pair(true_rgb, pred_rgb)
    return tf.reduce_mean(tf.square(true_rgb - pred_rgb), axis=[1, 2, 3])


def mse_8bit(true_rgb, pred_rgb):
    """Mean squared error per image on the 0..255 scale (villarenteria's baseline table)."""
    return 255.0**2 * mse_unit(true_rgb, pred_rgb)


def psnr_from_mse(mse):
    """PSNR in dB of mean squared errors on a data range of 1: 10 log10(1 / MSE).

    The MSE is floored at `PSNR_MSE_FLOOR`, so a zero error scores 100 dB, not inf.
    """
    mse = tf.maximum(mse, PSNR_MSE_FLOOR)
    return -10.0 * tf.math.log(mse) / math.log(10.0)


def psnr(true_rgb, pred_rgb):
    """PSNR in dB with data range 1, per image: `psnr_from_mse` of `mse_unit`.

    Identical images score 100 dB, not inf.
    """
    return psnr_from_mse(mse_unit(true_rgb, pred_rgb))


def _separable_filter_valid(images, weights):
    """The square window outer(weights, weights) per channel, keeping only full windows; as two 1-D passes,
    which in float64 (no oneDNN kernel there) is 10x faster than one 2-D pooling or convolution."""
    channels = tf.shape(images)[-1]
    vertical = tf.tile(tf.reshape(weights, [-1, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(weights, [1, -1, 1, 1]), [1, 1, channels, 1])
    images = tf.nn.depthwise_conv2d(images, vertical, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(images, horizontal, [1, 1, 1, 1], "VALID")


def _gaussian_blur_valid(images):
    """Separable 11x11 Gaussian (sigma 1.5) per channel, keeping only full windows."""
    offsets = tf.range(SSIM_WINDOW_SIZE, dtype=images.dtype) - (SSIM_WINDOW_SIZE - 1) / 2
    weights = tf.exp(-tf.square(offsets) / (2.0 * SSIM_SIGMA**2))
    return _separable_filter_valid(images, weights / tf.reduce_sum(weights))


def ssim_per_channel(true_rgb, pred_rgb):
    """SSIM of each channel, shape (B, C): the channel-wise SSIM bruvik reports.

    Wang et al. 2004, eq. 13, averaged over the SSIM map (eq. 17). Only windows
    lying fully inside the image are scored, which equals skimage's
    `structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`: it filters with reflected borders and then
    crops the 5 pixels those borders touch.
    """
    true_rgb, pred_rgb = _as_image_pair(true_rgb, pred_rgb, min_size=SSIM_WINDOW_SIZE)
    mean_true = _gaussian_blur_valid(true_rgb)
    mean_pred = _gaussian_blur_valid(pred_rgb)
    var_true = _gaussian_blur_valid(true_rgb * true_rgb) - mean_true * mean_true
    var_pred = _gaussian_blur_valid(pred_rgb * pred_rgb) - mean_pred * mean_pred
    covariance = _gaussian_blur_valid(true_rgb * pred_rgb) - mean_true * mean_pred
    ssim_map = ((2.0 * mean_true * mean_pred + SSIM_C1) * (2.0 * covariance + SSIM_C2)) / (
        (mean_true**2 + mean_pred**2 + SSIM_C1) * (var_true + var_pred + SSIM_C2)
    )
    return tf.reduce_mean(ssim_map, axis=[1, 2])


def ssim(true_rgb, pred_rgb):
    """SSIM (Wang et al. 2004) per image: the mean of `ssim_per_channel` over channels."""
    return tf.reduce_mean(ssim_per_channel(true_rgb, pred_rgb), axis=-1)


def _window_mean(images):
    """Mean over every 8x8 window lying inside the image."""
    return _separable_filter_valid(images, tf.fill([UIQI_WINDOW_SIZE], tf.constant(1 / UIQI_WINDOW_SIZE, images.dtype)))


def _window_is_flat(images, size=UIQI_WINDOW_SIZE):
    """True where every pixel of the window is the same. Give it the float32 images: float64 max pooling
    has no oneDNN kernel and is 10x slower, and casting to float64 keeps every equality."""
    window_max = tf.nn.max_pool2d(images, size, strides=1, padding="VALID")
    window_min = -tf.nn.max_pool2d(-images, size, strides=1, padding="VALID")
    return tf.equal(window_max, window_min)


def uiqi(true_rgb, pred_rgb):
    """Universal Image Quality Index (Wang & Bovik 2002, "A universal image quality index").

    Q = 4 sxy mx my / ((sx^2 + sy^2)(mx^2 + my^2)) over every 8x8 window (stride 1,
    uniform weights, population statistics), averaged over windows and channels.
    Zero denominators follow Wang's reference code img_qi.m: where only the
    variance term is 0 (both windows flat), Q = 2 mx my / (mx^2 + my^2), so flat
    identical windows score 1; wherever the mean term is 0 (for images in [0, 1]:
    both windows black), Q = 1. Never NaN.
    """
    true_rgb, pred_rgb = _as_image_pair(true_rgb, pred_rgb, min_size=UIQI_WINDOW_SIZE)
    # float64: E[x^2] - E[x]^2 in float32 loses the small variances of smooth regions.
    x = tf.cast(true_rgb, tf.float64)
    y = tf.cast(pred_rgb, tf.float64)
    flat_x, flat_y = _window_is_flat(true_rgb), _window_is_flat(pred_rgb)
    mean_x, mean_y = _window_mean(x), _window_mean(y)
    var_x = _window_mean(x * x) - mean_x * mean_x
    var_y = _window_mean(y * y) - mean_y * mean_y
    covariance = _window_mean(x * y) - mean_x * mean_y
    # The variance term picks the formula below, so flat windows (max == min) get
    # exactly zero variance whatever the summation order leaves as rounding noise.
    zeros = tf.zeros_like(var_x)
    var_x = tf.where(flat_x, zeros, tf.maximum(var_x, 0.0))
    var_y = tf.where(flat_y, zeros, tf.maximum(var_y, 0.0))

    variance_term = var_x + var_y
    mean_term = mean_x * mean_x + mean_y * mean_y
    full_quality = tf.math.divide_no_nan(
        4.0 * covariance * mean_x * mean_y, variance_term * mean_term
    )
    flat_quality = tf.math.divide_no_nan(2.0 * mean_x * mean_y, mean_term)
    quality_map = tf.where(
        variance_term * mean_term > 0.0,
        full_quality,
        tf.where(mean_term > 0.0, flat_quality, tf.ones_like(mean_term)),
    )
    return tf.cast(tf.reduce_mean(quality_map, axis=[1, 2, 3]), tf.float32)


def uiqi_torchmetrics(true_images, pred_images):
    """UIQI as torchmetrics 0.8-0.11 computes it (`universal_image_quality_index`), which
    paper agosti reports; any value range, since that UIQI ignores its `data_range`.

    Q = 4 sxy mx my / ((sx^2 + sy^2)(mx^2 + my^2)) with the statistics weighted by
    SSIM's 11x11 Gaussian (sigma 1.5) instead of Wang & Bovik's uniform 8x8 window,
    over the windows lying fully inside the image (torchmetrics pads by reflection and
    crops the 5 pixels it touched), averaged over windows and channels; no stabilising
    constant (torchmetrics added an epsilon only in 1.0). A window whose denominator
    is 0 (flat in both images, or of mean 0 in both) is 0/0, so the image scores
    NaN: agosti's code leaves such images out of its means.
    """
    true_images, pred_images = _as_image_pair(true_images, pred_images, min_size=SSIM_WINDOW_SIZE)
    # float64 and exact flatness: torchmetrics' float32 E[x^2] - E[x]^2 turns the small
    # variances of smooth ab regions into noise, and flat windows into noise, NaN or inf.
    x = tf.cast(true_images, tf.float64)
    y = tf.cast(pred_images, tf.float64)
    mean_x, mean_y = _gaussian_blur_valid(x), _gaussian_blur_valid(y)
    flat_x = _window_is_flat(true_images, SSIM_WINDOW_SIZE)
    flat_y = _window_is_flat(pred_images, SSIM_WINDOW_SIZE)
    zeros = tf.zeros_like(mean_x)
    var_x = tf.where(flat_x, zeros, tf.maximum(_gaussian_blur_valid(x * x) - mean_x * mean_x, 0.0))
    var_y = tf.where(flat_y, zeros, tf.maximum(_gaussian_blur_valid(y * y) - mean_y * mean_y, 0.0))
    covariance = tf.where(flat_x | flat_y, zeros, _gaussian_blur_valid(x * y) - mean_x * mean_y)
    denominator = (var_x + var_y) * (mean_x * mean_x + mean_y * mean_y)
    quality_map = tf.where(
        denominator > 0.0,
        tf.math.divide_no_nan(4.0 * covariance * mean_x * mean_y, denominator),
        tf.fill(tf.shape(denominator), tf.constant(math.nan, tf.float64)),
    )
    return tf.cast(tf.reduce_mean(quality_map, axis=[1, 2, 3]), tf.float32)


def colorfulness(rgb):
    """Colorfulness per image on the 0..255 scale: metric M^(3) of Hasler & Suesstrunk
    2003, "Measuring colourfulness in natural images".

    rg = R - G, yb = (R + G) / 2 - B,
    M = sqrt(var_rg + var_yb) + 0.3 sqrt(mean_rg^2 + mean_yb^2). Gray images score 0.
    """
    rgb = 255.0 * _as_image_batch(rgb, "images", channels=3)
    red, green, blue = tf.unstack(rgb, axis=-1)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    variance_rg = tf.math.reduce_variance(rg, axis=[1, 2])
    variance_yb = tf.math.reduce_variance(yb, axis=[1, 2])
    mean_rg = tf.reduce_mean(rg, axis=[1, 2])
    mean_yb = tf.reduce_mean(yb, axis=[1, 2])
    return tf.sqrt(variance_rg + variance_yb) + 0.3 * tf.sqrt(mean_rg**2 + mean_yb**2)


def l1_ab(true_ab, pred_ab):
    """Mean absolute error on the scaled ab channels in [-1, 1], (B, H, W, 2):
    the test L1 nampouri reports."""
    true_ab, pred_ab = _as_image_pair(true_ab, pred_ab, channels=2)
    return tf.reduce_mean(tf.abs(true_ab - pred_ab), axis=[1, 2, 3])
