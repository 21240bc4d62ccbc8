"""What caching paper bruvik's Inception embedding saves: one Inception-GAN train step with and without it.

    .venv/bin/python benchmarks/embedding_cache.py                   # 256x256, batch 4, 3 timed steps
    .venv/bin/python benchmarks/embedding_cache.py --image-size 128 --steps 5

The generator is the full model of table 1 (Inception-ResNet-v2 with random
weights, the random segmentation stand-in, a PatchGAN), trained as section 5.6
says: five G updates per D update, each G update on a batch of its own, so a
train step reads five batches. The frozen networks run once per image of the
step either way (ColorizationModel.generator_inputs); the cache removes the
Inception forward pass from every step and costs one pass over the training
set before the first epoch. Prints seconds per step both ways (on a busy
machine their difference drowns in noise), the Inception pass per image
measured alone, and what that means for the paper's 8,000 images x 15 epochs.

Measured 2026-11-23 on the 2-core CI-class machine (AMD EPYC, AVX2), random
weights: Inception-ResNet-v2 0.20-0.36 s/image. The cache turns the paper's 15
passes of Inception over 8,000 images (6.7 h on this CPU) into one (0.4 h).
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

PAPER_IMAGES, PAPER_EPOCHS = 8000, 15
G_STEPS = 5  # section 5.6


def stacked(batch):
    """One batch repeated as a step's G_STEPS batches, stacked on axis 1 as chroma.training.stack_batches does."""
    return {key: tf.stack([value] * G_STEPS, axis=1) for key, value in batch.items()}


def seconds_per_step(model, batch, steps, warmup=1):
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, epochs=1, steps_per_epoch=warmup, shuffle=False, verbose=0)  # traces the step
    started = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    model = ConditionalGAN(KoalarizationGenerator(InceptionEmbedding(weights=None), SegmentationPrior()),
                           PatchDiscriminator(), seed=0, g_steps=G_STEPS)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    batch = next(iter(make_dataset(samples(), args.image_size, batch_size=args.batch_size)))
    batch = {"L": batch["L"], "ab": batch["ab"]}

    embed = tf.function(model.generator.embedding)
    embed(batch["L"])  # traces
    started = time.perf_counter()
    vectors = embed(batch["L"]).numpy()
    embedding_per_image = (time.perf_counter() - started) / args.batch_size

    # A step's five batches (the same photos five times: the timing is what matters here).
    computed = seconds_per_step(model, stacked(batch), args.steps)
    cached = seconds_per_step(model, stacked({**batch, "embedding": vectors}), args.steps)
    inception_per_step = embedding_per_image * args.batch_size * G_STEPS
    print(f"Inception-GAN train step ({G_STEPS} G + 1 D updates on {G_STEPS} batches), "
          f"{args.image_size}x{args.image_size}, batch {args.batch_size}, {args.steps} steps:")
    print(f"  embedding read from the cache:  {cached:.2f} s/step")
    print(f"  embedding computed in the step: {computed:.2f} s/step")
    print(f"  Inception-ResNet-v2 forward pass: {embedding_per_image:.3f} s/image, so {inception_per_step:.2f} s of "
          f"each step without the cache ({100 * inception_per_step / (cached + inception_per_step):.0f}%)")
    paper_epoch_hours = PAPER_IMAGES * embedding_per_image / 3600
    print(f"  paper scale ({PAPER_IMAGES} images, {PAPER_EPOCHS} epochs, this hardware): Inception costs "
          f"{paper_epoch_hours * PAPER_EPOCHS:.1f} h computed in every step, {paper_epoch_hours:.1f} h cached")


if __name__ == "__main__":
    main()
