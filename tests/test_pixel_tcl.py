"""Paper agosti's PixelTCL (Fig. 2, Gao et al.) and the PixelGAN generator built from it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.models.pixel_tcl import PixelTransposedConv2D
from chroma.models.pixel_unet import PixelUNetGenerator
from helpers import ab_of, assert_reloads_identically, trainable_count

# Output pixel of each intermediate map in every 2x2 cell: (row, column) offsets.
PIXELS = [(0, 0), (1, 1), (1, 0), (0, 1)]


def random_input(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), tf.float32)


def layer_and_input(filters=3, channels=4, size=(3, 5)):
    layer = PixelTransposedConv2D(filters)
    inputs = random_input((2, *size, channels))
    layer(inputs)
    return layer, inputs


def intermediate_maps(layer, inputs):
    return [map_.numpy() for map_ in layer.intermediate_maps(inputs)]


def shifted(image, rows, columns):
    """image[:, i + rows, j + columns] at (i, j), 0 outside the image."""
    height, width = image.shape[1:3]
    padded = np.pad(image, [(0, 0), (1, 1), (1, 1), (0, 0)])
    return padded[:, 1 + rows : 1 + rows + height, 1 + columns : 1 + columns + width]


def perturbed(variable, mask=None):
    """Adds 1 to the variable (where `mask` is true)."""
    delta = np.ones(variable.shape, np.float32) if mask is None else mask.astype(np.float32)
    variable.assign(variable + delta)


# The layer


def test_output_interleaves_the_four_maps_at_their_own_pixels():
    layer, inputs = layer_and_input()
    maps = intermediate_maps(layer, inputs)
    outputs = layer(inputs).numpy()
    assert outputs.shape == (2, 6, 10, 3)
    for map_, (row, column) in zip(maps, PIXELS):
        assert map_.shape == (2, 3, 5, 3)
        np.testing.assert_array_equal(outputs[:, row::2, column::2], map_)
    # Four different maps, so a swap of two would show.
    assert all(not np.allclose(maps[i], maps[j]) for i in range(4) for j in range(i))


def test_maps_are_made_one_after_another_as_figure_2_draws():
    layer, inputs = layer_and_input()
    map1, map2, map3, map4 = intermediate_maps(layer, inputs)
    np.testing.assert_allclose(map1, layer.conv1(inputs), atol=1e-6)  # (1) from the input
    np.testing.assert_allclose(map2, layer.conv2(map1), atol=1e-6)  # (2) from map 1 alone
    # (3)-(4): map 3 (bottom-left) and map 4 (top-right) from their four nearest neighbours in the output,
    # which are maps 1 and 2 alone, through the cross taps of one 3x3 kernel with 2 * filters outputs.
    kernel, bias = layer.conv34.kernel.numpy(), layer.conv34.bias.numpy()
    filters = layer.filters

    def taps(top, bottom, left, right, outputs):
        weights = kernel[..., outputs]
        neighbours = [(top, weights[0, 1]), (bottom, weights[2, 1]), (left, weights[1, 0]), (right, weights[1, 2])]
        return sum(np.einsum("bhwc,cf->bhwf", image, tap) for image, tap in neighbours) + bias[outputs]

    expected3 = taps(map1, shifted(map1, 1, 0), shifted(map2, 0, -1), map2, slice(0, filters))
    expected4 = taps(shifted(map2, -1, 0), map2, map1, shifted(map1, 0, 1), slice(filters, None))
    np.testing.assert_allclose(map3, expected3, atol=1e-5)
    np.testing.assert_allclose(map4, expected4, atol=1e-5)


@pytest.mark.parametrize(
    "conv, changed",
    [("conv1", [True, True, True, True]), ("conv2", [False, True, True, True]), ("conv34", [False, False, True, True])],
)
def test_later_maps_depend_on_earlier_ones_only(conv, changed):
    layer, inputs = layer_and_input()
    before = intermediate_maps(layer, inputs)
    perturbed(getattr(layer, conv).kernel)
    after = intermediate_maps(layer, inputs)
    assert [not np.allclose(old, new) for old, new in zip(before, after)] == changed


def test_masked_taps_of_maps_3_and_4_see_nothing():
    """Fig. 2 (4) masks the kernel's centre and corners: they only ever read the empty pixels of the dilated map."""
    layer, inputs = layer_and_input()
    before = layer(inputs).numpy()
    rows, columns = np.indices((3, 3))
    cross = (rows + columns) % 2 == 1
    perturbed(layer.conv34.kernel, np.broadcast_to(~cross[..., None, None], layer.conv34.kernel.shape))
    np.testing.assert_array_equal(layer(inputs).numpy(), before)
    perturbed(layer.conv34.kernel, np.broadcast_to(cross[..., None, None], layer.conv34.kernel.shape))
    assert not np.allclose(layer(inputs).numpy(), before)


def test_doubles_unknown_and_odd_sizes_with_any_channel_count():
    layer = PixelTransposedConv2D(5)
    symbolic = keras.Input((None, None, 3))
    assert layer(symbolic).shape == (None, None, None, 5)

    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    for size in [(3, 7), (1, 1), (4, 2)]:
        inputs = random_input((1, *size, 3))
        outputs = traced(inputs)
        assert outputs.shape == (1, 2 * size[0], 2 * size[1], 5)
        np.testing.assert_allclose(outputs, layer(inputs), atol=1e-5)


