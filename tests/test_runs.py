"""Runs that survive: SIGKILL and resume, divergence, best checkpoint, logs."""

import contextlib
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from chroma import reports
from chroma.export import scored_generator
from chroma.recipes import check_recipe, load_experiment, select_runs
from chroma.training import CheckpointNotSaved, Runtime, TrainingDiverged, read_history, train

RECIPE = Path(__file__).parent / "recipes" / "tiny.py"


def checkpoint_step(path):
    reader = tf.train.load_checkpoint(path)
    return int(reader.get_tensor("model/g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))


def saved_epochs(out_dir):
    state = tf.train.get_checkpoint_state(str(out_dir / "checkpoints"))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else 0


@pytest.mark.slow("two `chroma reproduce` processes that each start TensorFlow, 12 epochs and every report; the GAN "
                  "divergence and checkpoint-cannot-be-written tests still check each epoch's checkpoint and resuming")
def test_a_run_killed_mid_training_resumes_where_its_checkpoint_left_off(tmp_path):
    recipe = load_experiment(str(RECIPE))
    out_dir = tmp_path / "runs" / "tiny" / "smoke" / "gan"
    command = [sys.executable, "-m", "chroma.cli", "reproduce", str(RECIPE), "--run", "gan",
               "--runs-dir", str(tmp_path / "runs"), "--precision", "float32"]  # scored below in float32
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while saved_epochs(out_dir) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = saved_epochs(out_dir)
    assert 3 <= killed_at < recipe._EPOCHS

    steps_per_epoch = 2  # 4 images, batch 2
    latest = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
    assert checkpoint_step(latest) == killed_at * steps_per_epoch

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed after epoch {killed_at}" in resumed.stderr
    state = tf.train.get_checkpoint_state(str(out_dir / "checkpoints"))
    # Every epoch leaves its checkpoint: the manager keeps the last two.
    assert [path.rsplit("-", 1)[1] for path in state.all_model_checkpoint_paths] == [
        str(recipe._EPOCHS - 1), str(recipe._EPOCHS)]
    # Step counter (and with it the cosine schedule's position) carried on from the checkpoint.
    assert checkpoint_step(state.model_checkpoint_path) == recipe._EPOCHS * steps_per_epoch
    history = read_history(out_dir)
    assert len(history["g_reconstruction_loss"]) == recipe._EPOCHS
    assert (out_dir / "best.weights.h5").exists()
    assert list((out_dir / "logs").rglob("events.out.tfevents*"))
    results = (tmp_path / "runs" / "tiny" / "smoke" / "results.md").read_text()
    assert "tiny cGAN" in results and "baseline0" in results
    losses = results.split("## Tiny losses by epoch")[1].splitlines()
    # The run's first-epoch D loss beside the recipe's 0.7, and the three columns the recipe left out.
    row = next(line for line in losses if line.startswith("| tiny cGAN |"))
    first_d_loss = history["d_loss"][0]
    assert row.startswith(f"| tiny cGAN | {first_d_loss:.4f} | 0.7000 | "
                          f"{reports.format_difference(first_d_loss - 0.7, first_d_loss)} | "
                          f"{history['g_loss'][0]:.4f} | – |  |")
    assert f"| {history['g_loss'][-1]:.4f} | – |  |" in row
    assert (tmp_path / "RESULTS.md").exists() and (out_dir.parent / "gan_losses.png").exists()
    assert (out_dir.parent / "training_samples.png").exists()  # the recipe's TRAINING_SAMPLES
    assert "| a figure from the literature | – | – |  | – | 25.00 |  | no model |" in results
    # Scored at its best epoch by val_l1_ab: the table says which, and a table of epochs follows.
    best = int(np.argmin(history["val_l1_ab"])) + 1
    assert f"best epoch {best} of {recipe._EPOCHS} by val_l1_ab" in results
    assert (f"| tiny cGAN | {recipe._EPOCHS} | {recipe._EPOCHS} | +0 | {best} | – |  |"
            in results.split("## Tiny best epochs")[1])
    # The recipe keeps epochs 1 (before the kill) and 12 (after resuming): gray, both epochs and the truth.
    assert sorted(path.name for path in (out_dir / "epoch_samples").iterdir()) == [
        "epoch_1.png", "epoch_12.png", "gray.png", "truth.png"]
    first, last = (np.asarray(Image.open(out_dir / "epoch_samples" / f"epoch_{epoch}.png")) for epoch in (1, 12))
    assert first.shape == last.shape == (32, 16, 3)  # the two held-out photos at 16 px, stacked
    assert np.abs(first.astype(int) - last).max() > 0  # eleven epochs of training changed the colours
    assert (out_dir.parent / "gan_epochs.png").exists()

    # The table's scores are those of the best epoch's weights, scored by chroma.evaluation.
    from chroma import evaluation
    from chroma.data.specs import dataset_from_spec

    settings = recipe.SCALES["smoke"]
    model = recipe.gan(settings)
    model({"L": tf.zeros((1, settings.image_size, settings.image_size, 1))})
    model.load_weights(out_dir / "best.weights.h5")
    scores = evaluation.evaluate(lambda batch: model(batch, training=False),
                                 dataset_from_spec(settings.eval_data, settings.image_size, settings.batch_size),
                                 recipe.COLUMNS)
    with (out_dir.parent / "results.csv").open() as file:
        table = {row["metric"]: float(row["ours"]) for row in csv.DictReader(file) if row["model"] == "tiny cGAN"}
    for name in recipe.COLUMNS:
        assert table[evaluation.COLUMN_TITLES[name]] == pytest.approx(scores[name], rel=1e-5), name
    # `chroma export RUN_DIR` exports the generator the table scored, at the run's size.
    generator, image_size = scored_generator(out_dir)
    gray = tf.random.uniform((1, image_size, image_size, 1), -1, 1, seed=0)
    assert image_size == settings.image_size
    np.testing.assert_allclose(generator({"L": gray})["ab"], model.generator({"L": gray})["ab"], atol=1e-6)


def checkpoint_numbers(out_dir):
    """The epochs whose checkpoint files are on disk, whatever the manager's state file says."""
    return sorted(int(path.name.split("-")[1].split(".")[0]) for path in (out_dir / "checkpoints").glob("ckpt-*.index"))


def test_a_diverging_run_makes_chroma_reproduce_exit_1_and_keeps_its_last_good_checkpoint(tmp_path, capsys):
    """A regression whose learning rate is far too large: its loss overflows (epoch 3 of 12). It trains in a
    process of its own, whose TrainingDiverged reaches this one (in one process it is the same exception)."""
    from chroma import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", str(RECIPE), "--run", "exploding", "--runs-dir", str(tmp_path), "--process-per-run"])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.splitlines()[-1]
    match = re.fullmatch(r"chroma: training stopped: loss is (nan|inf) at (step \d+ of )?(the end of )?epoch (\d+)\. "
                         r"The last good checkpoint is (\S+); rerunning resumes from it.*", message)
    assert match, message
    diverged_epoch, last_good = int(match[4]), match[5]
    out_dir = tmp_path / "tiny" / "smoke" / "exploding"
    assert last_good == str(out_dir / "checkpoints" / f"ckpt-{diverged_epoch - 1}")
    assert 2 <= diverged_epoch < load_experiment(str(RECIPE))._EPOCHS
    assert checkpoint_numbers(out_dir)[-1] == diverged_epoch - 1  # nothing from the epoch that diverged
    reader = tf.train.load_checkpoint(last_good)
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if name.startswith("model/") and dtype.is_floating:
            assert tf.reduce_all(tf.math.is_finite(reader.get_tensor(name))), name


# Ways to make a folder read-only even to root, whom permission bits do not stop (CI runs as root): an
# immutable folder where the file system has the attribute (ext4, xfs), else a read-only bind mount.
READ_ONLY_AS_ROOT = (
    ([["chattr", "+i", "{}"]], [["chattr", "-i", "{}"]]),
    ([["mount", "--bind", "{}", "{}"], ["mount", "-o", "remount,bind,ro", "{}", "{}"]], [["umount", "{}"]]),
)


@contextlib.contextmanager
def read_only(folder):
    """`folder` read-only for this process, root or not."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    commands = lambda steps: [[part.format(folder) for part in step] for step in steps]  # noqa: E731
    for lock, unlock in READ_ONLY_AS_ROOT:
        done = [subprocess.run(step, capture_output=True, check=False).returncode == 0 for step in commands(lock)]
        if all(done):
            break
        if any(done):
            for step in commands(unlock):
                subprocess.run(step, capture_output=True, check=False)
    else:
        pytest.skip("this machine lets root make no folder read-only (no chattr +i, no bind mount)")
    try:
        yield
    finally:
        for step in commands(unlock):
            subprocess.run(step, check=True)


def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_the_last_good_one_resumes_it(tmp_path, capsys):
    import keras

    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["gan"])
    settings = recipe.SCALES["smoke"]._replace(epochs=2)
    checkpoints = tmp_path / "checkpoints"
    with contextlib.ExitStack() as after_the_run:

        class ReadOnlyAfterTheFirstEpoch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):  # after the engine's callbacks: epoch 1's checkpoint is saved
                if epoch == 0:
                    after_the_run.enter_context(read_only(checkpoints))

        with pytest.raises(CheckpointNotSaved) as stop:
            train(run, settings, tmp_path, verbose=0, callbacks=[ReadOnlyAfterTheFirstEpoch()])
    assert str(stop.value).startswith(
        f"training stopped: the checkpoint of epoch 2 could not be written to {checkpoints} (")
    assert f"The last good checkpoint is {checkpoints / 'ckpt-1'}, intact;" in str(stop.value)
    printed = re.search(r"checkpoints: ([\d.]+) kB each \(frozen networks and optimizer state included\), up to 3 "
                        rf"at once in {re.escape(str(checkpoints))}; [\d.]+ [kMG]B free there", capsys.readouterr().err)
    saved = tf.train.load_checkpoint(str(checkpoints / "ckpt-1"))
    tensor_bytes = sum(np.prod(shape) * saved.get_variable_to_dtype_map()[name].size
                       for name, shape in saved.get_variable_to_shape_map().items() if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert float(printed[1]) * 1e3 == pytest.approx(tensor_bytes, rel=0.02)

    train(run, settings, tmp_path, verbose=0)
    assert f"resumed after epoch 1 from {checkpoints / 'ckpt-1'}" in capsys.readouterr().err
    assert checkpoint_numbers(tmp_path) == [1, 2] and len(read_history(tmp_path)["g_loss"]) == 2


@pytest.mark.parametrize("run_key, loss", [("generator_turns_inf", r"g_\w*loss"), ("discriminator_turns_inf", r"d_\w*loss")])
def test_a_gan_whose_losses_turn_non_finite_stops_at_that_step(run_key, loss, tmp_path):
    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, [run_key])
    diverged_epoch = recipe._GOOD_EPOCHS + 1
    with pytest.raises(TrainingDiverged) as error:
        train(run, recipe.SCALES["smoke"], tmp_path, verbose=0)
    last_good = tmp_path / "checkpoints" / f"ckpt-{recipe._GOOD_EPOCHS}"
    assert re.match(rf"training stopped: {loss} is (nan|inf) at step 1 of epoch {diverged_epoch}\. "
                    rf"The last good checkpoint is {re.escape(str(last_good))};", str(error.value)), str(error.value)
    assert checkpoint_numbers(tmp_path) == [recipe._GOOD_EPOCHS]  # nothing from the epoch that diverged
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == str(last_good)


@pytest.mark.parametrize("name", ["loss", "d_loss", "g_loss", "g_adversarial_loss", "g_reconstruction_loss",
                                  "g_class_loss", "gradient_penalty", "val_d_loss"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_logged_loss_is_watched_for_divergence(name, value, tmp_path):
    import keras

    from chroma.training import ResumableCheckpoint

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    guard = ResumableCheckpoint(tmp_path, model)
    guard.set_model(model)
    guard.on_epoch_begin(0)
    logs = {"psnr": 20.0, "l1_ab": 0.1, name: value}
    (guard.on_epoch_end if name.startswith("val_") else guard.on_train_batch_end)(0, logs)
    assert model.stop_training and f"{name} is {value}" in guard.divergence
    with pytest.raises(TrainingDiverged, match="last good checkpoint is none"):
        guard.on_train_end()


def test_a_restored_checkpoint_holds_the_weights_and_both_optimizers_state(tmp_path):
    """Resuming continues the same run: every weight, Adam moment and step counter as it was saved."""
    from chroma.training import ResumableCheckpoint
    from test_training import photo_batch

    recipe = load_experiment(str(RECIPE))

    def compiled_gan():
        model = recipe.gan(None)
        model.compile(**recipe.cosine_recipe(total_steps=10))
        model({"L": tf.zeros((1, 16, 16, 1))})
        model.build_optimizers()
        return model

    def state(model):
        return [v.numpy() for v in (*model.weights, *model.g_optimizer.variables, *model.d_optimizer.variables)]

    trained = compiled_gan()
    trained.fit(tf.data.Dataset.from_tensors(photo_batch()).repeat(), epochs=3, steps_per_epoch=2, verbose=0,
                callbacks=[ResumableCheckpoint(tmp_path / "checkpoints", trained)])
    assert checkpoint_numbers(tmp_path) == [2, 3]  # every epoch saves one; the last two are kept
    saved = state(trained)
    restored = compiled_gan()
    assert any(np.any(a != b) for a, b in zip(state(restored), saved))  # a fresh model differs...
    assert ResumableCheckpoint(tmp_path / "checkpoints", restored).restore() == 3  # the latest
    assert int(restored.g_optimizer.iterations) == int(restored.d_optimizer.iterations) == 6
    for ours, theirs in zip(state(restored), saved, strict=True):  # ...and the restored one does not
        np.testing.assert_array_equal(ours, theirs)


def test_unknown_run_names_are_listed():
    recipe = load_experiment(str(RECIPE))
    with pytest.raises(ValueError, match="its runs: gan, pretrained_gan, regression_pretrained_gan, exploding"):
        select_runs(recipe, ["nope"])


def test_a_pretrained_run_starts_from_the_pretraining_phase_networks(tmp_path):
    from chroma.reproduce import train_with_pretraining
    from chroma.training import ResumableCheckpoint

    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["pretrained_gan"])
    settings = recipe.SCALES["smoke"]._replace(epochs=0)  # the fine-tuning phase takes no step
    model = train_with_pretraining(run, settings, tmp_path / "run")

    pretrained = run.build(settings)
    pretrained.compile(**run.compile_args(0))
    ResumableCheckpoint(tmp_path / "run" / "pretrain" / "checkpoints", pretrained).restore()
    assert int(pretrained.g_optimizer.iterations) == 1  # the phase's own 1 epoch of 1 step (2 images, batch 2)
    for network in ("generator", "discriminator"):
        for ours, theirs in zip(model.networks()[network].weights, pretrained.networks()[network].weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert int(model.g_optimizer.iterations) == 0  # fine-tuning starts with fresh optimizers


def test_a_run_can_start_from_a_pretraining_phase_of_another_model(tmp_path):
    """Paper bruvik 5.5: the generator alone, trained by L1 regression, then the cGAN around it."""
    from chroma.reproduce import train_with_pretraining
    from chroma.training import ResumableCheckpoint

    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["regression_pretrained_gan"])
    settings = recipe.SCALES["smoke"]._replace(epochs=0)
    model = train_with_pretraining(run, settings, tmp_path / "run")

    pretrained = recipe.generator_regression(settings)
    pretrained.compile(**recipe.l1_recipe(0))
    ResumableCheckpoint(tmp_path / "run" / "pretrain" / "checkpoints", pretrained).restore()
    assert int(pretrained.optimizer.iterations) == 1
    for ours, theirs in zip(model.generator.weights, pretrained.generator.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert type(model).__name__ == "ConditionalGAN" and int(model.d_optimizer.iterations) == 0


def test_batch_targets_are_computed_once_and_reach_the_train_step(tmp_path):
    """Run.batch_targets: a frozen network's per-image output travels in the batches (ChromaGAN's oracle)."""
    import keras

    from chroma.losses import kl_class_loss
    from chroma.training import AuxiliaryLoss, ConditionalGAN, Run
    from test_bruvik_models import TinyEmbedding
    from test_training import classifying_generator, tiny_discriminator

    recipe = load_experiment(str(RECIPE))
    run = Run("classifying", "cGAN with a class head", lambda settings: ConditionalGAN(
        classifying_generator(classes=8), tiny_discriminator(), seed=0),
        lambda total_steps: dict(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3),
                                 auxiliary_losses=(AuxiliaryLoss("class", "class_logits", "class_target",
                                                                 kl_class_loss, 0.003),)),
        paper={}, metrics=recipe._METRICS, batch_targets=lambda settings: {"class_target": TinyEmbedding(8)})
    train(run, recipe.SCALES["smoke"]._replace(epochs=1), tmp_path, verbose=0)
    history = read_history(tmp_path)
    assert len(history["g_class_loss"]) == 1 and len(history["val_g_class_loss"]) == 1  # training and validation
    assert all(np.isfinite(history["g_class_loss"])) and history["g_class_loss"][0] > 0


def test_captions_reach_the_step_as_word_ids_made_in_tf_data(tmp_path):
    """No string enters the train step (a TPU's infeed takes numbers): captions arrive tokenised."""
    import keras

    from chroma.models.caption_tokenizer import CaptionTokenizer
    from chroma.models.generator import BatchInput, Generator
    from chroma.training import ConditionalGAN, Run
    from test_training import tiny_discriminator

    class CaptionShift(Generator):
        """ab from L plus a learned shift per caption word, reading captions as Models B and C do."""

        def __init__(self):
            super().__init__()
            self.tokenizer = CaptionTokenizer(vocabulary=["a", "the", "of", "on"])
            self.words = keras.layers.Embedding(self.tokenizer.vocabulary_size, 2)
            self.conv = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")
            self.build({"L": (None, None, None, 1)})

        def batch_inputs(self):
            return {"tokens": BatchInput("caption", self.tokenizer)}

        def call(self, batch, training=False):
            inputs = self.complete(batch)
            shift = keras.ops.mean(self.words(inputs["tokens"]), axis=1)[:, None, None, :]
            return {"ab": self.conv(inputs["L"]) + shift}

    class RecordingGAN(ConditionalGAN):
        step_keys = set()

        def train_step(self, data):
            RecordingGAN.step_keys |= set(self.unpack(data))  # at trace time: what the step's batches hold
            return super().train_step(data)

    recipe = load_experiment(str(RECIPE))
    run = Run("captions", "captioned cGAN", lambda settings: RecordingGAN(CaptionShift(), tiny_discriminator()),
              lambda total_steps: dict(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3)),
              paper={}, metrics=recipe._METRICS)
    train(run, recipe.SCALES["smoke"]._replace(epochs=1), tmp_path, verbose=0)
    assert RecordingGAN.step_keys == {"L", "ab", "label", "tokens"}  # caption and name strings dropped


def test_a_run_over_bad_files_trains_on_the_usable_colour_ones_and_says_what_it_left_out(
        bad_image_folder, tmp_path, capsys):
    """Settings.drop_gray inside train(), and the end-of-run summary of skipped and dropped files."""
    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["gan"])
    settings = recipe.SCALES["smoke"]._replace(train_data=str(bad_image_folder.root), drop_gray=True, epochs=1)
    train(run, settings, tmp_path, verbose=0)

    summary = capsys.readouterr().err.splitlines()[-1]
    total = len(bad_image_folder.converted) + len(bad_image_folder.unusable)
    assert summary.startswith(f"{run.name}: 1 epochs in ")
    assert f"skipped {len(bad_image_folder.unusable)} of {total} images (" in summary
    for name in bad_image_folder.unusable:
        assert name in summary
    gray = sorted(name for name, is_gray in bad_image_folder.converted.items() if is_gray)
    dropped = re.search(r"dropped (\d+) already-gray images \(([^)]*)\)", summary)
    assert dropped and int(dropped[1]) == len(gray) and sorted(dropped[2].split(", ")) == gray


