import warnings

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from chroma import color

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]


def srgb_cube(steps=64):
    """Every combination of `steps` levels per channel: a dense grid of the sRGB cube."""
    levels = np.linspace(0.0, 1.0, steps)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    return grid.reshape(steps * steps, steps, 3)


def test_rgb_to_lab_matches_skimage_over_the_srgb_cube():
    cube = srgb_cube()
    ours = color.rgb_to_lab(tf.constant(cube, tf.float32)).numpy()
    np.testing.assert_allclose(ours, skimage.color.rgb2lab(cube), atol=1e-3)


@pytest.mark.parametrize("name", PHOTOS)
def test_rgb_to_lab_matches_skimage_on_photos(name):
    photo = getattr(skimage.data, name)()
    ours = color.rgb_to_lab(tf.constant(photo)).numpy()  # uint8 accepted as is
    np.testing.assert_allclose(ours, skimage.color.rgb2lab(photo), atol=1e-3)


def test_lab_to_rgb_matches_skimage_in_and_out_of_gamut():
    rng = np.random.default_rng(0)
    lab = np.stack(
        [rng.uniform(0, 100, 20000), rng.uniform(-128, 128, 20000), rng.uniform(-128, 128, 20000)],
        axis=-1,
    )[None]
    with warnings.catch_warnings():  # skimage warns about negative Z, which it clips
        warnings.simplefilter("ignore", UserWarning)
        expected = skimage.color.lab2rgb(lab)
    np.testing.assert_allclose(color.lab_to_rgb(tf.constant(lab, tf.float32)).numpy(), expected, atol=1e-4)


def test_round_trip_is_within_one_8bit_level():
    cube = srgb_cube()
    back = color.lab_to_rgb(color.rgb_to_lab(tf.constant(cube, tf.float32))).numpy()
    assert np.abs(back - cube).max() < 1.0 / 255.0


def test_scaled_round_trip_and_ranges_on_a_photo():
    photo = tf.constant(skimage.data.coffee())
    scaled_l, scaled_ab = color.rgb_to_scaled_lab(photo)
    assert scaled_l.shape[-1] == 1 and scaled_ab.shape[-1] == 2
    assert -1.0 <= scaled_l.numpy().min() and scaled_l.numpy().max() <= 1.0
    assert np.abs(scaled_ab.numpy()).max() <= 1.0
    back = color.scaled_lab_to_rgb(scaled_l, scaled_ab).numpy()
    assert np.abs(back * 255.0 - photo.numpy()).max() < 1.0


def test_papers_scaling_constants():
    # Nampouri, section 4.1: L in [0, 100] -> L / 50 - 1, ab in [-110, 110] -> ab / 110.
    scaled_l, scaled_ab = color.scale_lab(tf.constant([[0.0, -110.0, 55.0], [100.0, 110.0, 0.0]]))
    np.testing.assert_allclose(scaled_l.numpy(), [[-1.0], [1.0]])
    np.testing.assert_allclose(scaled_ab.numpy(), [[-1.0, 0.5], [1.0, 0.0]])


def test_any_predicted_ab_gives_valid_rgb_and_finite_gradients():
    rng = np.random.default_rng(1)
    scaled_l = tf.constant(rng.uniform(-1, 1, (4, 8, 8, 1)), tf.float32)
    wild_ab = tf.Variable(rng.normal(0, 50, (4, 8, 8, 2)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        rgb = color.scaled_lab_to_rgb(scaled_l, wild_ab)
        loss = tf.reduce_sum(rgb)
    values = rgb.numpy()
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    assert np.isfinite(tape.gradient(loss, wild_ab).numpy()).all()

    extreme = tf.constant([[0.0, 0.0, 0.0], [50.0, 1e30, -1e30], [100.0, -1e30, 1e30]])
    values = color.lab_to_rgb(extreme).numpy()
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0


def test_gradient_is_finite_at_black_and_white():
    rgb = tf.Variable([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.001, 0.5, 1.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(color.rgb_to_lab(rgb))
    assert np.isfinite(tape.gradient(loss, rgb).numpy()).all()


def test_same_result_eagerly_in_tf_function_and_in_tf_data():
    photo = skimage.data.chelsea()[:64, :64]
    eager = color.rgb_to_scaled_lab(photo)
    graph = tf.function(color.rgb_to_scaled_lab)(tf.constant(photo))
    from_data = next(iter(tf.data.Dataset.from_tensors(photo).map(color.rgb_to_scaled_lab)))
    for other in (graph, from_data):
        np.testing.assert_allclose(other[0].numpy(), eager[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(other[1].numpy(), eager[1].numpy(), atol=1e-6)


def test_rejects_integer_rgb_other_than_uint8():
    with pytest.raises(TypeError, match="uint8 or float"):
        color.rgb_to_lab(tf.constant([[1, 2, 3]], tf.int32))
