"""The one training engine: every paper's model trains through `train`, read top to bottom.

Papers differ in networks, losses, update ratios and schedules; a recipe
(`experiments/<paper>.py`) states those as a `Run`, and this file does the
rest the same way for all: data, strategy, precision, resume, logs.
"""

import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import keras
import tensorflow as tf

from chroma.data import SkipReport, count_elements, make_dataset
from chroma.data.specs import resolve
from chroma.metrics import colorization_metrics
from chroma.runtime import Runtime
from chroma.training.callbacks import ResumableCheckpoint, SampleImages
from chroma.training.embedding_cache import compute_embeddings, with_cached_embeddings
from chroma.training.hardware import choose_precision, optimizer_for, set_precision, worker_count, write_dir

# Metrics computed during fit and validation; the results tables add the rest.
TRAINING_METRICS = ("l1_ab", "psnr", "ssim")
# Metrics where a larger value is better; losses and errors are smaller-is-better.
HIGHER_IS_BETTER = ("psnr", "ssim", "uiqi", "colorfulness")


class Pretraining(NamedTuple):
    """A first training phase whose networks a run then starts from.

    settings(settings) -> the phase's Settings (other data, fewer epochs).
    build and compile_args as Run's; None means the run's own (paper
    efthymiadis 3.3.3 pretrains the same GAN on COCO), others train another
    model around the same generator (paper bruvik 5.5: the generator alone,
    by L1 regression). Networks both models have (see
    ColorizationModel.networks) carry over; the rest start fresh.
    """

    settings: Callable
    build: Callable | None = None
    compile_args: Callable | None = None


class Run(NamedTuple):
    """One model of a paper's table and how to train it.

    build(settings) -> a ColorizationModel, small when settings.smoke.
    compile_args(total_steps) -> keyword arguments of its `compile` (optimizers,
    losses); total_steps, the run's train steps, lets a schedule span the whole
    run: an optimizer that updates k times a step (a critic at d_steps=k)
    makes k * total_steps updates.
    paper: the paper's reported figures, keyed like chroma's metrics.
    monitor: the logged value (a validation metric, or a loss) whose best
    epoch is kept as best.weights.h5.
    scored_at: which weights the results table scores: "last" (the run's
    end) or "best" (best.weights.h5, the epoch `monitor` rates best: papers
    villarenteria table 3 and efthymiadis 3.2 report such epochs).
    scored_in: how the table's model runs: "inference" (dropout off, batch
    norm's moving averages), "dropout" (pix2pix's noise: dropout on, moving
    averages; paper nampouri 4.2) or "training" (Keras training mode:
    dropout on and batch norm with each test batch's own statistics; paper
    agosti VI, "kept in training mode also during evaluation").
    sample_epochs: epochs -> the epochs (from 1) whose colorizations of the
    held-out samples the harness shows side by side in <run>_epochs.png
    (bruvik's figure 8: the last two; efthymiadis' figure 7: the CNN's run).
    metrics: what fit reports every epoch, for training and validation
    (names of chroma.metrics.SCALED_LAB_METRICS; paper agosti's figure 3
    follows UIQI too).
    overrides: settings -> this run's own settings where they differ from the
    scale's (see at_paper_scale, e.g. 224 px and 200 epochs beside the GANs'
    256 and 100).
    pretrain: a Pretraining phase, trained first in <run dir>/pretrain.
    batch_targets: settings -> {batch key: a frozen network of scaled L}
    whose per-image outputs the batches carry, computed once before the
    first epoch (ChromaGAN's "class_target" from a frozen VGG-16).
    """

    key: str
    name: str
    build: Callable
    compile_args: Callable
    paper: dict
    monitor: str = "val_l1_ab"
    scored_at: str = "last"
    scored_in: str = "inference"
    sample_epochs: Callable | None = None
    metrics: tuple = TRAINING_METRICS
    note: str = ""
    overrides: Callable | None = None
    pretrain: Pretraining | None = None
    batch_targets: Callable | None = None

    def settings_for(self, settings, overrides=None):
        """This run's settings, in the one order every command resolves them: the recipe's at the scale
        (`settings`), then this run's own (Run.overrides), then the command line's `overrides` ({name: value}
        of --set; the names that are no Settings field change compile arguments, see with_compile_overrides)."""
        return (self.overrides(settings) if self.overrides else settings).with_overrides(overrides)

    def picks_epoch_on_validation(self):
        """True when the weights scored are those of the epoch a validation figure rates best: that figure must
        not be read on the data the run is scored on (reproduce.check_protocol)."""
        return self.scored_at == "best" and self.monitor.startswith("val_")

    def pretraining_run(self):
        """The Run of the pretraining phase: its own model and recipe where it names them."""
        return self._replace(
            key=f"{self.key}/pretrain", name=f"{self.name} (pretraining)",
            build=self.pretrain.build or self.build, compile_args=self.pretrain.compile_args or self.compile_args,
            pretrain=None,
        )


