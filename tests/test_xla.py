"""TPU-ready steps: every recipe's train and test steps lower to XLA, and compiled steps step as uncompiled ones.

TPUs run XLA-compiled steps only, on numbers of static shapes, so a step may
hold no Python callback, string or shape known only at run time. The fast
tier lowers every distinct step of every recipe to HLO (TensorFlow's
tf2xla bridge, which refuses any op XLA cannot express) in this process,
without LLVM's code generation; a step of several updates is lowered with
two of them (two_unrolled_updates). The slow tier compiles three representative
steps (a cGAN, a WGAN-GP, a regression) for real: each model is built twice
from one seed at smoke size, one test step then one train step run on the
batches `train()` would feed it, once eagerly and once with jit_compile=True,
and their logged losses and metrics must agree. Those compile in a process
of their own (`python tests/test_xla.py STEP...` prints their logs as JSON),
since XLA keeps every program it compiled until its process ends.
`--strategy tpu`'s own checks run here without a TPU.
"""

import functools
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_bruvik_models import TinyClassifier, TinySegmenter
from test_experiments import inception_resnet_v2_stand_in

from chroma import cli
from chroma.data import SAMPLE_NAMES, make_dataset, samples
from chroma.metrics import colorization_metrics
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.koalarization import KoalarizationGenerator
from chroma.models.network_generator import NetworkGenerator
from chroma.models.segmentation_prior import SegmentationPrior
from chroma.recipes import known_experiments, load_experiment, select_runs
from chroma.training import (
    RegressionColorizer,
    Run,
    Runtime,
    make_strategy,
    read_history,
    smoke_settings,
    train,
)
from chroma.training.hardware import check_tpu_data
from chroma.training.trainer import step_datasets



def distinct_steps():
    """{"recipe/run": (Run, Settings)}: every run of every recipe and every pretraining phase at smoke size, once
    per distinct step; phases with the same build, compiled losses, batch_targets and settings but for epochs,
    batch size and the optimizers' numbers (efthymiadis' fine-tuned UGANs and their pretraining, bruvik's
    batch-16 run and its own, villarenteria's release and paper Adam betas) are one step, named after all of
    them: those change the schedule's length, a shape's first dimension and constants, not what compiles."""
    steps = []  # [identity, names, run, settings]
    for name in known_experiments():
        recipe = load_experiment(name)
        smoke = recipe.SCALES["smoke"]
        for run in select_runs(recipe):
            settings = run.settings_for(smoke)
            phases = [(run.key, run, settings)]
            if run.pretrain is not None:
                phases.append((f"{run.key}/pretrain", run.pretraining_run(), run.pretrain.settings(settings)))
            for key, phase, phase_settings in phases:
                identity = (phase.build, compiled_kind(phase), phase.batch_targets, step_shape(phase_settings))
                same = next((step for step in steps if step[0] == identity), None)
                if same:
                    same[1].append(f"{name}/{key}")
                else:
                    steps.append((identity, [f"{name}/{key}"], phase, phase_settings))
    return {"+".join(names): (run, settings) for _, names, run, settings in steps}


def step_shape(settings):
    return settings._replace(epochs=None, batch_size=None)


def compiled_kind(run):
    """The run's compile_args with each optimizer as its class and its settings that are not numbers: a
    learning rate or a beta is a constant of the step, while a schedule, amsgrad or clipping adds ops."""
    def kind(value):
        if not isinstance(value, keras.optimizers.Optimizer):
            return value
        config = value.get_config()
        return type(value), {key: setting for key, setting in config.items() if key != "name"
                             and (isinstance(setting, bool) or not isinstance(setting, (int, float)))}
    return {name: kind(value) for name, value in run.compile_args(1).items()}


STEPS = distinct_steps()
# Compiled and compared in the slow tier: one step of each kind of train_step (ConditionalGAN with an L1 term,
# WassersteinGAN with its gradient penalty and 5 critic batches, RegressionColorizer with frozen networks).
REPRESENTATIVE_STEPS = ("nampouri/unet_cgan", "agosti/wgan", "bruvik/koalarization")


def portable_uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32, **unused):
    """Uniform numbers from a counter-based integer hash of (seed, position): the same compiled or not."""
    del unused  # alg, name: there is one algorithm here
    prime = 2**31 - 1
    seed = tf.cast(seed, tf.int64)
    state = (tf.range(tf.cast(tf.reduce_prod(shape), tf.int64)) + seed[0] * 40503 + seed[1] * 69069 + 1) % prime
    for _ in range(3):
        state = tf.bitwise.bitwise_xor(state * 48271 % prime, tf.bitwise.right_shift(state, 11))
    unit = tf.cast(tf.cast(state, tf.float64) / prime, dtype)
    return tf.reshape(minval + (maxval - minval) * unit, shape)


