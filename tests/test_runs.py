"""Runs that survive: SIGKILL and resume, divergence, best checkpoint, logs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from chroma.reproduce import load_experiment, select_runs
from chroma.training import TrainingDiverged, read_history, train

RECIPE = Path(__file__).parent / "recipes" / "tiny.py"


def checkpoint_step(path):
    reader = tf.train.load_checkpoint(path)
    return int(reader.get_tensor("model/g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))


def saved_epochs(out_dir):
    state = tf.train.get_checkpoint_state(str(out_dir / "checkpoints"))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else 0


def test_a_run_killed_mid_training_resumes_where_its_checkpoint_left_off(tmp_path):
    recipe = load_experiment(str(RECIPE))
    out_dir = tmp_path / "runs" / "tiny" / "smoke" / "gan"
    command = [sys.executable, "-m", "chroma.cli", "reproduce", str(RECIPE), "--run", "gan",
               "--runs-dir", str(tmp_path / "runs")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while saved_epochs(out_dir) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = saved_epochs(out_dir)
    assert 3 <= killed_at < recipe.EPOCHS

    steps_per_epoch = 2  # 4 images, batch 2
    latest = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
    assert checkpoint_step(latest) == killed_at * steps_per_epoch

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed after epoch {killed_at}" in resumed.stderr
    final = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
    # Step counter (and with it the cosine schedule's position) carried on from the checkpoint.
    assert checkpoint_step(final) == recipe.EPOCHS * steps_per_epoch
    history = read_history(out_dir)
    assert len(history["g_reconstruction_loss"]) == recipe.EPOCHS
    assert (out_dir / "best.weights.h5").exists()
    assert list((out_dir / "logs").rglob("events.out.tfevents*"))
    results = (tmp_path / "runs" / "tiny" / "smoke" / "results.md").read_text()
    assert "tiny cGAN" in results and "baseline0" in results
    losses = results.split("## Tiny losses by epoch")[1].splitlines()
    # The run's first-epoch D loss beside the recipe's 0.7, and the three columns the recipe left out.
    row = next(line for line in losses if line.startswith("| tiny cGAN |"))
    assert row.startswith(f"| tiny cGAN | {history['d_loss'][0]:.4f} | 0.7000 | {history['g_loss'][0]:.4f} | – |")
    assert f"| {history['g_loss'][-1]:.4f} | – |" in row
    assert (tmp_path / "RESULTS.md").exists() and (out_dir.parent / "gan_losses.png").exists()


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_its_last_good_checkpoint(tmp_path):
    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["exploding"])
    out_dir = tmp_path / "exploding"
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf).*last good checkpoint is") as error:
        train(run, recipe.settings("smoke"), out_dir, verbose=0)
    latest = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
    assert latest is not None and latest in str(error.value)
    assert 1 <= saved_epochs(out_dir) < recipe.EPOCHS
    reader = tf.train.load_checkpoint(latest)
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if name.startswith("model/") and dtype.is_floating:
            assert tf.reduce_all(tf.math.is_finite(reader.get_tensor(name))), name


def test_unknown_run_names_are_listed():
    recipe = load_experiment(str(RECIPE))
    with pytest.raises(ValueError, match="its runs: gan, pretrained_gan, regression_pretrained_gan, exploding"):
        select_runs(recipe, ["nope"])


def test_a_pretrained_run_starts_from_the_pretraining_phase_networks(tmp_path):
    from chroma.reproduce import train_with_pretraining
    from chroma.training import ResumableCheckpoint

    recipe = load_experiment(str(RECIPE))
    run, = select_runs(recipe, ["pretrained_gan"])
    settings = recipe.settings("smoke")._replace(epochs=0)  # the fine-tuning phase takes no step
    model = train_with_pretraining(run, settings, tmp_path / "run")

    pretrained = run.build(settings)
    pretrained.compile(**run.compile_args(0))
    ResumableCheckpoint(tmp_path / "run" / "pretrain" / "checkpoints", pretrained).restore()
    assert int(pretrained.g_optimizer.iterations) == 2  # 2 epochs of 1 step (2 images, batch 2)
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
    settings = recipe.settings("smoke")._replace(epochs=0)
    model = train_with_pretraining(run, settings, tmp_path / "run")

    pretrained = recipe.generator_regression(settings)
    pretrained.compile(**recipe.l1_recipe(0))
    ResumableCheckpoint(tmp_path / "run" / "pretrain" / "checkpoints", pretrained).restore()
    assert int(pretrained.optimizer.iterations) == 2
    for ours, theirs in zip(model.generator.weights, pretrained.generator.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert type(model).__name__ == "ConditionalGAN" and int(model.d_optimizer.iterations) == 0


def test_batch_targets_are_computed_once_and_reach_the_train_step(tmp_path):
    """Run.batch_targets: a frozen network's per-image output travels in the batches (ChromaGAN's oracle)."""
    import keras

    from chroma.training import ConditionalGAN, Run
    from test_bruvik_models import TinyEmbedding
    from test_training import classifying_generator, tiny_discriminator

    recipe = load_experiment(str(RECIPE))
    run = Run("classifying", "cGAN with a class head", lambda settings: ConditionalGAN(
        classifying_generator(classes=8), tiny_discriminator(), seed=0),
        lambda total_steps: dict(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3),
                                 class_weight=0.003),
        paper={}, batch_targets=lambda settings: {"class_target": TinyEmbedding(8)})
    train(run, recipe.settings("smoke")._replace(epochs=2), tmp_path, verbose=0)
    history = read_history(tmp_path)
    assert len(history["g_class_loss"]) == 2 and len(history["val_g_class_loss"]) == 2
    assert all(np.isfinite(history["g_class_loss"])) and history["g_class_loss"][0] > 0


def test_captions_reach_the_step_as_word_ids_made_in_tf_data(tmp_path):
    """No string enters the train step (a TPU's infeed takes numbers): captions arrive tokenised."""
    import keras

    from chroma.models.caption_tokenizer import CaptionTokenizer
    from chroma.training import ConditionalGAN, Run
    from test_training import tiny_discriminator

    class CaptionShift(keras.Model):
        """ab from L plus a learned shift per caption word, reading captions as Models B and C do."""

        def __init__(self):
            super().__init__()
            self.tokenizer = CaptionTokenizer(vocabulary=["a", "the", "of", "on"])
            self.words = keras.layers.Embedding(self.tokenizer.vocabulary_size, 2)
            self.conv = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")

        def conditioning(self, batch):
            return {"L": batch["L"], "tokens": batch["tokens"] if "tokens" in batch else self.tokenizer(batch["caption"])}

        def call(self, inputs, training=False):
            shift = keras.ops.mean(self.words(inputs["tokens"]), axis=1)[:, None, None, :]
            return self.conv(inputs["L"]) + shift

    class RecordingGAN(ConditionalGAN):
        step_keys = set()

        def train_step(self, data):
            RecordingGAN.step_keys |= set(self.unpack(data))  # at trace time: what the step's batches hold
            return super().train_step(data)

    run = Run("captions", "captioned cGAN", lambda settings: RecordingGAN(CaptionShift(), tiny_discriminator()),
              lambda total_steps: dict(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3)),
              paper={})
    recipe = load_experiment(str(RECIPE))
    train(run, recipe.settings("smoke")._replace(epochs=1), tmp_path, verbose=0)
    assert RecordingGAN.step_keys == {"L", "ab", "label", "tokens"}  # caption and name strings dropped
