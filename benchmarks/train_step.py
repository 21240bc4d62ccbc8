"""chroma's benchmark: paper-size train steps, the input pipeline and `chroma colorize`, on this machine.

    make benchmark                                        # all of it, ~15 minutes on 2 CPU cores
    make benchmark ARGS="--only pix2pix --precision float32 --steps 5"
    .venv/bin/python benchmarks/train_step.py --smoke     # tiny sizes: checks that it runs, in a few minutes

First the machine: CPU model, cores, the CPU flags that decide TensorFlow's
speed, TensorFlow's build (oneDNN, CUDA), the GPUs, and the precision
`--precision auto` would train in here, and why. Then, each as one line:

- pix2pix, resnet_cgan, wgan_gp: the train steps of paper nampouri's U-Net
  cGAN (54.4 M-parameter U-Net + 70x70 PatchGAN, BCE + 100 x L1), its
  ResNet-18 U-Net cGAN (random encoder weights) and paper agosti's WGAN-GP
  (five critic updates with gradient penalty per step, each on its own batch),
  built and compiled by the recipes at paper settings except the batch
  (default 4). Images/s counts the images a step reads (batch x 5 for the
  WGAN). Warm-up steps (tracing) are not timed; then `--repeats` runs of
  `--steps` steps are, and their median, min, max and spread (max / min)
  printed, per precision.
- input pipeline: make_dataset over TFRecords of the bundled photos (shuffle,
  flip, repeat) at paper bruvik's batch of 64, beside what the fastest
  pix2pix step consumes: PASS when the pipeline is at least 5x faster.
- chroma colorize: a separate `python -m chroma.cli colorize` process on a
  folder of 12-megapixel JPEGs with the paper-size U-Net exported as a
  SavedModel: images/s per photo (but the first and last), the process's peak
  resident memory and how busy it kept the cores.

A markdown table of every figure ends the output.

Options:
  --only NAME               only this benchmark (repeatable): pix2pix, resnet_cgan, wgan_gp, pipeline, colorize
  --precision P             float32, mixed_bfloat16 or mixed_float16 (repeatable); default: float32, and the
                            precision auto picks where it is another (mixed_bfloat16 on a CPU with native
                            bfloat16, mixed_float16 on a GPU)
  --steps N                 timed steps per repetition (default: 3 for pix2pix and resnet_cgan, 1 for wgan_gp)
  --repeats N               timed repetitions of every train step and of the pipeline (default: 5)
  --warmup N                untimed train steps first, at least 1: the first traces the step (default: 2)
  --jit                     compile the train steps with XLA (model.compile(jit_compile=True))
  --image-size PX           side of the train steps' and the pipeline's images (default: the papers', 256)
  --batch-size N            train step batch (default: 4)
  --pipeline-batch-size N   input pipeline batch (default: paper bruvik's, 64)
  --pipeline-batches N      timed pipeline batches per repetition (default: 10)
  --pipeline-records N      TFRecords written for it (default: 256)
  --photos N                JPEGs colorized, at least 3 (default: 6)
  --photo-size WxH          their size (default: 4000x3000, 12 megapixels)
  --smoke                   tiny defaults for every size above (64 px, batch 2, 1 step, 2 repetitions, 400x300
                            photos, ...): checks the script end to end; its figures mean nothing
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from chroma.training.hardware import PRECISIONS, choose_precision  # noqa: E402

# This folder's modules: Python puts a script's own folder first on its path.
from colorize_throughput import measure_colorize, paper_colorizer, stand_in_photos  # noqa: E402
from input_throughput import bruvik_sizes, measure_pipeline, stand_in_tfrecords, verdict  # noqa: E402
from machine_info import machine_lines  # noqa: E402
from rates import summary_table  # noqa: E402
from step_throughput import STEP_BENCHMARKS, measure_step  # noqa: E402

BENCHMARKS = (*STEP_BENCHMARKS, "pipeline", "colorize")
PIPELINE_WARMUP_BATCHES = 2  # building the pipeline and the first reads of every shard

# None: the paper's (image size, pipeline batch size) or each benchmark's own (steps).
PAPER_DEFAULTS = dict(image_size=None, batch_size=4, steps=None, repeats=5, warmup=2, pipeline_batch_size=None,
                      pipeline_batches=10, pipeline_records=256, photos=6, photo_size=(4000, 3000))
SMOKE_DEFAULTS = dict(image_size=64, batch_size=2, steps=1, repeats=2, warmup=1, pipeline_batch_size=8,
                      pipeline_batches=2, pipeline_records=16, photos=3, photo_size=(400, 300))


def positive_int(text):
    """A count or size of at least 1 (at least one warm-up step: the first traces the step)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def photo_size(text):
    """"4000x3000" -> (4000, 3000)."""
    width, height = text.lower().split("x")
    return positive_int(width), positive_int(height)


