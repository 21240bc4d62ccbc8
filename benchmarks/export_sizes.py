"""What `chroma export --tflite` writes for the demo's model: file sizes, and the TFLite models' latency.

    .venv/bin/python benchmarks/export_sizes.py                     # chroma demo's size, 64x64
    .venv/bin/python benchmarks/export_sizes.py --image-size 256 --repeats 7

Builds the generator `chroma demo` trains (paper nampouri's U-Net cGAN recipe
at smoke scale, chroma/demo.py) untrained: sizes and latency do not depend on
the weights' values. Exports it as `chroma export --tflite` does, prints the
size of the SavedModel folder and of each .tflite file, and the TFLite
interpreter's latency on one bundled photo at the model's size: median of
--repeats invocations after one untimed (which allocates the tensors), on 1
thread and on every core.
"""

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import skimage.data  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from machine_info import machine_lines  # noqa: E402

from chroma.demo import run_demo  # noqa: E402
from chroma.export import export_saved_model  # noqa: E402
from chroma.recipes import hyperparameters, load_experiment, select_runs  # noqa: E402
from chroma.tflite_export import export_tflite  # noqa: E402

DEMO_IMAGE_SIZE = inspect.signature(run_demo).parameters["image_size"].default


def demo_generator(image_size):
    """The generator chroma demo trains, untrained: its recipe's build with the demo's settings."""
    nampouri = load_experiment("nampouri")
    run, = select_runs(nampouri, ["unet_cgan"])
    settings = hyperparameters(nampouri, "smoke")._replace(image_size=image_size)
    keras.utils.set_random_seed(settings.seed)
    return run.build(settings).generator


def megabytes(path):
    files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()]
    return sum(file.stat().st_size for file in files) / 1e6


def median_latency(path, image, threads, repeats):
    """Seconds per invocation of the .tflite file's signature on `image`, median of `repeats`."""
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter is deprecated for ai_edge_litert's, the same interpreter.
        warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    run = interpreter.get_signature_runner()
    run(image=image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(image=image)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=DEMO_IMAGE_SIZE,
                        help="the model's side in pixels (default: chroma demo's, %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed invocations per latency (default: 5)")
    args = parser.parse_args()
    size = args.image_size

    generator = demo_generator(size)
    photo = tf.image.resize(skimage.data.astronaut(), (size, size), antialias=True)
    image = tf.cast(tf.round(photo), tf.uint8).numpy()[None]
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as folder:
        saved_model = export_saved_model(generator, Path(folder) / "saved_model", size)
        rows = [f"| SavedModel folder | {megabytes(saved_model):.2f} | | |"]
        for path in export_tflite(generator, Path(folder) / "tflite", size):
            latencies = [median_latency(path, image, threads, args.repeats) * 1e3 for threads in (1, cores)]
            rows.append(f"| {path.name} | {megabytes(path):.2f} | {latencies[0]:.1f} | {latencies[1]:.1f} |")

    print("\n".join(machine_lines()))
    print(f"\nchroma demo's generator ({type(generator).__name__}, {generator.count_params():,} parameters), "
          f"{size}x{size}, untrained; latency: one image, median of {args.repeats}\n")
    print(f"| file | MB | ms, 1 thread | ms, {cores} threads |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
