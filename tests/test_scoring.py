"""How the harness scores a trained run: at its best or last epoch, in inference, dropout or training mode."""

import functools
import hashlib
import json
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma import color, evaluation
from chroma.data.specs import dataset_from_spec
from chroma.models.network_generator import NetworkGenerator
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.unet import UNetGenerator
from chroma.data.specs import parse_data_spec, resolve
from chroma.recipes import known_experiments, load_experiment, select_runs, settings_at
from chroma.reproduce import check_protocol, known_assets, sample_column, score_run, scored_mode, scoring_mode
from chroma.training import ConditionalGAN, Run
from chroma.training import smoke_settings

COLUMNS = ("l1_ab", "psnr")
SIZE = 32


@functools.cache
def photos():
    """4 photos in batches of 2, decoded once for the module: every pass reads the same batches from memory."""
    return dataset_from_spec("samples?take=4", SIZE, batch_size=2).cache()


def batch_norm_gan():
    network = keras.Sequential([
        keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3, padding="same"), keras.layers.BatchNormalization(),
        keras.layers.Conv2D(2, 3, padding="same", activation="tanh"),
    ])
    model = ConditionalGAN(NetworkGenerator(network), PatchDiscriminator(base_filters=4, n_layers=1), seed=0)
    model({"L": tf.zeros((1, SIZE, SIZE, 1))})
    return model


def run(**protocol):
    return Run("tiny", "tiny", build=None, compile_args=None, paper={}, **protocol)


def write_history(out_dir, column, values):
    lines = ["epoch," + column] + [f"{epoch},{value}" for epoch, value in enumerate(values)]
    (out_dir / "history.csv").write_text("\n".join(lines) + "\n")


def evaluate(model, training=False):
    return evaluation.evaluate(lambda batch: model(batch, training=training), photos(), COLUMNS)


def test_a_network_answering_in_bfloat16_is_scored_in_float32():
    """A user's own network under mixed_bfloat16 may end on a bfloat16 layer."""
    model = batch_norm_gan()
    in_float32 = evaluate(model)
    in_bfloat16 = evaluation.evaluate(lambda batch: tf.cast(model(batch, training=False), tf.bfloat16), photos(), COLUMNS)
    assert in_bfloat16["l1_ab"] == pytest.approx(in_float32["l1_ab"], rel=1e-2)


@pytest.mark.parametrize("monitor, values, best", [("val_l1_ab", [0.5, 0.2, 0.4], 2), ("val_psnr", [20, 19, 23], 3)])
def test_a_run_scored_at_its_best_epoch_is_scored_with_best_weights_and_says_which(monitor, values, best, tmp_path):
    model = batch_norm_gan()
    model.save_weights(tmp_path / "best.weights.h5")
    expected = evaluate(model)
    write_history(tmp_path, monitor, values)
    for weight in model.generator.trainable_weights:  # the last epoch's weights differ from the best's
        weight.assign(weight + 0.3)
    assert evaluate(model)["l1_ab"] != pytest.approx(expected["l1_ab"])

    scores, note = score_run(run(scored_at="best", monitor=monitor), model, tmp_path, photos(), COLUMNS)
    assert scores == pytest.approx(expected)
    assert note == f"best epoch {best} of 3 by {monitor}"


def test_a_run_scored_at_its_last_epoch_keeps_its_weights(tmp_path):
    model = batch_norm_gan()
    scores, note = score_run(run(), model, tmp_path, photos(), COLUMNS)  # no best.weights.h5 needed
    assert scores == pytest.approx(evaluate(model)) and note == ""


def test_best_epoch_scoring_needs_its_monitor_in_the_history(tmp_path):
    write_history(tmp_path, "val_l1_ab", [0.5])
    with pytest.raises(ValueError, match="best epoch by val_g_loss, which its history lacks"):
        score_run(run(scored_at="best", monitor="val_g_loss"), batch_norm_gan(), tmp_path, photos(), COLUMNS)


def test_training_mode_normalises_with_the_test_batch_and_leaves_the_moving_averages(tmp_path):
    model = batch_norm_gan()
    averages = [weight.numpy() for weight in model.non_trainable_weights]
    scores, note = score_run(run(scored_in="training"), model, tmp_path, photos(), COLUMNS)
    assert note == "scored in training mode"
    assert scores["l1_ab"] != pytest.approx(evaluate(model)["l1_ab"], abs=1e-4)
    for weight, before in zip(model.non_trainable_weights, averages):
        np.testing.assert_array_equal(weight.numpy(), before)


