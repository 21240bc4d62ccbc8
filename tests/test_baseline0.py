import numpy as np
import tensorflow as tf

from chroma.models.baseline0 import MeanColorBaseline
from helpers import ab_of, assert_reloads_identically, photo_lab


def photo_batch(names=("astronaut", "coffee"), size=48):
    scaled_l, scaled_ab = photo_lab(size, names)
    return {"L": scaled_l, "ab": scaled_ab}


def fitted(batch, batch_size=1):
    model = MeanColorBaseline()
    model.compile()
    model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(batch_size), epochs=1, shuffle=False, verbose=0)
    return model


def numpy_mean_per_level(batch, levels=256):
    position = (batch["L"].numpy()[..., 0] + 1.0) * 0.5 * (levels - 1)
    level = np.clip(np.round(position), 0, levels - 1).astype(int).ravel()
    ab = batch["ab"].numpy().reshape(-1, 2)
    table = np.zeros((levels, 2))
    for index in np.unique(level):
        table[index] = ab[level == index].mean(axis=0)
    return table, np.bincount(level, minlength=levels)


def test_fit_gives_the_mean_colour_of_each_gray_level():
    batch = photo_batch()
    expected, counts = numpy_mean_per_level(batch)
    model = fitted(batch)
    np.testing.assert_allclose(model.mean_colors().numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(model.pixel_counts.numpy(), counts)


def test_prediction_paints_each_pixel_with_its_level_mean():
    batch = photo_batch()
    model = fitted(batch)
    table, _ = numpy_mean_per_level(batch)
    predicted = ab_of(model, batch["L"]).numpy()
    levels = model.gray_levels(batch["L"]).numpy()
    np.testing.assert_allclose(predicted, table[levels], atol=1e-5)


def test_levels_never_seen_in_training_predict_gray():
    mid_gray = {"L": tf.zeros((1, 4, 4, 1)), "ab": tf.fill((1, 4, 4, 2), 0.25)}
    model = fitted(mid_gray)
    seen_and_unseen = tf.constant([0.0, -0.5, 0.9])[None, :, None, None]
    np.testing.assert_allclose(ab_of(model, seen_and_unseen).numpy()[0, :, 0], [[0.25, 0.25], [0, 0], [0, 0]])


def test_fit_does_not_depend_on_batching():
    batch = photo_batch(("astronaut", "coffee", "chelsea"))
    one_by_one = fitted(batch, batch_size=1).mean_colors().numpy()
    all_at_once = fitted(batch, batch_size=3).mean_colors().numpy()
    np.testing.assert_allclose(one_by_one, all_at_once, atol=1e-5)


def test_a_mixed_precision_policy_leaves_the_table_in_float32():
    """reproduce fits baseline0 after earlier runs may have set mixed_bfloat16 as the global policy."""
    import keras

    batch = photo_batch()
    in_float32 = fitted(batch).mean_colors().numpy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = fitted(batch)
        predicted = ab_of(model, batch["L"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert predicted.dtype == tf.float32
    np.testing.assert_allclose(model.mean_colors().numpy(), in_float32, atol=1e-6)


def test_baseline0_beats_gray_output_on_its_training_photos():
    batch = photo_batch(("astronaut", "coffee", "chelsea", "rocket"))
    model = fitted(batch)
    true_ab = batch["ab"].numpy()
    baseline_error = np.abs(ab_of(model, batch["L"]).numpy() - true_ab).mean()
    gray_error = np.abs(true_ab).mean()
    assert baseline_error < gray_error


def test_evaluate_reports_compiled_metrics():
    from chroma.metrics import ColorizationMetric

    batch = photo_batch()
    model = MeanColorBaseline()
    model.compile(metrics=[ColorizationMetric("psnr"), ColorizationMetric("l1_ab")])
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(2)
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    scores = model.evaluate(dataset, verbose=0, return_dict=True)
    assert 15.0 < scores["psnr"] < 60.0
    predicted = ab_of(model, batch["L"]).numpy()
    np.testing.assert_allclose(scores["l1_ab"], np.abs(predicted - batch["ab"].numpy()).mean(), rtol=1e-4)


def test_save_and_reload(tmp_path):
    batch = photo_batch()
    model = fitted(batch)
    reloaded = assert_reloads_identically(model, {"L": batch["L"]}, tmp_path)
    assert reloaded.levels == 256