def test_reproduce_frees_each_runs_model_before_the_next_one_trains(tmp_path, monkeypatch):
    """Peak memory is the largest run's, not the sum: no trained model outlives its run's report."""
    import types
    import weakref

    from chroma.reproduce import reproduce
    from chroma.training import Run, smoke_settings

    tiny = load_experiment(str(RECIPE))
    built, alive_at_build = [], []

    def build(settings):
        # No gc.collect() here: reproduce collects a run's garbage itself before the next run builds its model.
        alive_at_build.append(sum(ref() is not None for ref in built))
        model = tiny.generator_regression(settings)  # what reproduce keeps of a run does not depend on its model
        built.append(weakref.ref(model))
        return model

    experiment = types.SimpleNamespace(
        PAPER="two", TITLE="two tiny runs", COLUMNS=("l1_ab",),
        # Two runs: a model that outlived its run would be alive when the second one is built. The first trains
        # an epoch; the second takes none (its model is still built, scored and drawn from), as only its end is
        # checked: that reproduce keeps no model after the last run either.
        RUNS=[Run(key, key, build, tiny.l1_recipe, paper={}, metrics=("l1_ab",),
                  overrides=lambda settings, epochs=epochs: settings._replace(epochs=epochs))
              for key, epochs in (("a", 1), ("b", 0))],
        SCALES={"smoke": smoke_settings(epochs=1, image_size=16)._replace(train_data="samples?take=2"),
                "paper": None},
        paper_data=lambda coco, data: None,
    )
    check_recipe(experiment, "two runs")  # fills in the names it leaves out, as load_experiment does
    # Figures are drawn from arrays and histories, never from a model, and take a fifth of the time: not drawn here.
    for figure in ("plot_gan_losses", "plot_metric_curves", "sample_grid"):
        monkeypatch.setattr(reports, figure, lambda *args, **kwargs: None)
    reproduce(experiment, "smoke", runs_root=tmp_path / "runs", index_path=tmp_path / "RESULTS.md")
    assert alive_at_build == [0, 0]
    assert [ref() for ref in built] == [None, None]
    out_dir = tmp_path / "runs" / "two" / "smoke"
    assert "two tiny runs — smoke scale, trained in float32, scored on samples?skip=6" in (
        out_dir / "results.md").read_text()
    # results.json: each run's record beside its scores, and where the numbers come from.
    results = json.loads((out_dir / "results.json").read_text())
    assert set(results["provenance"]) == {"code", "machine"} and results["provenance"]["machine"]["cores"] >= 1
    record = {row["model"]: row for row in results["tables"][0]["rows"]}["a"]["run"]
    assert record["recipe"] == "two" and record["key"] == "a" and record["precision"] == "float32"
    assert record["protocol"] == {"train_data": "samples?take=2", "validation_data": "samples?skip=6",
                                  "eval_data": "samples?skip=6", "image_size": 16, "scored_at": "last",
                                  "scored_in": "inference", "metrics": ["l1_ab"]}
    assert record["settings"]["epochs"] == 1 and record["compile_values"] == {"lr": pytest.approx(1e-3), "loss": "l1"}
    assert record["generator_sha256"] == hashlib.sha256((out_dir / "a" / "generator.keras").read_bytes()).hexdigest()
    assert record["train_seconds"] > 0


