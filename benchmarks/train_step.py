"""Throughput of the pix2pix train step (paper nampouri's U-Net cGAN) and of the input pipeline.

    .venv/bin/python benchmarks/train_step.py                      # 256x256, batch 4, fp32 and bf16
    .venv/bin/python benchmarks/train_step.py --steps 20 --precision mixed_float16   # on a GPU

Prints images/s for each precision (after warm-up steps, which include tracing)
and for the tf.data pipeline alone, so the two can be compared: training is
input-bound when the pipeline is the slower one.

Measured 2026-11-23 on the 2-core CI-class machine (AMD EPYC, AVX2, no AVX-512
or AMX), `--steps 5`: pipeline 83.6 images/s; float32 0.49 images/s;
mixed_bfloat16 0.09 images/s. Without AVX-512-BF16 / AMX, TensorFlow's bfloat16
convolutions run ~10x slower than float32 ones, so bfloat16 pays only on CPUs
that have them (and on TPUs); on GPUs use mixed_float16.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from chroma.data import make_dataset, samples  # noqa: E402
from chroma.models.patchgan import PatchDiscriminator  # noqa: E402
from chroma.models.unet import UNetGenerator  # noqa: E402
from chroma.training import ConditionalGAN, optimizer_for, set_precision  # noqa: E402


def pipeline_images_per_second(image_size, batch_size, steps):
    dataset = make_dataset(samples(), image_size, batch_size=batch_size, flip=True, shuffle=True, repeat=True)
    iterator = iter(dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch_size / (time.perf_counter() - started)


def train_step_images_per_second(precision, image_size, batch_size, steps, warmup):
    set_precision(precision)
    try:
        model = ConditionalGAN(UNetGenerator(), PatchDiscriminator())
        model.compile(
            optimizer_for(keras.optimizers.Adam(2e-4, beta_1=0.5)),
            optimizer_for(keras.optimizers.Adam(2e-4, beta_1=0.5)),
        )
        batch = next(iter(make_dataset(samples(), image_size, batch_size=batch_size, repeat=True)))
        data = tf.data.Dataset.from_tensors({"L": batch["L"], "ab": batch["ab"]}).repeat()
        model.fit(data, epochs=1, steps_per_epoch=warmup, shuffle=False, verbose=0)  # traces the step
        started = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        return steps * batch_size / (time.perf_counter() - started)
    finally:
        set_precision("float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--precision", action="append", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                        help="repeatable; default: float32 and mixed_bfloat16")
    args = parser.parse_args()
    device = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("CPU")
    print(f"device: {device[0].device_type}, {os.cpu_count()} CPU cores; "
          f"{args.image_size}x{args.image_size}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"input pipeline alone: {pipeline_images_per_second(args.image_size, args.batch_size, args.steps * 5):8.1f} images/s")
    for precision in args.precision or ["float32", "mixed_bfloat16"]:
        rate = train_step_images_per_second(precision, args.image_size, args.batch_size, args.steps, args.warmup)
        print(f"pix2pix train step, {precision:>14}: {rate:8.2f} images/s")


if __name__ == "__main__":
    main()