def portable_dropout(x, rate, seed, noise_shape=None, **unused):
    del unused  # rng_alg, name
    keep = portable_uniform(tf.shape(x) if noise_shape is None else noise_shape, seed, dtype=x.dtype) >= rate
    return tf.where(keep, x / (1 - rate), tf.zeros_like(x))


def step_batches(run, settings, model):
    """(the first train step's batch, the first test batch), prepared by train()'s own step_datasets."""
    source, train_data, eval_data = photo_batches(settings.image_size, settings.batch_size, settings.flip,
                                                  settings.seed, settings.drop_gray)
    train_data, eval_data = step_datasets(run, settings, model, train_data, source, eval_data, source)
    return next(iter(train_data)), next(iter(eval_data))


@functools.cache
def photo_batches(image_size, batch_size, flip, seed, drop_gray):
    """(source, training batches, validation batches) as train() makes them, of one batch of photos: it makes
    every batch a step reads (a stacked step's are read again) and keeps the frozen networks' per-image caches
    short. Made once for the steps that share these settings (a dataset takes 0.2 s to make)."""
    source = samples(SAMPLE_NAMES[:batch_size])
    train_data = make_dataset(source, image_size, batch_size=batch_size, flip=flip, shuffle=True, seed=seed,
                              repeat=True, drop_remainder=True, drop_gray=drop_gray)
    return source, train_data, make_dataset(source, image_size, batch_size=batch_size, drop_gray=drop_gray)


def built_for_steps(run, settings, jit, batches=None):
    """(the run's model built afresh from its seed and compiled as train() compiles it, (train batch, test
    batch)); its variables, the optimizers' included, exist before any step is traced."""
    keras.utils.set_random_seed(settings.seed)
    model = run.build(settings)
    model.compile(**run.compile_args(1), metrics=colorization_metrics(run.metrics), jit_compile=jit,
                  run_eagerly=not jit)
    assert model.jit_compile is jit
    train_batch, eval_batch = batches or step_batches(run, settings, model)
    assert all(value.dtype != tf.string for batch in (train_batch, eval_batch) for value in batch.values())
    model({key: value[:1] for key, value in eval_batch.items()})
    model.build_optimizers()
    return model, (train_batch, eval_batch)


def lowered_to_hlo(run, settings):
    """{"train": HLO text of the run's train step, "test": of its test step}, without compiling either.

    TensorFlow's tf2xla bridge raises on any op XLA cannot express, which is
    what a TPU would refuse; the shapes are the first batches' own.
    """
    model, (train_batch, eval_batch) = built_for_steps(run, settings, jit=True)
    train_batch = two_unrolled_updates(model, train_batch)
    return {phase: tf.function(step, jit_compile=True, autograph=False).experimental_get_compiler_ir(batch)(stage="hlo")
            for phase, step, batch in (("train", model.train_step, train_batch), ("test", model.test_step, eval_batch))}


def two_unrolled_updates(model, train_batch):
    """The train batch of a step of k > 2 updates (ConditionalGAN's d_steps / g_steps), with the model set to
    unroll 2 of them: its first update and a later one hold every op the k do (gan.py's train_step), and the
    other k - 2 would only repeat the later one's ops in tracing and lowering (6 s of each of bruvik's steps)."""
    if model.batches_per_step <= 2:
        return train_batch
    model.d_steps, model.g_steps = min(model.d_steps, 2), min(model.g_steps, 2)
    return {key: value[:, :2] for key, value in train_batch.items()}


def first_steps(run, settings, jit, batches=None):
    """(batches, {"test": logs of a test step, "train": then of a train step}) of the run's model built afresh.

    Uncompiled steps run eagerly. The test step comes first: after a train
    step, Adam's first updates (about the learning rate times the gradient's
    sign) would turn float noise in near-zero gradients into different weights.
    TensorFlow's random ops (dropout, the gradient penalty's interpolation)
    draw other numbers under XLA, by design; both steps draw theirs from
    portable_uniform instead.
    """
    model, batches = built_for_steps(run, settings, jit, batches)
    train_batch, eval_batch = batches
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.random, "stateless_uniform", portable_uniform)
        patch.setattr(tf.nn.experimental, "stateless_dropout", portable_dropout)
        test_logs = model.test_on_batch(eval_batch, return_dict=True)
        train_logs = model.train_on_batch(train_batch, return_dict=True)
    logs = {"test": test_logs, "train": train_logs}
    return batches, {phase: {name: float(value) for name, value in phase_logs.items()}
                     for phase, phase_logs in logs.items()}