def test_sample_grids_show_a_run_in_the_mode_its_table_scores_it():
    """Paper agosti's figures 5-6 are drawn as its table is scored, in training mode; nampouri's figure 7 with
    dropout on. The moving averages are left as they were."""
    model = batch_norm_gan()
    averages = [weight.numpy() for weight in model.non_trainable_weights]
    columns = {}
    first = next(iter(photos().unbatch().take(4).batch(4)))
    for mode in ("inference", "training"):
        with scoring_mode(run(scored_in=mode), model) as colorize:
            columns[mode] = np.asarray(sample_column(f"tiny ({mode})", colorize, photos())[1])
            expected = color.scaled_lab_to_rgb(first["L"], model(first, training=mode == "training"))
        np.testing.assert_allclose(columns[mode], expected, atol=1e-5)
    assert np.abs(columns["training"] - columns["inference"]).max() > 1e-3
    for weight, before in zip(model.non_trainable_weights, averages):
        np.testing.assert_array_equal(weight.numpy(), before)
    assert scored_mode(run(scored_in="dropout"), model) == "in inference mode"  # this generator has no dropout


def test_dropout_scoring_turns_dropout_on_only_while_scoring(tmp_path):
    generator = UNetGenerator(base_filters=4, depth=5)  # dropout in its three innermost decoder blocks
    for weight in generator.trainable_weights:  # N(0, 0.02) leaves a tiny net's output nearly gray
        weight.assign(weight * 5.0)
    model = ConditionalGAN(generator, PatchDiscriminator(base_filters=4, n_layers=1), seed=0)
    deterministic = evaluate(model)
    scores, note = score_run(run(scored_in="dropout"), model, tmp_path, photos(), COLUMNS)
    assert note == "scored with dropout on"
    assert scores["l1_ab"] != pytest.approx(deterministic["l1_ab"], abs=1e-4)
    assert evaluate(model) == pytest.approx(deterministic)


def test_an_unknown_protocol_is_refused_before_training():
    settings = smoke_settings(epochs=1)
    with pytest.raises(ValueError, match="scored_at must be one of"):
        check_protocol(run(scored_at="median"), settings)
    with pytest.raises(ValueError, match="scored_in must be one of"):
        check_protocol(run(scored_in="eval"), settings)


def test_a_run_never_picks_its_best_epoch_on_the_data_it_is_scored_on():
    best_by_validation = run(scored_at="best", monitor="val_l1_ab")
    for validation_data in (None, "samples?skip=6"):  # none (fit validates on eval_data), or eval_data itself
        with pytest.raises(ValueError, match="picks its best epoch by val_l1_ab: give it validation data apart"):
            check_protocol(best_by_validation, smoke_settings(epochs=1)._replace(validation_data=validation_data))
    check_protocol(best_by_validation, smoke_settings(epochs=1, validation_split=True))
    check_protocol(run(scored_at="best", monitor="loss"), smoke_settings(epochs=1))  # a training loss picks it


@pytest.mark.parametrize("paper", known_experiments())
def test_every_recipes_best_epoch_runs_validate_apart_from_their_scoring_data(paper):
    """At both scales: the data a run's monitor reads shares no image with the data its table scores."""
    experiment = load_experiment(paper)
    for scale in ("smoke", "paper"):
        settings = settings_at(experiment, scale, coco="/data/coco", data="/data/photos")
        for item in select_runs(experiment):
            run_settings = item.settings_for(settings)
            check_protocol(item, run_settings)
            if not item.picks_epoch_on_validation():
                continue
            validation, scored = (parse_data_spec(spec) for spec in (run_settings.validation_data,
                                                                      run_settings.eval_data))
            if scale == "smoke":  # the bundled photos: the images themselves
                names = [{record.name for record in resolve(spec).records}
                         for spec in (run_settings.validation_data, run_settings.eval_data)]
                assert names[0] and not names[0] & names[1], (paper, item.key)
            else:  # COCO: another split
                assert validation[1]["coco_split"] != scored[1]["coco_split"], (paper, item.key)


def protocols(paper):
    return {item.key: (item.scored_at, item.scored_in, item.monitor) for item in select_runs(load_experiment(paper))}


def test_each_recipe_scores_its_runs_as_its_paper_did():
    # villarenteria table 3-4: Models A, A.2, B at their best epoch, exp3's one epoch of Model A; the reference as its
    # own paper reports it.
    villarenteria = protocols("villarenteria")
    for last in ("reference", "reference_no_classes", "model_a_1_epoch"):
        assert villarenteria.pop(last)[:2] == ("last", "inference")
    assert set(villarenteria.values()) == {("best", "inference", "val_g_reconstruction_loss")}
    # efthymiadis 3.2: the CNN + classifier at its lowest total loss (epoch 110 of 200); the others last.
    efthymiadis = protocols("efthymiadis")
    assert efthymiadis.pop("cnn_classifier") == ("best", "inference", "loss")
    assert {protocol[:2] for protocol in efthymiadis.values()} == {("last", "inference")}
    # nampouri 4.2: dropout at test time as pix2pix; agosti VI: training mode during evaluation.
    assert {protocol[:2] for protocol in protocols("nampouri").values()} == {("last", "dropout")}
    assert {protocol[:2] for protocol in protocols("agosti").values()} == {("last", "training")}
    assert {protocol[:2] for protocol in protocols("bruvik").values()} == {("last", "inference")}