def at_paper_scale(**fields):
    """An `overrides` that sets `fields` at paper scale only: smoke runs all share the smoke settings."""

    def overrides(settings):
        return settings if settings.smoke else settings._replace(**fields)

    return overrides


class Settings(NamedTuple):
    """How much data and compute a run gets: a recipe's SCALES hold one per scale (chroma.recipes.CONTRACT).

    Hyperparameters and data apart: a scale's Settings may leave the data out
    (None), and the harness adds it where this machine keeps it
    (chroma.recipes.settings_at); code that needs only hyperparameters reads
    them without any path. smoke=True asks `Run.build` for small networks
    that train on a CPU; base_filters is the width the recipes' networks
    start from (the papers' 64; 16 at smoke scale). batch_size: one
    machine's batch, which its replicas split; under a multi-worker strategy
    the global batch is batch_size times the workers. assets: {name: where
    this machine keeps a pretrained network} (a local path, "imagenet" for
    the Keras cache file, ...): the harness fills it from `--asset
    NAME=PATH`; a recipe's ASSETS names the ones it reads and what their
    values mean. cache_embeddings: a generator's per-image frozen inputs
    (BatchInput.per_image: paper bruvik's Inception embedding) are computed
    once per training and validation image before the first epoch instead of
    at every step (see embedding_cache).
    """

    image_size: int
    batch_size: int
    epochs: int
    train_data: str | None = None
    eval_data: str | None = None
    # What fit validates on after each epoch, where a best epoch is picked (Run.picks_epoch_on_validation); None:
    # eval_data, fine for a run scored at its last epoch.
    validation_data: str | None = None
    pretrain_data: str | None = None  # a pretraining phase's own data (paper efthymiadis' COCO), if not train_data
    smoke: bool = False
    base_filters: int = 64
    flip: bool = True
    seed: int = 0
    assets: dict = {}  # never mutated: a run's own assets come with _replace
    cache_embeddings: bool = False
    drop_gray: bool = False  # leave out images that are already gray (paper agosti IV-B)

    def with_overrides(self, overrides):
        """These settings with the values of `overrides` ({name: value} of --set) that name one of their fields;
        its other names are the recipe's compile values (with_compile_overrides)."""
        return self._replace(**{name: value for name, value in (overrides or {}).items() if name in self._fields})


class PaperData(NamedTuple):
    """Where a paper's data is on this machine: what a recipe's paper_data(coco, data) returns (data specs,
    chroma.data.specs)."""

    train_data: str
    eval_data: str
    validation_data: str | None = None  # apart from eval_data for a recipe whose runs pick a best epoch
    pretrain_data: str | None = None


def compile_values(compile_args):
    """{name: value} of a recipe's compile arguments that a command line may change: its numbers and words
    (reconstruction_weight, adversarial_loss, ...), and NAME_lr, the constant learning rate of its optimizer
    NAME_optimizer ("lr" for "optimizer"; a schedule is not one value)."""
    values = {}
    for name, value in compile_args.items():
        if isinstance(value, keras.optimizers.Optimizer):
            rate = value.get_config()["learning_rate"]
            if isinstance(rate, (int, float)):
                # Read back from a float32 variable: 2e-4 comes back as 1.9999999e-4; 7 digits are float32's.
                values[learning_rate_name(name)] = float(f"{rate:.7g}")
        elif isinstance(value, (bool, int, float, str)):
            values[name] = value
    return values


def learning_rate_name(optimizer_name):
    return optimizer_name.removesuffix("optimizer") + "lr"


def with_compile_overrides(compile_args, overrides):
    """compile_args with the overrides that name its values (compile_values) applied; others are left alone."""
    changed = dict(compile_args)
    for name, value in compile_args.items():
        if isinstance(value, keras.optimizers.Optimizer) and learning_rate_name(name) in overrides:
            value.learning_rate = overrides[learning_rate_name(name)]
        elif name in overrides and not isinstance(value, keras.optimizers.Optimizer):
            changed[name] = overrides[name]
    return changed


def smoke_settings(epochs, image_size=64, validation_split=False, **fields):
    """Every recipe's smoke scale: 6 bundled photos to train on, 2 held out to score, batch 2, small networks.
    validation_split: 5 to train on and 1 to validate on, for a recipe whose runs pick a best epoch."""
    train_data, validation_data = ("samples?take=5", "samples?skip=5&take=1") if validation_split else (
        "samples?take=6", None)
    return Settings(train_data=train_data, validation_data=validation_data, eval_data="samples?skip=6",
                    image_size=image_size, batch_size=2, epochs=epochs, smoke=True, base_filters=16, **fields)


