"""The quantised ab output space of Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016).

Sections 2.1-2.3 as the facts sheet (zhang2016-facts.md) gives them: ab is quantised on a grid of 10 keeping
the in-gamut bins (Q = 313 in the released table); each pixel's target is a soft-encoding over its 5 nearest
bins (Gaussian, sigma 5); the loss weighs each pixel by a rebalancing weight w ~ ((1 - lambda) p + lambda / Q)^-1
of the smoothed empirical prior p (lambda 1/2, sigma 5); the output is the annealed mean, the expectation under
softmax(log z / T), T = 0.38.

Colours are in a*b* units here (not chroma's scaled ab / 110). `soft_encode`, `nearest_bin` and
`annealed_mean` are TF ops, usable in `tf.data` and inside a model; the bins, the prior and the weights are
NumPy arrays computed once.
"""

import functools

import numpy as np
import tensorflow as tf

from chroma import color

# Every 8-bit value along each edge of the sRGB cube (k / 255). At grid 10 the bins stop changing from
# here on: 256, 512, 1024 and 2048 samples per edge all give the same 309 bins (64 and 128 give 306).
CUBE_SAMPLES_PER_EDGE = 256

# Facts sheet, sections 2.2-2.3.
SOFT_ENCODING_NEIGHBOURS = 5
SOFT_ENCODING_SIGMA = 5.0
PRIOR_SMOOTHING_SIGMA = 5.0
REBALANCING_LAMBDA = 0.5
ANNEALED_MEAN_TEMPERATURE = 0.38


def _srgb_cube_surface(samples_per_edge):
    """Colours on the six faces of the sRGB cube, (N, 3) float64 in [0, 1]."""
    steps = np.linspace(0.0, 1.0, samples_per_edge)
    u, v = (grid.ravel() for grid in np.meshgrid(steps, steps, indexing="ij"))
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            channels = [u, v]
            channels.insert(axis, np.full_like(u, value))
            faces.append(np.stack(channels, axis=-1))
    return np.concatenate(faces)


@functools.cache
def in_gamut_bins(grid=10):
    """The bin centres (Q, 2) in a*b* units, multiples of `grid`, sorted by a then b as the released table.

    A bin is in gamut when some sRGB colour (at any lightness) lies within one grid step of its centre in both
    a and b: when it is a corner of a grid square holding an sRGB colour. Then every sRGB colour lies in a
    square whose four corners are bins, so the annealed mean, a convex combination of bin centres, can reach
    every sRGB colour. Keeping only the bins whose own cell (centre +- grid / 2) holds a colour gives 261 bins
    at grid 10, and leaves the most saturated colours (pure green, ab (-86, 83)) outside the bins' hull. The
    corner rule gives 309 bins at grid 10, among them the released table's first row (-90, 50); the paper's
    313 come from a rule the facts sheet leaves unconfirmed, one that reaches slightly further.

    The ab reached over all lightnesses is the projection of the gamut's solid, which is the projection of
    its surface (the ends of each vertical line through the solid lie on the surface), so sampling the cube's
    six faces through chroma.color.rgb_to_lab finds every square an sRGB colour falls in, with no unclipped
    Lab -> RGB conversion to reimplement.
    """
    ab = color.rgb_to_lab(tf.constant(_srgb_cube_surface(CUBE_SAMPLES_PER_EDGE)))[:, 1:].numpy()
    squares = np.unique(np.floor(ab / grid).astype(np.int64), axis=0)  # each square's lower-left corner
    corners = np.concatenate([squares + offset for offset in ((0, 0), (0, 1), (1, 0), (1, 1))])
    bins = (grid * np.unique(corners, axis=0)).astype(np.float32)
    bins.setflags(write=False)  # cached: shared by every caller
    return bins


def _as_ab(ab):
    ab = tf.convert_to_tensor(ab, dtype_hint=tf.float32)
    return ab if ab.dtype.is_floating else tf.cast(ab, tf.float32)


def _squared_distances(ab, bins):
    """(..., Q) squared distances from each colour (..., 2) to each bin centre."""
    return tf.reduce_sum(tf.square(ab[..., None, :] - tf.cast(bins, ab.dtype)), axis=-1)


