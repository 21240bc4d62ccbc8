"""Train steps as the paper recipes build and compile them, timed on a constant batch.

The models come from the recipes' own Run.build and Run.compile_args at paper
settings, compiled as chroma.training.train compiles them (optimizers wrapped
by optimizer_for, the run's training metrics, jit_compile), and fed batches
prepared as training prepares them (trainer.step_datasets: numeric features,
a WGAN critic's five batches stacked into one step). The batch is one step's
worth of bundled photos repeated, so the time is the step's alone, without
the input pipeline's (input_throughput.py measures that).
"""

import time
from itertools import pairwise
from typing import NamedTuple

import keras

from chroma.data import make_dataset, samples
from chroma.metrics import colorization_metrics
from chroma.recipes import hyperparameters, load_experiment, select_runs
from chroma.training import optimizer_for, set_precision
from chroma.training.trainer import step_datasets

from rates import Throughput


class StepBenchmark(NamedTuple):
    """A paper run whose train step is benchmarked."""

    paper: str
    run_key: str
    default_steps: int  # timed steps per repetition: a few seconds each on 2 CPU cores, so the whole fits 15 minutes


STEP_BENCHMARKS = {
    "pix2pix": StepBenchmark("nampouri", "unet_cgan", default_steps=3),  # U-Net (54.4 M) + 70x70 PatchGAN
    "resnet_cgan": StepBenchmark("nampouri", "resnet_cgan", default_steps=3),  # ResNet-18 U-Net, random encoder
    "wgan_gp": StepBenchmark("agosti", "wgan", default_steps=1),  # 5 critic updates with gradient penalty, 1 G update
}


def paper_run(benchmark, image_size=None, batch_size=None):
    """(run, settings): the recipe's run and its paper settings, with the image size and batch given (None: the
    paper's); only sizes and networks are used, so the settings name no data."""
    experiment = load_experiment(benchmark.paper)
    run, = select_runs(experiment, [benchmark.run_key])
    settings = run.settings_for(hyperparameters(experiment, "paper"))
    return run, settings._replace(image_size=image_size or settings.image_size,
                                  batch_size=batch_size or settings.batch_size)


def compiled_model(run, settings, total_steps, jit):
    """The run's model, built and compiled as chroma.training.train does; fit makes its variables and its
    optimizers' in the first step, a warm-up step."""
    keras.utils.set_random_seed(settings.seed)
    model = run.build(settings)
    compile_args = {name: optimizer_for(value) if isinstance(value, keras.optimizers.Optimizer) else value
                    for name, value in run.compile_args(total_steps).items()}
    model.compile(**compile_args, metrics=colorization_metrics(run.metrics), jit_compile=jit)
    return model


def constant_batches(run, settings, model):
    """One train step's input, prepared as training prepares it, repeated forever."""
    photos = samples()
    batches = make_dataset(photos, settings.image_size, batch_size=settings.batch_size, repeat=True,
                           drop_remainder=True)
    step_inputs, _ = step_datasets(run, settings, model, batches, photos, batches, photos)
    return step_inputs.take(1).cache().repeat()


class StepClock(keras.callbacks.Callback):
    """When each train step ends."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        # Reading a loss waits for the step's result: on a GPU, whose kernels run after the call returns,
        # the step's work is then counted in its own step.
        float(logs["g_loss"])
        self.ends.append(time.perf_counter())


def fit_steps(run, settings, total_steps, jit):
    """Trains the run's model for `total_steps` steps on a constant batch: (when each step ended, the images
    each step read)."""
    model = compiled_model(run, settings, total_steps, jit)
    clock = StepClock()
    model.fit(constant_batches(run, settings, model), epochs=1, steps_per_epoch=total_steps, callbacks=[clock],
              shuffle=False, verbose=0)
    return clock.ends, settings.batch_size * model.batches_per_step


def measure_step(name, precision, *, steps, repeats, warmup, jit, image_size=None, batch_size=None):
    """Throughput of benchmark `name`'s train step: images read per second (batch x batches per step) in each
    of `repeats` runs of `steps` steps, after `warmup` (at least 1) untimed steps, the first of which traces it."""
    run, settings = paper_run(STEP_BENCHMARKS[name], image_size, batch_size)
    set_precision(precision)
    try:
        ends, images_per_step = fit_steps(run, settings, warmup + steps * repeats, jit)
    finally:
        set_precision("float32")
        keras.backend.clear_session()  # frees this model before the next benchmark builds its own
    # Each repetition starts where the step before it ended: the last warm-up step's end, then each one's.
    boundaries = ends[warmup - 1::steps]
    rates = tuple(steps * images_per_step / (end - start) for start, end in pairwise(boundaries))
    note = (f"{settings.image_size}x{settings.image_size}, {images_per_step} images per step "
            f"(batch {settings.batch_size}), repetitions of {steps} step(s){', XLA' if jit else ''}")
    return Throughput(name, precision, rates, note)