def train(run, settings, out_dir, runtime=Runtime(), verbose="auto", start_from=None, callbacks=(), overrides=None):
    """Trains `run` under `settings`, resuming from `out_dir` if it holds a checkpoint.

    start_from: a trained model of the same run whose networks' weights this
    one starts from (fine-tuning after a pretraining phase); a checkpoint in
    out_dir, if any, still takes precedence. callbacks: Keras callbacks to
    run beside the engine's own (chroma.estimate's step timer). runtime: its
    strategy, its precision (a Keras dtype policy, or "auto" for the
    hardware's: choose_precision) and jit (the train and test steps compiled
    with XLA, Keras's jit_compile; a TPU compiles them whatever it says).
    overrides: {name: value} the caller changed from the recipe's (`--set`),
    recorded in run.json: settings (already in `settings`, see
    Run.settings_for) and the recipe's compile values (compile_values),
    applied here.

    Writes to out_dir: checkpoints/ (the resumable state), best.weights.h5,
    history.csv (one row per epoch, across resumptions), logs/ (TensorBoard:
    losses, metrics, sample grids) and run.json. Under a multi-worker
    strategy only the chief does; the other workers write theirs to
    temporary directories they remove (hardware.write_dir). Returns the
    trained model.
    """
    out_dir = Path(out_dir)
    strategy = runtime.strategy or tf.distribute.get_strategy()
    precision, precision_reason = choose_precision(runtime.precision, strategy)
    print(f"{run.name}: precision {precision} ({precision_reason})", file=sys.stderr)
    set_precision(precision)
    keras.utils.set_random_seed(settings.seed)

    # Data: an infinite shuffled stream cut into epochs of one pass each. settings.batch_size is each worker's:
    # fit splits every global batch between the workers (make_dataset's auto-shard policy says how).
    batch_size = settings.batch_size * worker_count(strategy)
    # "eval" below is what fit validates on: the validation data where the settings name it.
    train_source = resolve(settings.train_data)
    eval_source = resolve(settings.validation_data or settings.eval_data)
    batches_per_epoch = count_elements(train_source, batch_size=batch_size, drop_gray=settings.drop_gray,
                                       drop_remainder=True)
    if batches_per_epoch == 0:
        raise ValueError(f"{settings.train_data} has fewer images than one batch of {batch_size}")
    report = SkipReport()
    train_data = make_dataset(
        train_source, settings.image_size, batch_size=batch_size, flip=settings.flip,
        shuffle=True, seed=settings.seed, repeat=True, drop_remainder=True, drop_gray=settings.drop_gray,
        report=report,
    )
    eval_data = make_dataset(eval_source, settings.image_size, batch_size=batch_size, drop_gray=settings.drop_gray)
    sample_batch = next(iter(eval_data))

    # Models, optimizers and metrics are created in the strategy's scope.
    with strategy.scope():
        model = run.build(settings)
        # A step of k updates (ConditionalGAN's d_steps / g_steps) reads k batches, so an epoch, one pass
        # over the images, is batches / k steps; at least one, so a smoke set of fewer batches is reread.
        steps_per_epoch = max(1, batches_per_epoch // model.batches_per_step)
        if batches_per_epoch < model.batches_per_step:
            print(f"{run.name}: {batches_per_epoch} batches are fewer than one step's {model.batches_per_step}; "
                  "each epoch rereads some", file=sys.stderr)
        total_steps = steps_per_epoch * settings.epochs
        compile_args = {
            name: optimizer_for(value) if isinstance(value, keras.optimizers.Optimizer) else value
            for name, value in with_compile_overrides(run.compile_args(total_steps), overrides or {}).items()
        }
        model.compile(**compile_args, metrics=colorization_metrics(run.metrics), jit_compile=runtime.jit)
        model({key: value[:1] for key, value in sample_batch.items()})
        model.build_optimizers()
        if start_from is not None:
            model.copy_networks_from(start_from)
    train_data, eval_data = step_datasets(run, settings, model, train_data, train_source, eval_data, eval_source)

    # Every worker resumes from the chief's checkpoint and writes what the chief writes, to `files`.
    with write_dir(out_dir, strategy) as files:
        checkpoint = ResumableCheckpoint(out_dir / "checkpoints", model, write_to=files / "checkpoints")
        print(f"{run.name}: {checkpoint.describe_size()}", file=sys.stderr)
        initial_epoch = checkpoint.restore()
        if initial_epoch:
            print(f"{run.name}: resumed after epoch {initial_epoch} from {checkpoint.manager.latest_checkpoint}",
                  file=sys.stderr)
        (files / "run.json").write_text(json.dumps({
            "run": run.key, "name": run.name, "settings": settings._asdict(), "precision": precision,
            "precision_reason": precision_reason, "jit": runtime.jit,
            "replicas": strategy.num_replicas_in_sync, "workers": worker_count(strategy),
            "global_batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
            "overrides": dict(overrides or {}),
        }, indent=2))

        callbacks = [
            # History first: a kill right after the checkpoint then costs no epoch its row.
            keras.callbacks.CSVLogger(files / "history.csv", append=True),
            checkpoint,
            keras.callbacks.ModelCheckpoint(
                files / "best.weights.h5", monitor=run.monitor,
                mode=monitor_mode(run.monitor),
                save_best_only=True, save_weights_only=True,
            ),
            keras.callbacks.TensorBoard(files / "logs"),
            SampleImages(sample_batch, files / "logs" / "samples",
                         kept_epochs=run.sample_epochs(settings.epochs) if run.sample_epochs else (),
                         kept_dir=files / "epoch_samples"),
            *callbacks,
        ]
        started = time.perf_counter()
        if initial_epoch < settings.epochs:
            with warnings.catch_warnings():
                # Validation makes one pass over a dataset of unknown length; Keras warns when it ends.
                warnings.filterwarnings("ignore", "Your input ran out of data")
                model.fit(
                    train_data, epochs=settings.epochs, steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                    validation_data=eval_data, callbacks=callbacks, shuffle=False,  # the dataset shuffles itself
                    verbose=verbose if verbose != "auto" else (1 if sys.stderr.isatty() else 2),
                )
    print(f"{run.name}: {settings.epochs - initial_epoch} epochs in {time.perf_counter() - started:.0f} s; "
          f"{report.summary()}", file=sys.stderr)
    return model


def step_datasets(run, settings, model, train_data, train_source, eval_data, eval_source):
    """(training, validation) batches as `model`'s train and test steps read them, from make_dataset's batches of
    `train_source` and `eval_source`: numbers only, with what the generator and the run's losses read, and a
    train step's batches stacked."""
    # What the generator reads beyond L (chroma.models.generator): an input made from another feature (token ids
    # from captions) is made in tf.data, so no string reaches the step; one made from L by a frozen network is
    # computed in the step, or once per image before the first epoch where it is per image and the settings ask.
    frozen = dict(run.batch_targets(settings)) if run.batch_targets else {}
    derived = {}
    for key, feature in model.generator.batch_inputs().items():
        if feature.source != "L":
            derived[key] = feature
        elif feature.per_image and settings.cache_embeddings:
            frozen[key] = feature.compute
    for key, network in frozen.items():
        # Validation images are never mirrored, so their cached vectors are exactly those of the step.
        train_data, eval_data = (
            with_cached_embeddings(data, *compute_embeddings(network, source, settings.image_size,
                                                             settings.batch_size, name=key), key=key)
            for data, source in ((train_data, train_source), (eval_data, eval_source))
        )
    train_data, eval_data = (data.map(lambda batch: with_derived_inputs(batch, derived))
                             for data in (train_data, eval_data))
    # Caption and name strings have done their work here; a TPU's infeed takes numbers only.
    train_data, eval_data = (data.map(numeric_features) for data in (train_data, eval_data))
    if model.batches_per_step > 1:
        train_data = stack_batches(train_data, model.batches_per_step)
    return train_data, eval_data


def monitor_mode(monitor):
    """"max" for a logged metric where larger is better, "min" for losses and errors."""
    return "max" if monitor.removeprefix("val_") in HIGHER_IS_BETTER else "min"


def stack_batches(dataset, count):
    """Groups `count` consecutive batches of (B, ...) into one of (B, count, ...): what a train step of
    `count` updates on different batches reads (ConditionalGAN's d_steps / g_steps).

    Stacked on axis 1, so a distribution strategy still splits the images of
    each batch across replicas, and each replica's step sees all `count`.
    """

    def to_axis_1(value):
        return tf.transpose(value, [1, 0, *range(2, value.shape.rank)])

    return dataset.batch(count, drop_remainder=True).map(
        lambda batch: {key: to_axis_1(value) for key, value in batch.items()})


def with_derived_inputs(batch, derived):
    """The batch with each {key: BatchInput} of `derived` computed from its source feature."""
    return {**batch, **{key: feature.compute(batch[feature.source]) for key, feature in derived.items()}}


def numeric_features(batch):
    """The batch without its string features."""
    return {key: value for key, value in batch.items() if value.dtype != tf.string}


def read_history(out_dir):
    """history.csv -> {column: [value per epoch]}, the last row kept where a resumed run repeated an epoch."""
    path = Path(out_dir) / "history.csv"
    if not path.exists():
        return {}
    by_epoch = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            if row.get("epoch") not in (None, "epoch"):
                by_epoch[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(by_epoch):
        for name, value in by_epoch[epoch].items():
            if name != "epoch":
                history.setdefault(name, []).append(float(value) if value not in ("", None) else math.nan)
    return history