def nearest_bin(ab, bins):
    """ab (..., 2) in a*b* units -> (...,) int32 index of the nearest bin: each pixel's class."""
    return tf.argmin(_squared_distances(_as_ab(ab), bins), axis=-1, output_type=tf.int32)


def soft_encode(ab, bins, neighbours=SOFT_ENCODING_NEIGHBOURS, sigma=SOFT_ENCODING_SIGMA):
    """ab (..., 2) in a*b* units -> (..., Q) target distributions (section 2.2).

    The `neighbours` nearest bins get exp(-d^2 / (2 sigma^2)), normalised to sum 1, and every other bin 0.
    The paper uses 5 neighbours, the released training code 10.
    """
    ab = _as_ab(ab)
    bin_count = len(bins)
    negative_distances, nearest = tf.math.top_k(-_squared_distances(ab, bins), k=neighbours)
    # The softmax is the normalised Gaussian, without 0 / 0 for colours far from every bin.
    weights = tf.nn.softmax(negative_distances / (2.0 * sigma**2), axis=-1)
    # Scattering (pixels, neighbours) weights needs no (pixels, neighbours, Q) one-hot tensor.
    nearest = tf.reshape(nearest, [-1, neighbours])
    pixels = tf.broadcast_to(tf.range(tf.shape(nearest)[0])[:, None], tf.shape(nearest))
    encoded = tf.scatter_nd(
        tf.stack([pixels, nearest], axis=-1), tf.reshape(weights, [-1, neighbours]), [tf.shape(nearest)[0], bin_count]
    )
    return tf.reshape(encoded, tf.concat([tf.shape(ab)[:-1], [bin_count]], axis=0))


def empirical_prior(ab_batches, bins, sigma=PRIOR_SMOOTHING_SIGMA):
    """The distribution p (Q,) of the colours in `ab_batches` over the bins (section 2.3), float64.

    ab_batches: an iterable of ab arrays (..., 2) in a*b* units, such as a dataset's batches, read once.
    Each pixel counts for its nearest bin; the counts are smoothed by a Gaussian of `sigma` in ab space
    (from every bin to every bin) and renormalised to sum 1.
    """
    counts = np.zeros(len(bins))
    for ab in ab_batches:
        counts += np.bincount(nearest_bin(ab, bins).numpy().ravel(), minlength=len(bins))
    if not counts.sum():
        raise ValueError("empirical_prior needs at least one pixel")
    bins = np.asarray(bins, np.float64)
    bin_distances = np.sum(np.square(bins[:, None, :] - bins[None, :, :]), axis=-1)
    smoothed = np.exp(-bin_distances / (2.0 * sigma**2)) @ counts
    return smoothed / smoothed.sum()


def rebalancing_weights(prior, lam=REBALANCING_LAMBDA):
    """Class weights w (Q,), float64, proportional to ((1 - lam) p + lam / Q)^-1 and normalised so that
    sum(p * w) == 1 (section 2.3: lambda = 1/2 for the loss, 0 for the rebalanced AuC of section 3.1).

    With lam = 0, bins of prior 0 get weight 0, not inf: no pixel falls in them.
    """
    prior = np.asarray(prior, np.float64)
    mixture = (1.0 - lam) * prior + lam / prior.size
    weights = np.divide(1.0, mixture, out=np.zeros_like(mixture), where=mixture > 0)
    return weights / np.sum(prior * weights)


def annealed_mean(logits, bins, temperature=ANNEALED_MEAN_TEMPERATURE):
    """(..., Q) logits -> (..., 2) ab in a*b* units: the expectation over the bin centres under
    softmax(log z / T), z = softmax(logits) (section 2.3).

    log z is the logits minus a constant per pixel, so that softmax is softmax(logits / T). T -> 0 gives
    the most likely bin's centre, T = 1 the plain mean; the paper uses 0.38.
    """
    logits = tf.convert_to_tensor(logits)
    probabilities = tf.nn.softmax(logits / temperature, axis=-1)
    return tf.tensordot(probabilities, tf.cast(bins, probabilities.dtype), axes=1)
