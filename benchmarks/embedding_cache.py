"""What caching paper bruvik's Inception embedding saves: one Inception-GAN train step with and without it.

    .venv/bin/python benchmarks/embedding_cache.py                   # 256x256, batch 4, 3 timed steps
    .venv/bin/python benchmarks/embedding_cache.py --image-size 128 --steps 5

The generator is the full model of table 1 (Inception-ResNet-v2 with random
weights, the random segmentation stand-in, a PatchGAN), trained as section 5.6
says: five G updates per D update. The frozen networks run once per train
step either way (ColorizationModel.generator_inputs); the cache removes the
Inception forward pass from every step and costs one pass over the training
set before the first epoch. Prints seconds per step both ways, the cache's
cost per image, and what that means for the paper's 8,000 images x 15 epochs.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from chroma.data import make_dataset, samples  # noqa: E402
from chroma.models.inception_embedding import InceptionEmbedding  # noqa: E402
from chroma.models.koalarization import KoalarizationGenerator  # noqa: E402
from chroma.models.patchgan import PatchDiscriminator  # noqa: E402
from chroma.models.segmentation_prior import SegmentationPrior  # noqa: E402
from chroma.training import ConditionalGAN  # noqa: E402

PAPER_IMAGES, PAPER_EPOCHS, PAPER_BATCH = 8000, 15, 64


def seconds_per_step(model, batch, steps, warmup=1):
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, epochs=1, steps_per_epoch=warmup, verbose=0)  # traces the step
    started = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    model = ConditionalGAN(KoalarizationGenerator(InceptionEmbedding(weights=None), SegmentationPrior()),
                           PatchDiscriminator(), seed=0)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5), g_steps=5)
    batch = next(iter(make_dataset(samples(), args.image_size, batch_size=args.batch_size)))
    batch = {"L": batch["L"], "ab": batch["ab"]}

    embed = tf.function(model.generator.embedding)
    embed(batch["L"])  # traces
    started = time.perf_counter()
    vectors = embed(batch["L"]).numpy()
    cache_per_image = (time.perf_counter() - started) / args.batch_size

    computed = seconds_per_step(model, batch, args.steps)
    cached = seconds_per_step(model, {**batch, "embedding": vectors}, args.steps)
    paper_steps = PAPER_IMAGES // PAPER_BATCH * PAPER_EPOCHS
    # Per image, the Inception pass a step saves; scaled to the paper's batch.
    saved_per_paper_step = (computed - cached) / args.batch_size * PAPER_BATCH
    print(f"Inception-GAN train step (5 G + 1 D updates), {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, {args.steps} steps:")
    print(f"  embedding computed in the step: {computed:.2f} s/step")
    print(f"  embedding read from the cache:  {cached:.2f} s/step ({100 * (1 - cached / computed):.0f}% less)")
    print(f"  building the cache: {cache_per_image:.3f} s/image, once")
    print(f"  paper scale ({PAPER_IMAGES} images, {PAPER_EPOCHS} epochs, batch {PAPER_BATCH}, same hardware): "
          f"{saved_per_paper_step * paper_steps / 3600:.1f} h of Inception saved for "
          f"{cache_per_image * PAPER_IMAGES / 3600:.1f} h of caching")


if __name__ == "__main__":
    main()
