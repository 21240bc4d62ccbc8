"""What a paper-scale reproduction costs on this machine, measured before the hardware is rented.

`chroma reproduce <paper> --scale paper --estimate STEPS` builds every run of a
recipe at the paper's settings and trains it, and its pretraining phase, for
STEPS steps on the bundled photos at the paper's image size (a stand-in with
the paper's shapes: the cost of a step does not depend on what the photos
show). Pretrained networks the machine lacks are random, the same compute.
The measured seconds per step, times the paper's steps (epochs x images /
batch / batches per step), project the recipe's wall-clock. Everything is
written to a temporary folder and removed: the runs directory is untouched.

A paper's batch may not fit the machine at hand (villarenteria's 256 images
of 224 px). `--estimate-batch N` then measures every phase at batches of N
and 2N and projects both its step time and its peak memory along the line
through the two points: a step's compute and activations grow in proportion
to the batch, its weights and optimizer state not at all.
"""

import contextlib
import math
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf

from chroma.data import samples, write_tfrecords
from chroma.data.specs import parse_data_spec, resolve
from chroma.data.pipeline import count_elements
from chroma.recipes import hyperparameters, select_runs, settings_at
from chroma.runtime import Runtime
from chroma.training import train

# Images in COCO 2017's splits, for a recipe that reads a whole split this machine does not hold.
COCO_SPLIT_IMAGES = {"train2017": 118_287, "val2017": 5_000, "test2017": 40_670}
MEMORY_POLL_SECONDS = 0.05


class PhaseCost(NamedTuple):
    """One training phase of a run, as measured and projected."""

    run: str
    phase: str  # "training" or "pretraining"
    batch_size: int  # the paper's
    seconds_per_step: float
    images_per_second: float
    peak_memory_bytes: int
    paper_steps: int | None  # None where the paper's data size is unknown here
    projected_seconds: float | None
    measured_batches: tuple = ()  # the smaller batches the figures were projected from; () if measured as they are


def paper_images(spec):
    """How many images a data spec names: its take=N, a COCO split's size, or a count of the data on disk;
    None when it names data this machine does not hold."""
    location, options = parse_data_spec(spec)
    if "take" in options:
        return options["take"]
    split = options.get("coco_split", "train2017")
    if location.startswith("coco:") and not (Path(location.removeprefix("coco:")) / split).is_dir():
        return COCO_SPLIT_IMAGES.get(split)
    try:
        return count_elements(resolve(spec))
    except (FileNotFoundError, ValueError):
        return None