def parse_arguments(argv=None):
    """The options, as the module docstring describes them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [options]")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME")
    parser.add_argument("--precision", action="append", choices=PRECISIONS, metavar="P")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    for option in ("--image-size", "--batch-size", "--steps", "--repeats", "--warmup", "--pipeline-batch-size",
                   "--pipeline-batches", "--pipeline-records", "--photos"):
        parser.add_argument(option, type=positive_int, metavar="N")
    parser.add_argument("--photo-size", type=photo_size, metavar="WxH")
    args = parser.parse_args(argv)
    # Sizes not given take the paper's defaults, or the tiny ones of --smoke.
    for name, default in (SMOKE_DEFAULTS if args.smoke else PAPER_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    # Checked before anything runs, rather than after minutes of train steps.
    if args.photos < 3:
        parser.error("--photos must be at least 3: the first photo pays for the model's first call, the last only "
                     "drains the pipeline")
    return args


def default_precisions():
    """float32, and the precision `auto` picks on this machine where it is another."""
    return list(dict.fromkeys(["float32", choose_precision("auto")[0]]))


def run_steps(args, names):
    """The train step benchmarks among `names`, each at every precision asked."""
    results = []
    for name in names:
        for precision in args.precision or default_precisions():
            steps = args.steps or STEP_BENCHMARKS[name].default_steps
            print(f"... {name} [{precision}]: building, {args.warmup} warm-up and {args.repeats} x {steps} timed "
                  "steps", file=sys.stderr)
            result = measure_step(name, precision, steps=steps, repeats=args.repeats, warmup=args.warmup,
                                  jit=args.jit, image_size=args.image_size, batch_size=args.batch_size)
            print(result.line())
            results.append(result)
    return results


def run_pipeline(args, work_dir, step_results):
    print(f"... input pipeline: writing {args.pipeline_records} TFRecords", file=sys.stderr)
    tfrecords = stand_in_tfrecords(work_dir / "tfrecords", args.pipeline_records)
    paper_image_size, paper_batch_size = bruvik_sizes()
    result = measure_pipeline(tfrecords, image_size=args.image_size or paper_image_size,
                              batch_size=args.pipeline_batch_size or paper_batch_size, batches=args.pipeline_batches,
                              repeats=args.repeats, warmup=PIPELINE_WARMUP_BATCHES)
    print(result.line())
    pix2pix = [step for step in step_results if step.benchmark == "pix2pix"]
    if pix2pix:
        # The fastest precision consumes the most images: the pipeline has to keep up with that one.
        print(verdict(result, max(pix2pix, key=lambda step: step.median)))
    else:
        print("input pipeline: no pix2pix step measured to compare it with (add --only pix2pix)")
    return result


def run_colorize(args, work_dir):
    print(f"... chroma colorize: exporting the U-Net, writing {args.photos} photos of "
          f"{args.photo_size[0]}x{args.photo_size[1]}", file=sys.stderr)
    model = paper_colorizer(work_dir / "colorizer", args.image_size)
    photos = stand_in_photos(work_dir / "photos", args.photos, args.photo_size)
    result = measure_colorize(photos, model, work_dir / "colorized", log_path=work_dir / "colorize.log")
    print(result.line())
    return result


def main(argv=None):
    sys.stdout.reconfigure(line_buffering=True)  # each figure shows as it is measured, also through a pipe
    args = parse_arguments(argv)
    names = args.only or BENCHMARKS
    print("\n".join(machine_lines()))
    results = run_steps(args, [name for name in BENCHMARKS if name in STEP_BENCHMARKS and name in names])
    with tempfile.TemporaryDirectory(prefix="chroma-benchmark-") as work_dir:
        if "pipeline" in names:
            results.append(run_pipeline(args, Path(work_dir), results))
        if "colorize" in names:
            results.append(run_colorize(args, Path(work_dir)))
    print(f"\n{summary_table(results)}")


if __name__ == "__main__":
    main()