def compiled_and_uncompiled(run, settings):
    """{"test": (uncompiled logs, compiled logs), "train": (...)} of the run's first steps."""
    batches, uncompiled = first_steps(run, settings, jit=False)
    _, compiled = first_steps(run, settings, jit=True, batches=batches)
    return {phase: (uncompiled[phase], compiled[phase]) for phase in uncompiled}


def assert_alike(logs):
    for phase, (uncompiled, compiled) in logs.items():
        assert compiled.keys() == uncompiled.keys(), phase
        for name in uncompiled:
            np.testing.assert_allclose(compiled[name], uncompiled[name], rtol=1e-3, atol=1e-4,
                                       err_msg=f"{phase} step's {name}")


def compare_in_this_process(steps):
    """{step: its compiled_and_uncompiled logs, or {"error": the traceback}}: what `__main__` prints."""
    # The real Inception-ResNet-v2 builds in seconds; at smoke scale its embedding is cached before training
    # (Settings.cache_embeddings), outside the step, so the stand-in leaves the step as it is.
    keras.applications.InceptionResNetV2 = inception_resnet_v2_stand_in  # see stand_in_inception
    results = {}
    for step in steps:
        try:
            results[step] = compiled_and_uncompiled(*STEPS[step])
        except Exception:  # noqa: BLE001 - each step's test reports its own failure
            results[step] = {"error": traceback.format_exc()}
    return results


@pytest.fixture
def stand_in_inception(monkeypatch):
    # The real Inception-ResNet-v2 builds in seconds; at smoke scale its embedding is cached before training
    # (Settings.cache_embeddings), outside the step, so the stand-in leaves the step as it is.
    monkeypatch.setattr(keras.applications, "InceptionResNetV2", inception_resnet_v2_stand_in)


@pytest.mark.parametrize("step", STEPS)
def test_every_recipes_steps_lower_to_xla(step, stand_in_inception):
    lowered = lowered_to_hlo(*STEPS[step])
    assert all(text.startswith("HloModule") and "ENTRY" in text for text in lowered.values())


def test_a_step_that_calls_back_into_python_does_not_lower():
    """What the lowering test stands on: an op XLA cannot express fails it, naming the op."""

    class PythonCallback(keras.layers.Layer):
        def call(self, ab):
            zeros = tf.numpy_function(np.zeros_like, [ab], ab.dtype, stateful=False)
            return ab + tf.ensure_shape(zeros, ab.shape)  # ab's gradient goes round the callback

    def build(settings):
        del settings
        return RegressionColorizer(NetworkGenerator(keras.Sequential([
            keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3, padding="same"), PythonCallback()])))

    run = Run("callback", "a Python callback", build,
              lambda total_steps: {"optimizer": keras.optimizers.Adam(1e-3), "loss": "l1"}, paper={})
    with pytest.raises(ValueError, match="unsupported operations.*PyFuncStateless"):
        lowered_to_hlo(run, smoke_settings(epochs=1, image_size=16))


