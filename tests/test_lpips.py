"""LPIPS (Zhang et al. 2018) in Keras, checked against numbers of the reference PyTorch `lpips` package."""

import functools
import math

import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from chroma import color
from chroma.metrics import LPIPS, evaluate_lpips, lpips_distance

PHOTO_NAMES = ("astronaut", "chelsea", "coffee")

# torchvision's feature convolutions: (index in `features`, out channels, in channels, kernel size).
ALEX_CONVS = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3))
VGG_CONVS = tuple(
    (index, out_channels, in_channels, 3)
    for index, out_channels, in_channels in (
        (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
        (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
    )
)
CONVS = {"alex": ALEX_CONVS, "vgg": VGG_CONVS}
TAP_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
pytestmark = pytest.mark.xdist_group("lpips")  # the networks and weights files: made once, on one worker

# lpips 0.1.4 on torch 2.14 (CPU): lpips.LPIPS(net, pnet_rand=True) given `random_torch_weights(net)` through
# load_state_dict (features.N -> net.sliceK.N, linN -> linN and lins.N), then
# model(photos, distorted_photos, normalize=True) on `photos()` and `distorted(photos())`.
REFERENCE_DISTANCES = {
    "alex": [0.0021635761950165033, 0.007571036461740732, 0.014762407168745995],
    "vgg": [0.0024566759821027517, 0.00524924835190177, 0.013691246509552002],
}


def torch_shapes(net):
    """The .npz names and PyTorch-layout shapes of the module docstring's conversion recipe."""
    shapes = {}
    for index, out_channels, in_channels, size in CONVS[net]:
        shapes[f"features.{index}.weight"] = (out_channels, in_channels, size, size)
        shapes[f"features.{index}.bias"] = (out_channels,)
    for tap, channels in enumerate(TAP_CHANNELS[net]):
        shapes[f"lin{tap}.model.1.weight"] = (1, channels, 1, 1)
    return shapes


def random_torch_weights(net, seed=0):
    """He-scaled random convolutions and non-negative heads, in PyTorch's layout (kernels OIHW)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in torch_shapes(net).items():
        if key.startswith("lin"):
            arrays[key] = rng.uniform(0.0, 2.0 / shape[1], shape)
        elif key.endswith("weight"):
            arrays[key] = rng.normal(0.0, math.sqrt(2.0 / math.prod(shape[1:])), shape)
        else:
            arrays[key] = rng.normal(0.0, 0.1, shape)
    return {key: value.astype(np.float32) for key, value in arrays.items()}


@functools.cache
def photos(size=64):
    """The photos at size x size, resized once per size and read-only: the tests share them."""
    images = np.stack([
        skimage.transform.resize(getattr(skimage.data, name)(), (size, size), anti_aliasing=True)
        for name in PHOTO_NAMES
    ]).astype(np.float32)
    images.setflags(write=False)
    return images


def distorted(images):
    """Noise on the first photo, a colour shift on the second, the third in gray."""
    noisy = np.clip(images[0] + np.random.default_rng(1).normal(0.0, 0.1, images[0].shape), 0, 1)
    shifted = np.clip(images[1] + np.float32([0.08, -0.05, 0.1]), 0, 1)
    gray = np.repeat(images[2] @ np.float32([0.2125, 0.7154, 0.0721]), 3).reshape(images[2].shape)
    return np.stack([noisy, shifted, gray]).astype(np.float32)


def save_weights(arrays, path):
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def alex_weights_file(tmp_path_factory):
    return save_weights(random_torch_weights("alex"), tmp_path_factory.mktemp("lpips") / "lpips_alex.npz")


@pytest.fixture(scope="module")
def vgg_weights_file(tmp_path_factory):
    """Random LPIPS-vgg weights (14.7 million numbers) as an .npz, drawn once for the tests that read one."""
    return save_weights(random_torch_weights("vgg"), tmp_path_factory.mktemp("lpips") / "lpips_vgg.npz")


@pytest.fixture(scope="module")
def random_alex():
    keras.utils.set_random_seed(0)
    return LPIPS()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_reference_lpips_package(net, request):
    model = LPIPS(net, weights=request.getfixturevalue(f"{net}_weights_file"))
    images = photos()
    np.testing.assert_allclose(model(images, distorted(images)), REFERENCE_DISTANCES[net], rtol=1e-4)


def test_first_tap_is_torch_alexnet_conv1_on_lpips_scaled_input(alex_weights_file):
    model = LPIPS(weights=alex_weights_file)
    weights = random_torch_weights("alex")
    kernel, bias = weights["features.0.weight"], weights["features.0.bias"]  # OIHW
    image = photos(40)[:1]
    # lpips' ScalingLayer on [-1, 1] inputs, then torch's Conv2d(3, 64, 11, stride=4, padding=2) and ReLU.
    scaled = (2.0 * image - 1.0 - np.float32([-0.030, -0.088, -0.188])) / np.float32([0.458, 0.448, 0.450])
    padded = np.pad(scaled, [(0, 0), (2, 2), (2, 2), (0, 0)])
    windows = sliding_window_view(padded, (11, 11), axis=(1, 2))[:, ::4, ::4]  # (B, H', W', C, kh, kw)
    expected = np.maximum(np.einsum("byxchw,ochw->byxo", windows, kernel) + bias, 0.0)
    assert expected.shape == (1, 9, 9, 64)
    np.testing.assert_allclose(model.features(scaled)[0], expected, rtol=1e-4, atol=1e-4)


def test_npz_loading_equals_setting_the_weights_directly(alex_weights_file):
    loaded = LPIPS(weights=alex_weights_file)
    direct = LPIPS()
    weights = random_torch_weights("alex")
    for index, *_ in ALEX_CONVS:
        direct.features.get_layer(f"features_{index}").set_weights(
            [weights[f"features.{index}.weight"].transpose(2, 3, 1, 0), weights[f"features.{index}.bias"]]
        )
    for tap, head in enumerate(direct.heads):
        head.set_weights([weights[f"lin{tap}.model.1.weight"].transpose(2, 3, 1, 0)])
    images = photos()
    np.testing.assert_allclose(loaded(images, distorted(images)), direct(images, distorted(images)), rtol=1e-6)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identical_images_are_at_distance_zero_and_the_distance_is_symmetric(net):
    keras.utils.set_random_seed(0)
    model = LPIPS(net)
    images, others = photos(), distorted(photos())
    np.testing.assert_array_equal(model(images, images), np.zeros(3))
    forward = model(images, others).numpy()
    assert np.all(forward > 0)
    np.testing.assert_allclose(model(others, images), forward, rtol=1e-6)


def test_distance_grows_with_noise(random_alex):
    astronaut = photos()[:1]
    sigmas = (0.02, 0.05, 0.1, 0.2)
    rng = np.random.default_rng(0)
    noisy = np.concatenate([
        np.clip(astronaut + rng.normal(0.0, sigma, astronaut.shape), 0.0, 1.0) for sigma in sigmas
    ]).astype(np.float32)
    distances = lpips_distance(np.repeat(astronaut, len(sigmas), axis=0), noisy, random_alex).numpy()
    assert distances.shape == (len(sigmas),)
    assert np.all(np.diff(distances) > 0), distances


def test_parameter_counts_are_torchvisions_features_plus_the_heads():
    # torchvision: AlexNet().features has 2,469,696 parameters, VGG16().features 14,714,688; the heads
    # add one weight per tapped channel.
    assert LPIPS("alex").count_params() == 2_469_696 + sum(TAP_CHANNELS["alex"])
    assert LPIPS("vgg").count_params() == 14_714_688 + sum(TAP_CHANNELS["vgg"])


def test_a_missing_weights_file_explains_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no LPIPS weights at .*absent\.npz.*recipe"):
        LPIPS(weights=tmp_path / "absent.npz")


def drop(key):
    def corrupt(arrays):
        del arrays[key]
    return corrupt


def reshape(key, shape):
    def corrupt(arrays):
        arrays[key] = np.zeros(shape, np.float32)
    return corrupt


def add(key, value):
    def corrupt(arrays):
        arrays[key] = value
    return corrupt


def negate(key):
    def corrupt(arrays):
        arrays[key] = -arrays[key]
    return corrupt


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (drop("lin4.model.1.weight"), r"no array 'lin4\.model\.1\.weight'"),
        (reshape("features.3.weight", (192, 64, 3, 3)),
         r"'features\.3\.weight' has shape \(192, 64, 3, 3\), LPIPS-alex needs \(192, 64, 5, 5\)"),
        # A Keras-layout (HWIO) kernel is caught: the file must hold PyTorch's layout.
        (reshape("features.0.weight", (11, 11, 3, 64)), r"'features\.0\.weight' has shape \(11, 11, 3, 64\)"),
        (add("lins.0.model.1.weight", np.ones((1, 64, 1, 1), np.float32)), r"\['lins\.0\.model\.1\.weight'\]"),
        (negate("lin2.model.1.weight"), r"'lin2\.model\.1\.weight' has negative weights"),
    ],
)
def test_bad_weights_files_name_the_key_and_change_nothing(corrupt, message, tmp_path, random_alex):
    arrays = random_torch_weights("alex")
    corrupt(arrays)
    before = [weight.numpy() for weight in random_alex.weights]
    with pytest.raises(ValueError, match=message):
        random_alex.load_npz_weights(save_weights(arrays, tmp_path / "bad.npz"))
    for weight, value in zip(random_alex.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_vgg_file_does_not_load_into_alexnet(vgg_weights_file):
    with pytest.raises(ValueError, match=r"LPIPS-alex does not have: \['features\.12\.bias'"):
        LPIPS("alex", weights=vgg_weights_file)


def test_a_recipe_choosing_vgg_gets_an_lpips_vgg_from_its_weights_and_refuses_alexnets(
        vgg_weights_file, alex_weights_file):
    from chroma.recipes import load_experiment
    from chroma.reproduce import metric_networks

    agosti = load_experiment("agosti")
    assert agosti.LPIPS_NETWORK == "vgg"
    lpips_model, fid_model = metric_networks({"lpips": vgg_weights_file}, agosti.LPIPS_NETWORK)
    assert lpips_model.net == "vgg" and fid_model is None
    images = photos()
    np.testing.assert_allclose(lpips_model(images, distorted(images)), REFERENCE_DISTANCES["vgg"], rtol=1e-4)
    # The asset of another network than the recipe's: its file names the arrays VGG16 lacks.
    with pytest.raises(ValueError, match=r"lpips_alex\.npz holds arrays that LPIPS-vgg does not have: \['features\.3"):
        metric_networks({"lpips": alex_weights_file}, agosti.LPIPS_NETWORK)
    assert metric_networks({"lpips": alex_weights_file})[0].net == "alex"  # a recipe's default, Zhang et al.'s


def test_images_smaller_than_alexnet_can_see_are_refused(random_alex):
    images = photos(31)
    assert random_alex(images, images).shape == (3,)
    with pytest.raises(ValueError, match="at least 31x31"):
        random_alex(photos(30), photos(30))


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match=r"one of \['alex', 'vgg'\]"):
        LPIPS("squeeze")


def test_reloads_identically_without_the_weights_file(alex_weights_file, tmp_path):
    # tests/helpers' assert_reloads_identically calls a model on one input; LPIPS takes two.
    model = LPIPS(weights=alex_weights_file)
    images = photos()
    path = tmp_path / "lpips.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_allclose(reloaded(images, distorted(images)), model(images, distorted(images)), rtol=1e-6)


def test_evaluate_lpips_averages_over_images_across_unequal_batches(random_alex):
    scaled_l, true_ab = color.rgb_to_scaled_lab(photos())
    dataset = tf.data.Dataset.from_tensor_slices({"L": scaled_l, "ab": true_ab}).batch(2)  # batches of 2 and 1

    def upside_down_colours(batch):
        return tf.reverse(batch["ab"], axis=[1])

    true_rgb = color.scaled_lab_to_rgb(scaled_l, true_ab)
    pred_rgb = color.scaled_lab_to_rgb(scaled_l, tf.reverse(true_ab, axis=[1]))
    per_image = lpips_distance(true_rgb, pred_rgb, random_alex).numpy()
    assert not np.isclose(per_image.mean(), (per_image[:2].mean() + per_image[2]) / 2, rtol=1e-4)
    np.testing.assert_allclose(evaluate_lpips(upside_down_colours, dataset, random_alex), per_image.mean(), rtol=1e-5)


def photo_batches():
    """(scaled L, ab, the three photos as a dataset in batches of 2 and 1)."""
    scaled_l, true_ab = color.rgb_to_scaled_lab(photos())
    return scaled_l, true_ab, tf.data.Dataset.from_tensor_slices({"L": scaled_l, "ab": true_ab}).batch(2)


class UpsideDownColours:
    """A colorizer that turns each photo's colours upside down, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        return tf.reverse(batch["ab"], axis=[1])


def test_lpips_on_lab_read_as_rgb_feeds_both_images_as_agosti_did(random_alex):
    """Paper agosti's LPIPS: each image's Lab mapped to [0, 1] (L / 100, ab / 220 + 1/2) and read as RGB."""
    from chroma import evaluation

    scaled_l, true_ab, dataset = photo_batches()
    upside_down_colours = UpsideDownColours()

    def lab_read_as_rgb(ab):
        lightness, chroma_ab = (scaled_l + 1.0) * 50.0, ab * 110.0  # chroma.color.scale_lab undone
        return np.concatenate([lightness / 100.0, chroma_ab / 220.0 + 0.5], axis=-1)

    expected = random_alex(lab_read_as_rgb(true_ab), lab_read_as_rgb(tf.reverse(true_ab, axis=[1]))).numpy().mean()
    scores = evaluation.evaluate(upside_down_colours, dataset, ("lpips", "lpips_lab_as_rgb"), lpips_model=random_alex)
    assert upside_down_colours.calls == 2  # one pass: both columns from one colorization of each batch
    np.testing.assert_allclose(scores["lpips_lab_as_rgb"], expected, rtol=1e-5)
    assert scores["lpips_lab_as_rgb"] != pytest.approx(scores["lpips"], rel=0.05)
    perfect = evaluation.evaluate(evaluation.ground_truth, dataset, ("lpips_lab_as_rgb",), lpips_model=random_alex)
    assert evaluation.titled(perfect) == {"LPIPS (Lab read as RGB)": 0.0}
    assert evaluation.evaluate(upside_down_colours, dataset, ("lpips", "lpips_lab_as_rgb")) == {
        "lpips": None, "lpips_lab_as_rgb": None}  # no weights, no score


def test_evaluate_scores_lpips_in_its_single_pass_as_evaluate_lpips_does(random_alex):
    from chroma import evaluation

    _, _, dataset = photo_batches()
    upside_down_colours = UpsideDownColours()
    scores = evaluation.evaluate(upside_down_colours, dataset, ("psnr", "lpips"), lpips_model=random_alex)
    assert upside_down_colours.calls == 2  # two batches, one colorization each for every metric
    np.testing.assert_allclose(scores["lpips"], evaluate_lpips(upside_down_colours, dataset, random_alex), rtol=1e-6)
