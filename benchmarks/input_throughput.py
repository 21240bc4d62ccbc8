"""The input pipeline alone, as a paper-scale run reads its data: TFRecords that `chroma data build` wrote,
shuffled, decoded, resized, converted to Lab and flipped by make_dataset, in paper bruvik's batches of 64."""

import time

from chroma.data import make_dataset, samples, write_tfrecords
from chroma.recipes import hyperparameters, load_experiment

from rates import Throughput

# How much faster than the train step consumes images the pipeline must produce them. On a CPU both share the
# same cores during training, so a pipeline only just as fast as the step alone would take the step's time.
REQUIRED_MARGIN = 5.0


def bruvik_sizes():
    """(image size, batch size) of paper bruvik's paper-scale run: 256 px, batch 64."""
    settings = hyperparameters(load_experiment("bruvik"), "paper")
    return settings.image_size, settings.batch_size


def stand_in_tfrecords(out_dir, count):
    """A TFRecord folder of `count` records, the bundled photos repeated under names of their own, written as
    `chroma data build` writes (8 shards, longer side at most 512)."""
    bundled = samples()
    records = [bundled.records[index % len(bundled.records)] for index in range(count)]
    renamed = [record._replace(name=f"{index:05d}_{record.name}") for index, record in enumerate(records)]
    write_tfrecords(bundled._replace(records=renamed), out_dir, progress=False)
    return str(out_dir)


def measure_pipeline(tfrecords, *, image_size, batch_size, batches, repeats, warmup):
    """Images per second make_dataset yields from `tfrecords`, in `repeats` runs of `batches` batches each,
    after `warmup` untimed batches (building the pipeline, first file reads)."""
    dataset = make_dataset(tfrecords, image_size, batch_size=batch_size, shuffle=True, flip=True, repeat=True,
                           drop_remainder=True)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batches * batch_size / (time.perf_counter() - started))
    note = f"TFRecords, {image_size}x{image_size}, batch {batch_size}, {batches} batches per repetition"
    return Throughput("input pipeline", "float32", tuple(rates), note)


def verdict(pipeline, step):
    """One line: the pipeline's median beside the train step's (a Throughput), their ratio, PASS or FAIL."""
    ratio = pipeline.median / step.median
    outcome = "PASS" if ratio >= REQUIRED_MARGIN else "FAIL"
    return (f"input pipeline {pipeline.median:.1f} images/s vs {step.benchmark} [{step.precision}] step "
            f"{step.median:.2f} images/s: {ratio:.1f}x, {outcome} (needs at least {REQUIRED_MARGIN:g}x)")