# A table of paper agosti's Lab-read-as-RGB columns alone, scored with LPIPS-VGG, over tests/recipes/tiny.py's runs.
LAB_AS_RGB_RECIPE = """
from chroma.recipes import load_experiment

_tiny = load_experiment({tiny!r})
PAPER, TITLE, COLUMNS = "lab_as_rgb", "Lab read as RGB", ("fid_lab_as_rgb", "lpips_lab_as_rgb")
LPIPS_NETWORK = "vgg"
RUNS, SCALES, paper_data = _tiny.RUNS[:1], _tiny.SCALES, _tiny.paper_data
"""


def lab_as_rgb_recipe(tmp_path):
    recipe = tmp_path / "lab_as_rgb.py"
    recipe.write_text(LAB_AS_RGB_RECIPE.format(tiny=str(Path(__file__).parent / "recipes" / "tiny.py")))
    return recipe


def test_the_lab_as_rgb_columns_read_the_fid_and_lpips_assets_of_the_recipes_lpips_network(tmp_path):
    assets = known_assets(load_experiment(str(lab_as_rgb_recipe(tmp_path))))
    assert list(assets) == ["lpips", "fid"]
    assert "LPIPS_NETWORK (vgg), a .npz converted (net='vgg')" in assets["lpips"]
    assert "(alex)" in known_assets(load_experiment("efthymiadis"))["lpips"]  # Zhang et al.'s AlexNet by default


def test_reproduce_builds_the_recipes_lpips_network_and_so_does_a_runs_own_process(tmp_path, monkeypatch):
    import chroma.cli
    from chroma import reproduce as harness

    recipe = lab_as_rgb_recipe(tmp_path)
    networks = []

    class Built(Exception):
        """Ends reproduce once it has built its metric networks."""

    def build_and_stop(assets, lpips_network="alex"):
        networks.append(lpips_network)
        raise Built

    monkeypatch.setattr(harness, "metric_networks", build_and_stop)
    with pytest.raises(Built):
        harness.reproduce(load_experiment(str(recipe)), "smoke", runs_root=tmp_path / "runs",
                          assets={"lpips": "lpips_vgg.npz"})

    def build_nothing(assets, lpips_network="alex"):
        networks.append(lpips_network)
        return None, None

    sent, exits = [], []
    monkeypatch.setattr(harness, "metric_networks", build_nothing)
    monkeypatch.setattr(harness, "train_and_draw", lambda *args, **kwargs: ({"model": "tiny cGAN"}, {}))
    monkeypatch.setattr(chroma.cli, "exit_without_finalizing", exits.append)
    harness.train_in_own_process(types.SimpleNamespace(send=sent.append), str(recipe), "smoke", "gan",
                                 tmp_path / "runs", None, None, {"lpips": "lpips_vgg.npz"}, "default", "float32",
                                 False, {})
    assert sent == [{"row": {"model": "tiny cGAN"}, "columns": {}}] and exits == [0]
    assert networks == ["vgg", "vgg"]


def test_a_runs_record_names_the_lpips_network_its_lpips_columns_were_scored_with(tmp_path):
    from chroma.reproduce import run_record

    (tmp_path / "run.json").write_text(json.dumps({
        "settings": {"image_size": SIZE}, "total_steps": 3, "overrides": {"reconstruction_weight": 50.0},
        "precision": "float32", "replicas": 1, "workers": 1, "global_batch_size": 2, "jit": False}))
    (tmp_path / "generator.keras").write_bytes(b"the scored generator")
    scored = Run("tiny", "tiny", build=None, compile_args=lambda steps: {"reconstruction_weight": 100.0}, paper={})
    settings = smoke_settings(epochs=1, image_size=SIZE)
    experiment = types.SimpleNamespace(PAPER="mine", LPIPS_NETWORK="vgg")
    with_lpips = run_record(experiment, scored, settings, tmp_path, ("psnr", "lpips_lab_as_rgb"), 1.25)
    assert with_lpips["protocol"]["lpips_network"] == "vgg"
    assert with_lpips["compile_values"] == {"reconstruction_weight": 50.0}  # --set's value, as it trained
    assert with_lpips["generator_sha256"] == hashlib.sha256(b"the scored generator").hexdigest()
    assert "lpips_network" not in run_record(experiment, scored, settings, tmp_path, ("psnr",), 1.25)["protocol"]