class StepTimer(keras.callbacks.Callback):
    """The seconds between consecutive train steps' ends: a step's cost, data included, once compiled."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def seconds_per_step(self):
        gaps = [later - earlier for earlier, later in zip(self.ends, self.ends[1:])]
        if not gaps:
            raise ValueError("a step's cost needs at least 2 steps (the first one compiles)")
        return statistics.median(gaps)


@contextlib.contextmanager
def peak_memory(pid="self"):
    """Yields a dict whose "bytes" is, after the block, the peak memory the block used: the GPU's peak
    allocation where TensorFlow has a GPU, else the peak resident set of process `pid` (this one by default),
    polled until the block ends or the process does."""
    found = {"bytes": 0}
    gpus = tf.config.list_logical_devices("GPU") if pid == "self" else []
    if gpus:
        tf.config.experimental.reset_memory_stats(gpus[0].name)
        yield found
        found["bytes"] = tf.config.experimental.get_memory_info(gpus[0].name)["peak"]
        return
    done = threading.Event()

    def poll():
        page = resource.getpagesize()
        while not done.wait(MEMORY_POLL_SECONDS):
            try:
                with open(f"/proc/{pid}/statm") as statm:
                    found["bytes"] = max(found["bytes"], int(statm.read().split()[1]) * page)
            except OSError:  # the process has ended
                return

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield found
    finally:
        done.set()
        poller.join()


def stand_in_photos(out_dir, count, image_size):
    """A TFRecord folder of `count` bundled photos (repeated, each under its own name) at image_size."""
    bundled = samples()
    records = [record._replace(name=f"{index:06d}_{record.name}")
               for index, record in enumerate(bundled.records[index % len(bundled.records)] for index in range(count))]
    write_tfrecords(bundled._replace(records=records), out_dir, num_shards=1, max_side=image_size, progress=False)
    return str(out_dir)


def measure(run, settings, phase, steps, work_dir, runtime, measured_batch=None, overrides=None):
    """Trains `run` for `steps` steps on stand-in photos; its PhaseCost, projected over `settings`' data.

    measured_batch: measure at this batch and twice it, and project the
    seconds per step and the peak memory to settings.batch_size along the
    line through both (used where it is smaller than the paper's batch).
    """
    # Built on the stand-in photos, as train() builds it below: a model that reads its data to build (a caption
    # vocabulary) must not read the paper's, which this machine may not hold.
    probe = run.build(settings._replace(train_data="samples", eval_data="samples"))
    batches_per_step = probe.batches_per_step
    del probe
    paper_batch = settings.batch_size
    batches = (paper_batch,)
    if measured_batch is not None and 2 * measured_batch <= paper_batch:
        batches = (measured_batch, 2 * measured_batch)
    measured = []
    for batch in batches:
        at_batch = settings._replace(batch_size=batch)
        photos = stand_in_photos(work_dir / f"{phase}_{batch}_photos", steps * batch * batches_per_step,
                                 settings.image_size)
        held_out = stand_in_photos(work_dir / f"{phase}_{batch}_held_out", batch, settings.image_size)
        timer = StepTimer()
        with peak_memory() as memory:
            train(run, at_batch._replace(train_data=photos, eval_data=held_out, epochs=1),
                  work_dir / f"{phase}_{batch}", runtime, verbose=0, callbacks=[timer], overrides=overrides)
        measured.append((batch, timer.seconds_per_step(), memory["bytes"]))
    seconds, memory_bytes = (along_batch(measured, index, paper_batch) for index in (1, 2))
    per_step = paper_batch * batches_per_step
    images = paper_images(settings.train_data) if settings.train_data is not None else None
    paper_steps = settings.epochs * max(1, images // per_step) if images is not None else None
    return PhaseCost(run.name, phase, paper_batch, seconds, per_step / seconds, int(memory_bytes),
                     paper_steps, paper_steps * seconds if paper_steps is not None else None,
                     batches if len(batches) > 1 else ())


def along_batch(measured, index, batch):
    """Item `index` of [(batch, seconds, bytes)] at `batch`: itself if measured there, else on the line through
    the two measurements, never below the larger one (timing noise can tilt a line of two points down)."""
    if len(measured) == 1:
        return measured[0][index]
    (small, low), (large, high) = ((point[0], point[index]) for point in measured)
    return max(high, high + (batch - large) * (high - low) / (large - small))


def estimate(experiment, steps, coco=None, data=None, assets=None, run_keys=None, runtime=Runtime(),
             measured_batch=None, overrides=None):
    """[PhaseCost] of every run (and pretraining phase) of `experiment` at paper scale, STEPS steps each
    (measure's measured_batch: at smaller batches, projected to the paper's). The paper's steps are projected
    from its data where `coco` and `data` locate it (the recipe's paper_data), and unknown without.
    overrides: --set's {name: value}, applied last as in every command (Run.settings_for)."""
    if steps < 2:
        raise ValueError(f"--estimate needs at least 2 steps (the first one compiles), got {steps}")
    if measured_batch is not None and measured_batch < 1:
        raise ValueError(f"--estimate-batch needs a batch of at least 1 image, got {measured_batch}")
    try:
        settings = settings_at(experiment, "paper", coco, data)
    except ValueError as missing:  # a step's cost needs no data; the paper's number of steps does
        print(f"{missing}: the paper's steps stay unknown", file=sys.stderr)
        settings = hyperparameters(experiment, "paper")
    random_weights = {name: "random" for name in experiment.ASSETS}
    settings = settings._replace(assets={**random_weights, **(assets or {})})
    costs = []
    with tempfile.TemporaryDirectory(prefix="chroma-estimate-") as work_dir:
        for run in select_runs(experiment, run_keys):
            run_settings = run.settings_for(settings, overrides)
            print(f"== estimating {experiment.PAPER}: {run.name}", file=sys.stderr)
            phases = [("training", run, run_settings)]
            if run.pretrain is not None:
                phases.insert(0, ("pretraining", run.pretraining_run(), run.pretrain.settings(run_settings)))
            for phase, phase_run, phase_settings in phases:
                costs.append(measure(phase_run, phase_settings, phase, steps, Path(work_dir) / run.key, runtime,
                                     measured_batch, overrides))
            keras.backend.clear_session()
    return costs


def cost_table(costs):
    """Markdown: one row per phase, then the total of the projected wall-clock."""
    lines = ["| run | phase | batch | s / step | images / s | peak memory (GB) | paper steps | projected hours |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for cost in costs:
        hours = f"{cost.projected_seconds / 3600:.1f}" if cost.projected_seconds is not None else "unknown"
        steps = f"{cost.paper_steps:,}" if cost.paper_steps is not None else "unknown (give COCO / DATA)"
        batch = f"{cost.batch_size}" + (f" (from {', '.join(map(str, cost.measured_batches))})"
                                        if cost.measured_batches else "")
        lines.append(f"| {cost.run} | {cost.phase} | {batch} | {cost.seconds_per_step:.3f} | "
                     f"{cost.images_per_second:.1f} | {cost.peak_memory_bytes / 1e9:.2f} | {steps} | {hours} |")
    known = [cost.projected_seconds for cost in costs if cost.projected_seconds is not None]
    total = f"{math.fsum(known) / 3600:.1f}" + ("" if len(known) == len(costs) else " (known phases)")
    lines.append(f"| **total** | | | | | {max(cost.peak_memory_bytes for cost in costs) / 1e9:.2f} | | {total} |")
    return "\n".join(lines)