PROCESS_PER_RUN_RECIPE = """
import os
from pathlib import Path

from chroma.recipes import load_experiment
from chroma.training import Run, smoke_settings

tiny = load_experiment({tiny!r})
PAPER, TITLE, COLUMNS = "apart", "two runs, a process each", ("l1_ab",)


def build(settings):
    with (Path({pids!r}) / str(os.getpid())).open("w"):
        return tiny.gan(settings)


RUNS = [Run(key, key, build, tiny.constant_recipe, paper={{"l1_ab": 0.5}}, metrics=("l1_ab",)) for key in ("a", "b")]


SCALES = dict.fromkeys(("smoke", "paper"), smoke_settings(epochs=1, image_size=16)._replace(train_data="samples?take=2"))


def paper_data(coco, data):
    raise ValueError("smoke scale only")
"""


@pytest.mark.slow("two spawned processes that each start TensorFlow and train; "
                  "test_a_diverging_run_makes_chroma_reproduce_exit_1... still trains a run in a process of its own")
def test_one_process_per_run_trains_each_run_apart_and_reports_them_together(tmp_path):
    """--process-per-run: a run's memory goes back to the system with its process, before the next one trains."""
    from chroma.reproduce import reproduce

    pids = tmp_path / "pids"
    pids.mkdir()
    recipe = tmp_path / "apart.py"
    recipe.write_text(PROCESS_PER_RUN_RECIPE.format(tiny=str(RECIPE), pids=str(pids)))
    # --set's values reach each run's own process: a setting, and a learning rate its compile arguments take.
    md_path, csv_path = reproduce(load_experiment(str(recipe)), "smoke", runs_root=tmp_path / "runs",
                                  index_path=tmp_path / "RESULTS.md", process_per_run=True,
                                  overrides={"epochs": 2, "g_lr": 0.01})
    assert "settings changed from the recipe's: epochs=2, g_lr=0.01" in md_path.read_text()
    for key in ("a", "b"):
        assert json.loads((md_path.parent / key / "run.json").read_text())["overrides"] == {"epochs": 2, "g_lr": 0.01}
        assert len((md_path.parent / key / "history.csv").read_text().splitlines()) == 1 + 2
    built_in = {int(path.name) for path in pids.iterdir()}
    assert len(built_in) == 2 and os.getpid() not in built_in  # each run's model was built in a process of its own
    with csv_path.open() as file:
        table = {row["model"]: row for row in csv.DictReader(file)}
    for key in ("a", "b"):
        assert float(table[key]["ours"]) > 0 and float(table[key]["paper"]) == 0.5
        assert (md_path.parent / key / "best.weights.h5").exists() and (md_path.parent / f"{key}_losses.png").exists()
    samples = np.asarray(Image.open(md_path.parent / "samples.png"))
    assert samples.std() > 0  # the runs' sample columns came back from their processes and were drawn


def test_one_process_per_run_is_refused_with_a_multi_worker_strategy():
    from chroma.reproduce import reproduce

    class ElsewhereStrategy(tf.distribute.MirroredStrategy):
        pass

    with pytest.raises(ValueError, match="one process per run"):
        reproduce(load_experiment(str(RECIPE)), "smoke", runtime=Runtime(ElsewhereStrategy()), process_per_run=True)
