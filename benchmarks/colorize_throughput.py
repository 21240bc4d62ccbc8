"""`chroma colorize` on a folder of large JPEGs, run as a user runs it: a process of its own, with its start-up.

The colorizer is paper nampouri's U-Net generator at paper size with random
weights (its cost does not depend on what it learnt), exported as `chroma
export` exports it. A photo's cost is mostly its own size: the generator sees
a 256x256 copy, while decoding, the Lab conversions and the upsampled ab run
at the photo's full resolution (chroma.export.serving_functions).
"""

import os
import resource
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import keras
from PIL import Image

from chroma.data import samples
from chroma.estimate import peak_memory
from chroma.export import export_saved_model

from rates import Throughput
from step_throughput import STEP_BENCHMARKS, paper_run

JPEG_QUALITY = 95  # a camera's; chroma colorize writes its outputs at the same


def stand_in_photos(out_dir, count, size):
    """`count` JPEGs of `size` (width, height) in out_dir: the bundled photos enlarged to it, stretched where
    their shape differs (what a photo shows does not change its cost)."""
    out_dir.mkdir(parents=True)
    bundled = samples().records
    for index in range(count):
        record = bundled[index % len(bundled)]
        photo = Image.fromarray(record.load()).resize(size, Image.Resampling.BICUBIC)
        photo.save(out_dir / f"{index:02d}_{record.name}.jpg", quality=JPEG_QUALITY)
    return out_dir


def paper_colorizer(out_dir, image_size=None):
    """A SavedModel of nampouri's U-Net generator at paper size (image_size: another training size)."""
    run, settings = paper_run(STEP_BENCHMARKS["pix2pix"], image_size)
    keras.utils.set_random_seed(settings.seed)
    generator = run.build(settings).generator
    return export_saved_model(generator, out_dir, settings.image_size)


def cpu_seconds(pid):
    """User + system CPU time process `pid` has used so far (Linux /proc)."""
    # proc(5): utime and stime are fields 14 and 15, the 12th and 13th after the ")" that ends the command name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def colorize_process(photos, model, out_dir, log):
    """`python -m chroma.cli colorize` started on photos; its stderr (TensorFlow's start-up noise) goes to `log`."""
    command = [sys.executable, "-m", "chroma.cli", "colorize", str(photos), "--model", str(model), "-o", str(out_dir)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)


def measure_colorize(photos, model, out_dir, log_path):
    """Runs `chroma colorize photos --model model -o out_dir` on 3 photos or more; its Throughput, one rate per
    photo but the first and the last, with start-up, peak memory and CPU use.

    colorize saves a photo while it colours the next, and prints a photo's line once it is saved, so
    lines come one colorization apart; the first photo pays for the model's first call, and the last
    line follows the one before by a save alone.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log_path, "w") as log, colorize_process(photos, model, out_dir, log) as process:
        written = []  # (wall-clock time, the process's CPU seconds) as each photo's "[n/N] ..." line arrives
        with peak_memory(process.pid) as memory:
            for line in process.stdout:
                if line.startswith("["):
                    written.append((time.perf_counter(), cpu_seconds(process.pid)))
    wall = time.perf_counter() - started
    # The children's CPU times grew by colorize's alone, the only process this script waited for since `before`.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if process.returncode:
        raise RuntimeError(f"chroma colorize exited with status {process.returncode}:\n{Path(log_path).read_text()}")
    rates = tuple(1 / (later[0] - earlier[0]) for earlier, later in pairwise(written[:-1]))
    steady_cpu = (written[-1][1] - written[0][1]) / (written[-1][0] - written[0][0])
    cores = os.cpu_count()
    note = (f"peak resident memory {memory['bytes'] / 1e9:.2f} GB; CPU use {100 * steady_cpu / cores:.0f}% of "
            f"{cores} cores while colorizing, {100 * total_cpu / wall / cores:.0f}% over the whole process; "
            f"{len(written)} photos in {wall:.1f} s with start-up ({len(written) / wall:.2f} images/s)")
    return Throughput("chroma colorize", "float32", rates, note)