@pytest.mark.slow("XLA's CPU code generation of three steps, in a process of its own: about 40 s on 2 cores")
def test_representative_steps_compile_with_xla_and_give_the_uncompiled_losses():
    # LLVM's optimisations take half of XLA's compile time on a CPU and play no part in whether a step compiles.
    env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.run([sys.executable, __file__, *REPRESENTATIVE_STEPS], capture_output=True, text=True,
                             timeout=900, env=env, cwd=Path(__file__).parent.parent, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads(process.stdout.strip().splitlines()[-1])
    failures = []
    for step in REPRESENTATIVE_STEPS:
        try:
            assert "error" not in results[step], results[step].get("error")
            assert_alike(results[step])
        except AssertionError as error:
            failures.append(f"{step}: {error}")
    assert not failures, "\n\n".join(failures)


def test_the_steps_cover_every_run_of_every_recipe():
    assert set(REPRESENTATIVE_STEPS) <= set(STEPS)
    covered = [name for step in STEPS for name in step.split("+")]
    expected = [f"{name}/{key}" for name in known_experiments()
                for run in select_runs(load_experiment(name))
                for key in (run.key, *([f"{run.key}/pretrain"] if run.pretrain is not None else []))]
    assert sorted(covered) == sorted(expected)


@pytest.fixture
def frozen_savedmodels_run(tmp_path):
    """Paper bruvik's frozen networks from TF-Hub SavedModels, computed in the step (no embedding cache)."""
    tf.saved_model.save(TinyClassifier(), str(tmp_path / "inception"))
    tf.saved_model.save(TinySegmenter(), str(tmp_path / "deeplab"))

    def build(settings):
        del settings
        return RegressionColorizer(KoalarizationGenerator(InceptionEmbedding(source=str(tmp_path / "inception")),
                                                          SegmentationPrior(str(tmp_path / "deeplab"))))

    run = Run("savedmodels", "frozen SavedModels", build,
              lambda total_steps: {"optimizer": keras.optimizers.Adam(1e-3), "loss": "l1"}, paper={})
    return run, smoke_settings(epochs=1, image_size=32)


def test_frozen_savedmodels_lower_into_the_step(frozen_savedmodels_run):
    assert all("ENTRY" in text for text in lowered_to_hlo(*frozen_savedmodels_run).values())


@pytest.mark.slow("XLA's CPU code generation for a step with two SavedModels in it")
def test_frozen_savedmodels_compile_into_the_step(frozen_savedmodels_run):
    assert_alike(compiled_and_uncompiled(*frozen_savedmodels_run))


def tiny_gan_trained_with_jit(out_dir, epochs):
    recipe = load_experiment(str(Path(__file__).parent / "recipes" / "tiny.py"))
    run = Run("jit", "tiny cGAN", recipe.gan, recipe.constant_recipe, paper={}, metrics=("l1_ab",))
    return train(run, recipe.SCALES["smoke"]._replace(epochs=epochs), out_dir, Runtime(jit=True), verbose=0)


def test_train_with_jit_compiles_the_model_with_xla(tmp_path):
    assert tiny_gan_trained_with_jit(tmp_path, epochs=0).jit_compile is True


@pytest.mark.slow("XLA's CPU code generation of a train step inside train(), about 7 s on 2 cores; the fast tier "
                  "checks that train(runtime=Runtime(jit=True)) compiles the model with XLA")
def test_train_with_jit_trains_with_compiled_steps(tmp_path):
    tiny_gan_trained_with_jit(tmp_path, epochs=1)
    assert np.isfinite(read_history(tmp_path)["g_loss"]).all()


def test_portable_random_numbers_are_the_same_compiled_and_uniform():
    draw = lambda: portable_uniform((4, 5000), tf.constant([3, 4]))
    eager = draw().numpy()
    np.testing.assert_array_equal(tf.function(draw, jit_compile=True)(), eager)
    assert eager.min() >= 0 and eager.max() < 1 and abs(eager.mean() - 0.5) < 0.01
    assert len(np.unique(eager)) > 0.99 * eager.size


# --strategy tpu without a TPU


def test_a_tpu_strategy_connects_to_the_address_it_is_given(monkeypatch):
    calls = []

    class Resolver:
        def __init__(self, tpu):
            calls.append(("resolver", tpu))

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda resolver: calls.append("connect"))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda resolver: calls.append("initialize"))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda resolver: ("strategy", type(resolver)))
    assert make_strategy("tpu", "grpc://10.0.0.2:8470") == ("strategy", Resolver)
    assert calls == [("resolver", "grpc://10.0.0.2:8470"), "connect", "initialize"]
    with pytest.raises(ValueError, match="--tpu ADDRESS"):
        make_strategy("tpu")


def test_tpu_training_data_must_be_tfrecords_on_cloud_storage():
    check_tpu_data(["gs://bucket/coco-train", "gs://bucket/coco-train"])
    with pytest.raises(ValueError, match=r"TFRecords on gs:// .*got coco:/data/coco\?take=8, /photos; "
                                         r".*chroma data build SPEC -o gs://"):
        check_tpu_data(["gs://bucket/coco-train", "coco:/data/coco?take=8", "/photos", "/photos"])


def test_reproduce_on_a_tpu_checks_every_phases_data_before_connecting(monkeypatch, capsys, tmp_path):
    strategies = []
    monkeypatch.setattr("chroma.training.make_strategy", lambda *args: strategies.append(args))
    reproduced = {}

    def reproduce(experiment, scale, **kwargs):
        reproduced.update(kwargs)
        (tmp_path / "results.md").write_text("table")
        return tmp_path / "results.md", tmp_path / "results.csv"

    monkeypatch.setattr("chroma.reproduce.reproduce", reproduce)
    tpu = ["--scale", "paper", "--strategy", "tpu", "--tpu", "local", "--coco", "/data/coco"]
    assert cli.main(["reproduce", "nampouri", *tpu]) == 2
    assert "got coco:/data/coco?split=train2017&take=8000; write them" in capsys.readouterr().err
    # efthymiadis fine-tunes on --data, and pretrains on COCO first.
    assert cli.main(["reproduce", "efthymiadis", *tpu, "--data", "gs://bucket/imagenet27"]) == 2
    assert "got coco:/data/coco?split=train2017&take=8000; write" in capsys.readouterr().err
    assert not strategies
    assert cli.main(["reproduce", "villarenteria", *tpu, "--data", "gs://bucket/coco-train", "--jit"]) == 0
    assert strategies == [("tpu", "local")] and reproduced["runtime"].jit is True


if __name__ == "__main__":
    print(json.dumps(compare_in_this_process(sys.argv[1:])))
