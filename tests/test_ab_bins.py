"""The quantised ab output space of Zhang, Isola & Efros 2016 (chroma.ab_bins)."""

import numpy as np
import pytest
import tensorflow as tf

from chroma import ab_bins, color
from helpers import photo_lab

BINS = ab_bins.in_gamut_bins()  # computed once (cached) for the whole module
PAPER_BIN_COUNT = 313


@pytest.fixture(scope="module")
def photo_ab():
    """Two real photos' ab at 16x16, a*b* units: (2, 16, 16, 2)."""
    return photo_lab(16)[1] * color.AB_SCALE


def bin_index(ab):
    matches = np.flatnonzero(np.all(BINS == np.float32(ab), axis=-1))
    assert len(matches) == 1, ab
    return int(matches[0])


def test_bins_are_multiples_of_the_grid_and_include_gray():
    assert BINS.shape[1] == 2
    np.testing.assert_array_equal(BINS % 10, 0)
    assert len(np.unique(BINS, axis=0)) == len(BINS)
    bin_index((0, 0))


def test_bin_count_is_near_the_papers():
    print(f"{len(BINS)} in-gamut bins at grid 10 (the paper: {PAPER_BIN_COUNT})")
    assert len(BINS) == 309
    assert abs(len(BINS) - PAPER_BIN_COUNT) <= 0.15 * PAPER_BIN_COUNT


def test_released_tables_first_row_is_present_and_first():
    bin_index((-90, 50))
    # Sorted by a then b, like the released table.
    np.testing.assert_array_equal(BINS[0], [-90, 50])
    np.testing.assert_array_equal(BINS, BINS[np.lexsort((BINS[:, 1], BINS[:, 0]))])


def test_every_srgb_colour_lies_in_a_square_of_four_bins():
    rgb = np.random.default_rng(0).uniform(0.0, 1.0, (2000, 3))
    rgb = np.concatenate([rgb, np.eye(3), 1.0 - np.eye(3)])  # the primaries and secondaries, the extremes
    ab = color.rgb_to_lab(rgb)[:, 1:].numpy()
    low, high = 10 * np.floor(ab / 10), 10 * np.ceil(ab / 10)
    bins = {tuple(centre) for centre in BINS}
    for corner in (low, high, np.stack([low[:, 0], high[:, 1]], -1), np.stack([high[:, 0], low[:, 1]], -1)):
        assert all(tuple(point) in bins for point in corner.astype(np.float32))


def test_soft_encoding_weighs_exactly_the_nearest_bins(photo_ab):
    for neighbours in (5, 10):
        encoded = ab_bins.soft_encode(photo_ab, BINS, neighbours=neighbours).numpy()
        assert encoded.shape == (*photo_ab.shape[:-1], len(BINS))
        np.testing.assert_allclose(encoded.sum(axis=-1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(np.count_nonzero(encoded, axis=-1), neighbours)
        np.testing.assert_array_equal(encoded.argmax(axis=-1), ab_bins.nearest_bin(photo_ab, BINS))


def test_soft_encoding_of_a_bin_centre_peaks_there():
    centre = bin_index((0, 0))
    encoded = ab_bins.soft_encode(tf.constant([[0.0, 0.0]]), BINS).numpy()[0]
    # The centre (d = 0) and its four neighbours at d = 10: exp(-100 / 50) each.
    assert encoded.argmax() == centre
    np.testing.assert_allclose(encoded[centre], 1.0 / (1.0 + 4.0 * np.exp(-2.0)), rtol=1e-5)


def test_soft_encoding_in_tf_data_with_unknown_shapes(photo_ab):
    dataset = tf.data.Dataset.from_tensor_slices(photo_ab).map(lambda ab: ab_bins.soft_encode(ab, BINS))
    np.testing.assert_allclose(np.stack(list(dataset)), ab_bins.soft_encode(photo_ab, BINS), atol=1e-7)


def test_empirical_prior_of_photos_is_a_distribution_near_gray(photo_ab):
    prior = ab_bins.empirical_prior([photo_ab[:1], photo_ab[1:]], BINS)
    assert prior.shape == (len(BINS),) and np.all(prior >= 0)
    assert prior.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(prior, ab_bins.empirical_prior([photo_ab], BINS), rtol=1e-12)
    # Photos are mostly unsaturated: the bins within 50 of gray, a quarter of them, hold most of the mass.
    near_gray = np.linalg.norm(BINS, axis=-1) <= 50
    assert near_gray.mean() < 0.3 and prior[near_gray].sum() > 0.7
    assert prior.argmax() == bin_index((0, 0))


def test_empirical_prior_smooths_one_colour_over_its_neighbours():
    prior = ab_bins.empirical_prior([np.zeros((4, 2))], BINS)
    # A Gaussian of sigma 5 over the grid: neighbours at d = 10 get exp(-2) of the centre, at d = 14.1 exp(-4).
    centre = bin_index((0, 0))
    np.testing.assert_allclose(prior[bin_index((10, 0))] / prior[centre], np.exp(-2.0))
    np.testing.assert_allclose(prior[bin_index((-10, 10))] / prior[centre], np.exp(-4.0))


def test_rebalancing_weights_average_one_under_the_prior_and_favour_rare_bins(photo_ab):
    prior = ab_bins.empirical_prior([photo_ab], BINS)
    for lam in (0.0, 0.5, 1.0):
        weights = ab_bins.rebalancing_weights(prior, lam=lam)
        assert np.sum(prior * weights) == pytest.approx(1.0)
        seen = prior > 0
        by_prior = np.argsort(prior[seen])
        assert np.all(np.diff(weights[seen][by_prior]) <= 1e-12)  # rarer bins, larger weights
    np.testing.assert_allclose(ab_bins.rebalancing_weights(prior, lam=1.0), 1.0)
    weights = ab_bins.rebalancing_weights(prior)
    assert weights[prior.argmin()] > 1.0 > weights[prior.argmax()]


def test_rebalancing_weights_without_smoothing_term_skip_empty_bins():
    prior = np.array([0.5, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(ab_bins.rebalancing_weights(prior, lam=0.0), [2 / 3, 4 / 3, 4 / 3, 0.0])


def test_annealed_mean_goes_from_the_mode_to_the_mean():
    modes = tf.random.stateless_uniform([2, 3], seed=[0, 2], maxval=len(BINS), dtype=tf.int32)
    # Each pixel's mode leads the others by more than 0.9, which T = 1e-3 makes 900: all the mass.
    logits = 0.01 * tf.random.stateless_normal([2, 3, len(BINS)], seed=[0, 1]) + tf.one_hot(modes, len(BINS))
    mode = ab_bins.annealed_mean(logits, BINS, temperature=1e-3)
    np.testing.assert_allclose(mode, BINS[modes.numpy()], atol=1e-4)
    mean = ab_bins.annealed_mean(logits, BINS, temperature=1.0)
    np.testing.assert_allclose(mean, tf.nn.softmax(logits) @ BINS, rtol=1e-5, atol=1e-4)
    # log z / T for z = softmax(logits): the same distribution as logits / T.
    paper = tf.nn.softmax(tf.math.log(tf.nn.softmax(logits)) / 0.38) @ BINS
    np.testing.assert_allclose(ab_bins.annealed_mean(logits, BINS), paper, rtol=1e-4, atol=1e-3)
