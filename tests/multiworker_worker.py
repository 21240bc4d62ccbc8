"""One worker of a multi-worker run on this machine, for tests/test_multiworker.py; TF_CONFIG says which.

    python tests/multiworker_worker.py RUNS_DIR EPOCHS BATCH_SIZE TFRECORDS REPORT

builds chroma's multi-worker strategy, writes to REPORT (a JSON file) the
names of the images this worker reads of every global batch of the bundled
photos (decoded in Python) and of the TFRecord directory TFRECORDS, then
trains the tiny recipe's "gan" run through chroma.reproduce into RUNS_DIR:
EPOCHS epochs of batches of BATCH_SIZE per worker. Without TF_CONFIG it
trains on one device, without a strategy: the single-process reference.
"""

import json
import os
import sys
import traceback
from pathlib import Path

import keras

from chroma.cli import exit_without_finalizing
from chroma.data import make_dataset
from chroma.data.specs import resolve
from chroma.recipes import load_experiment
from chroma.reproduce import reproduce
from chroma.training import Runtime, make_strategy
from chroma.training.hardware import is_chief, worker_count

TINY = Path(__file__).resolve().parent / "recipes" / "tiny.py"
DECODED = "samples?take=4"


def shards(strategy, spec, batch_size):
    """[the names this worker reads of each global batch of `spec`], one pass, unshuffled."""
    dataset = make_dataset(resolve(spec), 16, batch_size=batch_size * worker_count(strategy))
    return [sorted(name.decode() for part in strategy.experimental_local_results(batch["name"])
                   for name in part.numpy())
            for batch in strategy.experimental_distribute_dataset(dataset)]


def sgd_recipe(total_steps):
    # SGD, not Adam: Adam's step is about the learning rate whatever the gradient, so it would turn float
    # noise into differences of a whole step, and hide a gradient off by a factor.
    return dict(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1),
                reconstruction_weight=10.0)


def tiny_experiment(epochs, batch_size):
    """The tiny recipe's "gan" run, trained by SGD for `epochs` epochs of `batch_size` per worker."""
    experiment = load_experiment(str(TINY))
    experiment.SCALES = {scale: settings._replace(epochs=epochs, batch_size=batch_size)
                         for scale, settings in experiment.SCALES.items()}
    experiment.RUNS = [run._replace(compile_args=sgd_recipe) for run in experiment.RUNS if run.key == "gan"]
    return experiment


def main(runs_dir, epochs, batch_size, tfrecords, report):
    epochs, batch_size = int(epochs), int(batch_size)
    strategy = make_strategy("multiworker" if "TF_CONFIG" in os.environ else "default")
    Path(report).write_text(json.dumps({
        "chief": is_chief(strategy), "workers": worker_count(strategy),
        "decoded": shards(strategy, DECODED, batch_size), "tfrecords": shards(strategy, tfrecords, batch_size),
    }))
    reproduce(tiny_experiment(epochs, batch_size), "smoke", runs_root=runs_dir, run_keys=["gan"], runtime=Runtime(strategy),
              index_path=Path(runs_dir) / "RESULTS.md")


if __name__ == "__main__":
    code = 0
    try:
        main(*sys.argv[1:])
    except BaseException:
        traceback.print_exc()
        code = 1
    exit_without_finalizing(code)  # as the `chroma` command does
