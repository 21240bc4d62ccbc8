"""FID (Heusel et al. 2017): the Fréchet distance against an independent NumPy computation, the frozen Inception-v3
feature extractor with random weights, and FID of colorizers on a small dataset. Nothing touches the network."""

import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf

from chroma import color, evaluation, reports
from chroma.metrics import ActivationStatistics, evaluate_fid, fid_inception, frechet_distance
from chroma.metrics.fid import FEATURES, INPUT_SIZE, KERAS_WEIGHTS_FILE, SINGULAR_OFFSET
from chroma.models.blocks import keras_weights_path

PHOTO_NAMES = ("astronaut", "chelsea", "coffee")
pytestmark = pytest.mark.xdist_group("fid")  # Inception-v3 is built once, on one worker


def photos(size, names=PHOTO_NAMES):
    return np.stack([
        skimage.transform.resize(getattr(skimage.data, name)(), size, anti_aliasing=True) for name in names
    ]).astype(np.float32)


def random_gaussian_statistics(dimensions, count, seed):
    """Mean and covariance of `count` correlated random activations: a random mixing of skewed noise, shifted."""
    rng = np.random.default_rng(seed)
    activations = rng.exponential(size=(count, dimensions)) @ rng.normal(size=(dimensions, dimensions))
    activations += rng.normal(size=dimensions)
    return activations.mean(axis=0), np.atleast_2d(np.cov(activations, rowvar=False))


def symmetric_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def reference_frechet_distance(mu1, sigma1, mu2, sigma2):
    """The same distance without scipy's sqrtm of a non-symmetric product: tr (sigma1 sigma2)^(1/2) is the trace of
    the symmetric (sigma1^(1/2) sigma2 sigma1^(1/2))^(1/2), whose eigenvalues eigh finds."""
    root1 = symmetric_sqrt(sigma1)
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(inner, 0.0, None)).sum()
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt


@pytest.mark.parametrize(
    "dimensions, count, rtol",
    [(1, 50, 1e-12), (8, 200, 1e-10), (64, 500, 1e-10), (64, 40, 1e-7)],  # the last: singular covariances
)
def test_frechet_distance_matches_an_independent_numpy_computation(dimensions, count, rtol):
    first = random_gaussian_statistics(dimensions, count, seed=1)
    second = random_gaussian_statistics(dimensions, count, seed=2)
    expected = reference_frechet_distance(*first, *second)
    assert expected > 0.1
    np.testing.assert_allclose(frechet_distance(*first, *second), expected, rtol=rtol)


def test_frechet_distance_in_one_dimension_is_the_squared_differences_of_means_and_deviations():
    assert frechet_distance(1.0, 4.0, 3.5, 9.0) == pytest.approx(2.5**2 + (2.0 - 3.0) ** 2, rel=1e-12)