def test_config_round_trips_and_a_model_reloads_identically(tmp_path):
    layer = PixelTransposedConv2D(5, kernel_size=5, use_bias=False, activation="tanh", name="up")
    config = layer.get_config()
    assert (config["filters"], config["kernel_size"], config["use_bias"], config["activation"]) == (5, 5, False, "tanh")
    assert PixelTransposedConv2D.from_config(config).get_config() == config

    inputs = random_input((2, 3, 4, 3))
    symbolic = keras.Input((None, None, 3))
    model = keras.Model(symbolic, layer(symbolic), name="pixel_tcl")
    reloaded = assert_reloads_identically(model, inputs, tmp_path)
    outputs = reloaded(inputs).numpy()
    assert outputs.shape == (2, 6, 8, 5) and np.abs(outputs).max() < 1.0 and not reloaded.layers[-1].conv1.use_bias


# The PixelGAN generator


def test_pixel_unet_has_the_paper_shape_and_about_69_million_parameters():
    model = PixelUNetGenerator()
    levels = [min(64 * 2**level, 512) for level in range(8)]
    # Decoder block s takes the deepest level (s = 0), else the skip of its level concatenated with the
    # previous block's output, of as many channels; it gives the next level up's channels, last the 2 of ab.
    ins = [levels[7]] + [2 * levels[level] for level in range(6, -1, -1)]
    outs = levels[6::-1] + [2]
    # Per PixelTCL from a to b channels: 3x3 kernels a -> b (map 1), b -> b (map 2), b -> 2b (maps 3 and 4);
    # batch norm's gamma and beta after each but the last, which has a bias on each convolution instead.
    decoder = sum(9 * a * b + 9 * b * b + 9 * b * 2 * b + 2 * b for a, b in zip(ins, outs)) + 2 * outs[-1]
    assert trainable_count(model.decoder) == decoder
    assert trainable_count(model.encoder) == 19_536_128  # unchanged: UNetGenerator's, nampouri's figure 10
    total = 19_536_128 + decoder
    assert trainable_count(model) == total
    assert 69e6 <= total < 70e6  # section III-A: "the whole amount of parameters to 69 million"

    blocks = [block for block in model.decoder.layers if isinstance(block, keras.Sequential)]
    decoder_layers = [layer for block in blocks for layer in block.layers]
    assert sum(isinstance(layer, PixelTransposedConv2D) for layer in decoder_layers) == 8
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in decoder_layers)
    encoder = model.encoder(keras.KerasTensor((1, 256, 256, 1)))
    assert [tuple(level.shape[1:]) for level in model.decoder(encoder)] == [
        (2, 2, 512), (4, 4, 512), (8, 8, 512), (16, 16, 512),
        (32, 32, 256), (64, 64, 128), (128, 128, 64), (256, 256, 2),
    ]  # fmt: skip
    assert ab_of(model, keras.KerasTensor((1, 256, 256, 1))).shape == (1, 256, 256, 2)


def test_small_pixel_unet_trains():
    model = PixelUNetGenerator(base_filters=8, depth=5, dropout=0.0)
    scaled_l = random_input((2, 32, 32, 1))
    target = 0.5 * tf.tanh(random_input((2, 32, 32, 2), seed=1))

    def loss():
        return tf.reduce_mean(tf.abs(ab_of(model, scaled_l, training=True) - target))

    with tf.GradientTape() as tape:
        before = loss()
    gradients = tape.gradient(before, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients):
        assert gradient is not None and np.isfinite(gradient).all() and np.any(gradient != 0), variable.path
    keras.optimizers.SGD(0.05).apply_gradients(zip(gradients, model.trainable_variables))
    assert loss() < before


def test_pixel_unet_reloads_identically_and_resumes_from_a_checkpoint(tmp_path):
    inputs = {"L": random_input((1, 16, 16, 1))}
    model = PixelUNetGenerator(base_filters=4, depth=3, dropout=0.25)
    reloaded = assert_reloads_identically(model, inputs, tmp_path)
    assert type(reloaded) is PixelUNetGenerator and (reloaded.base_filters, reloaded.depth) == (4, 3)

    # tf.train.Checkpoint, which resumes training, must see every PixelTCL's convolutions.
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "checkpoint"))
    resumed = PixelUNetGenerator(base_filters=4, depth=3, dropout=0.25)
    assert not np.allclose(resumed(inputs)["ab"], model(inputs)["ab"])
    tf.train.Checkpoint(model=resumed).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(resumed(inputs)["ab"], model(inputs)["ab"])


def test_mixed_bfloat16_computes_in_bfloat16_and_outputs_float32(mixed_bfloat16):
    inputs = random_input((1, 2, 2, 3))
    layer = PixelTransposedConv2D(4)
    assert layer(inputs).dtype == "bfloat16" and layer.conv34.compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in layer.weights)
    assert PixelTransposedConv2D(4, dtype="float32")(inputs).dtype == "float32"

    model = PixelUNetGenerator(base_filters=4, depth=3)
    up_layers = [layer for layer in model.decoder.get_layer("up2").layers if isinstance(layer, PixelTransposedConv2D)]
    assert up_layers[0].conv1.compute_dtype == "bfloat16"
    output_layer = model.decoder.get_layer("out").layers[-1]
    assert output_layer.conv34.compute_dtype == "float32"
    ab = ab_of(model, random_input((2, 16, 16, 1)), training=True)
    assert ab.dtype == "float32" and ab.shape == (2, 16, 16, 2) and np.isfinite(ab.numpy()).all()