def test_frechet_distance_of_diagonal_covariances_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    variances1, variances2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(variances1) - np.sqrt(variances2)) ** 2)
    assert frechet_distance(mu1, np.diag(variances1), mu2, np.diag(variances2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_is_zero_for_identical_statistics_and_symmetric():
    first = random_gaussian_statistics(64, 500, seed=1)
    second = random_gaussian_statistics(64, 500, seed=2)
    assert abs(frechet_distance(*first, *first)) < 1e-9 * np.trace(first[1])
    assert frechet_distance(*first, *second) == pytest.approx(frechet_distance(*second, *first), rel=1e-9)


def test_shifted_means_add_the_squared_shift():
    mu, sigma = random_gaussian_statistics(32, 300, seed=3)
    shift = np.random.default_rng(4).normal(size=32)
    distance = frechet_distance(mu, sigma, mu + shift, sigma)
    assert distance > 0
    assert distance == pytest.approx(shift @ shift, rel=1e-6)
    identity = np.eye(32)
    assert frechet_distance(mu, identity, mu + shift, identity) == pytest.approx(shift @ shift, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy's own warning, before the fallback's
def test_a_product_without_square_root_falls_back_to_offset_diagonals():
    # A Jordan block at 0 has no square root (sqrtm returns inf). Rounding can leave one in the product of two
    # singular covariances; this product is one exactly.
    identity, jordan = np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="no square root"):
        distance = frechet_distance(np.zeros(2), identity, np.zeros(2), jordan)
    # (I + eps I)(J + eps I) = (1 + eps)(eps I + J), whose square root has trace 2 sqrt((1 + eps) eps).
    expected = 2.0 - 4.0 * np.sqrt((1.0 + SINGULAR_OFFSET) * SINGULAR_OFFSET)
    assert distance == pytest.approx(expected, rel=1e-9)


def test_non_covariances_and_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="imaginary part"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(4))


def test_activation_statistics_over_unequal_batches_equal_numpy_on_all_at_once():
    # Far from zero, where summing x x^T and subtracting the mean's outer product at the end loses digits.
    activations = 1e4 + np.random.default_rng(5).normal(size=(23, 6))
    statistics = ActivationStatistics()
    for start in range(0, 23, 5):  # batches of 5, 5, 5, 5, 3
        statistics.update(activations[start:start + 5].astype(np.float64))
    statistics.update(np.zeros((0, 6)))
    mean, covariance = statistics.statistics()
    assert statistics.count == 23
    np.testing.assert_allclose(mean, activations.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(covariance, np.cov(activations, rowvar=False), rtol=1e-9, atol=1e-12)


def test_activation_statistics_need_two_vectors_of_two_dimensions():
    statistics = ActivationStatistics()
    statistics.update(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2 feature vectors, got 1"):
        statistics.statistics()
    with pytest.raises(ValueError, match=r"\(batch, dimensions\)"):
        statistics.update(np.ones(4))


# Inception-v3 runs eagerly at about a second a call on a CPU: it is built once and called as little as can be.
@pytest.fixture(scope="module")
def random_inception():
    keras.utils.set_random_seed(0)
    return fid_inception()


@pytest.fixture(scope="module")
def two_photos(random_inception):
    """Two small photos and their features."""
    images = photos((48, 48), names=("astronaut", "coffee"))
    return images, random_inception(images).numpy()


def test_features_are_2048_per_image_at_any_input_size(random_inception, two_photos):
    images, features = two_photos
    other_size = random_inception(photos((75, 100), names=("chelsea",))).numpy()
    for output in (features, other_size):
        assert output.shape == (len(output), FEATURES)
        assert np.all(np.isfinite(output)) and np.all(output >= 0)  # an average of ReLUs
    assert len(features) == 2 and len(other_size) == 1
    assert random_inception.count_params() == 21_802_784  # keras.applications.InceptionV3(include_top=False)


def test_the_extractor_is_frozen_and_scores_each_image_alone(random_inception, two_photos):
    images, features = two_photos
    assert not random_inception.trainable and not random_inception.trainable_weights
    # Batch normalisation in inference mode: an image's features do not depend on the rest of its batch.
    np.testing.assert_allclose(random_inception(images[1:]).numpy()[0], features[1], rtol=1e-4, atol=1e-7)
    assert not np.allclose(features[0], features[1], rtol=1e-2)


def test_input_is_resized_to_299_and_preprocessed_as_keras_inception_v3(random_inception, two_photos):
    images, features = two_photos
    resized = tf.image.resize(255.0 * images, (INPUT_SIZE, INPUT_SIZE), method="bilinear")
    network = random_inception.get_layer("inception_v3")
    expected = network(keras.applications.inception_v3.preprocess_input(resized)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-7)


@pytest.fixture
def no_downloads(monkeypatch):
    """keras.applications fetch their weights through file_utils.get_file: any call fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args} {kwargs}")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", refuse)


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected = tmp_path / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(FileNotFoundError, match="weights=None") as error:
        fid_inception("imagenet")
    assert str(expected) in str(error.value) and "local .h5 path" in str(error.value)
    assert not any(tmp_path.iterdir())


def test_imagenet_weights_come_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / KERAS_WEIGHTS_FILE
    cached.parent.mkdir()
    cached.touch()
    assert keras_weights_path("imagenet", KERAS_WEIGHTS_FILE, "fid_inception", "") == str(cached)


def test_local_weights_file_loads(random_inception, two_photos, tmp_path, no_downloads):
    images, features = two_photos
    path = tmp_path / "inception.weights.h5"
    random_inception.get_layer("inception_v3").save_weights(path)
    keras.utils.set_random_seed(1)  # other random weights, unless the file replaces them
    np.testing.assert_array_equal(fid_inception(weights=str(path))(images).numpy(), features)


def average_colours():
    """A small feature model for FID over a dataset: the mean colour of each quadrant, 12 features.

    sqrtm of Inception's 2048 x 2048 covariance product takes tens of seconds on a CPU; the mechanics are the same.
    """
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.AveragePooling2D(8), keras.layers.Flatten()])


@pytest.fixture(scope="module")
def tiles():
    """48 tiles of 16x16: the three photos at 64x64 cut into 16 tiles each, as scaled L and ab."""
    images = photos((64, 64)).reshape(3, 4, 16, 4, 16, 3).transpose(0, 1, 3, 2, 4, 5).reshape(48, 16, 16, 3)
    return color.rgb_to_scaled_lab(images)


def tile_dataset(tiles):
    scaled_l, true_ab = tiles
    return tf.data.Dataset.from_tensor_slices({"L": scaled_l, "ab": true_ab}).batch(5)  # last batch of 3


def test_evaluate_fid_is_zero_for_the_truth_and_positive_for_gray(tiles):
    model = average_colours()
    assert abs(evaluate_fid(evaluation.ground_truth, tile_dataset(tiles), model)) < 1e-9
    assert evaluate_fid(evaluation.gray_prediction, tile_dataset(tiles), model) > 1e-3


def test_evaluate_fid_is_the_frechet_distance_of_all_features_at_once(tiles):
    model = average_colours()
    scaled_l, true_ab = tiles

    def upside_down_colours(batch):
        return tf.reverse(batch["ab"], axis=[1])

    real = model(color.scaled_lab_to_rgb(scaled_l, true_ab)).numpy().astype(np.float64)
    fake = model(color.scaled_lab_to_rgb(scaled_l, tf.reverse(true_ab, axis=[1]))).numpy().astype(np.float64)
    expected = reference_frechet_distance(
        real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False)
    )
    assert expected > 1e-3
    np.testing.assert_allclose(evaluate_fid(upside_down_colours, tile_dataset(tiles), model), expected, rtol=1e-6)


def test_evaluate_scores_fid_only_with_a_model(tiles):
    dataset = tile_dataset(tiles)
    scores = evaluation.evaluate(evaluation.gray_prediction, dataset, metrics=("psnr", "fid"),
                                 fid_model=average_colours())
    assert set(scores) == {"psnr", "fid"} and scores["fid"] > 1e-3
    assert scores["psnr"] == pytest.approx(evaluation.evaluate(evaluation.gray_prediction, dataset, ("psnr",))["psnr"])
    without = evaluation.evaluate(evaluation.gray_prediction, dataset, metrics=("psnr", "fid"))
    assert without["fid"] is None
    table = reports.markdown_table([evaluation.scored_row("gray", without)], ["PSNR (dB)", "FID"])
    assert table.splitlines()[0] == "| model | PSNR (dB) | FID |" and table.endswith(f" | {reports.MISSING} |")


def test_evaluate_fid_in_its_single_pass_equals_evaluate_fid(tiles):
    dataset = tile_dataset(tiles)

    def upside_down_colours(batch):
        return tf.reverse(batch["ab"], axis=[1])

    scores = evaluation.evaluate(upside_down_colours, dataset, ("fid",), fid_model=average_colours())
    np.testing.assert_allclose(scores["fid"], evaluate_fid(upside_down_colours, dataset, average_colours()), rtol=1e-9)


def test_fid_on_lab_read_as_rgb_feeds_both_image_sets_as_agosti_did(tiles):
    """Paper agosti's FID: each image's Lab mapped to [0, 1] (L / 100, ab / 220 + 1/2) and read as RGB."""
    scaled_l, true_ab = tiles
    model = average_colours()

    def upside_down_colours(batch):
        return tf.reverse(batch["ab"], axis=[1])

    def lab_read_as_rgb_features(ab):
        lightness, chroma_ab = (scaled_l + 1.0) * 50.0, ab * 110.0  # chroma.color.scale_lab undone
        return model(np.concatenate([lightness / 100.0, chroma_ab / 220.0 + 0.5], axis=-1)).numpy().astype(np.float64)

    real, fake = lab_read_as_rgb_features(true_ab), lab_read_as_rgb_features(tf.reverse(true_ab, axis=[1]))
    expected = reference_frechet_distance(
        real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False)
    )
    dataset = tile_dataset(tiles)
    scores = evaluation.evaluate(upside_down_colours, dataset, ("fid", "fid_lab_as_rgb"), fid_model=model)
    np.testing.assert_allclose(scores["fid_lab_as_rgb"], expected, rtol=1e-6)
    assert scores["fid_lab_as_rgb"] != pytest.approx(scores["fid"], rel=0.05)
    perfect = evaluation.evaluate(evaluation.ground_truth, dataset, ("fid_lab_as_rgb",), fid_model=model)
    assert abs(perfect["fid_lab_as_rgb"]) < 1e-9
    assert evaluation.evaluate(upside_down_colours, dataset, ("fid", "fid_lab_as_rgb")) == {
        "fid": None, "fid_lab_as_rgb": None}  # no weights, no score
    assert evaluation.column_titles(("fid", "fid_lab_as_rgb")) == ["FID", "FID (Lab read as RGB)"]
