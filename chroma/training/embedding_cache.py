"""A frozen embedding computed once per image, then read from the dataset (paper bruvik, 5.3.3).

Paper bruvik's generator fuses the class vector of a frozen
Inception-ResNet-v2: about 13 GFLOPs per image at 299x299, more than the
generator itself, and the same vector at every epoch. One pass before
training computes it for each image of the training and validation sets;
batches then carry it under "embedding", looked up by image name, and the
generator reads it instead of running the network (an input the batch
brings is used as it is: chroma.models.generator.Generator.complete). The vector is that of the image as
stored: a randomly mirrored copy gets the unmirrored image's vector, which is
how the cache differs from computing it at every step (ImageNet classifiers
are trained to be mirror-invariant).

The same cache carries any frozen network's per-image output the training
step needs (Run.batch_targets: ChromaGAN's VGG-16 class distribution).
"""

import sys
import time

import numpy as np
import tensorflow as tf

from chroma.data import make_dataset

PROGRESS_EVERY = 50  # batches


def compute_embeddings(embedding, source, image_size, batch_size, name="embedding"):
    """(names, vectors (N, D) float32) of every image of `source`, in one unshuffled, unmirrored pass.

    embedding: any frozen network mapping scaled L (B,H,W,1) to (B, D);
    `name` labels the progress lines.
    """
    names, vectors = [], []
    started = time.perf_counter()
    for step, batch in enumerate(make_dataset(source, image_size, batch_size=batch_size), start=1):
        vectors.append(np.asarray(embedding(batch["L"]), np.float32))
        names.extend(batch["name"].numpy())
        if step % PROGRESS_EVERY == 0:
            print(f"{name} cache: {len(names)} images, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    duplicates = len(names) - len(set(names))
    if duplicates:
        raise ValueError(f"the {name} cache keys images by name, and {duplicates} names repeat in this dataset")
    print(f"{name} cache: {len(names)} images in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return names, np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)


def with_cached_embeddings(dataset, names, vectors, key="embedding"):
    """`dataset`'s batches with `key`: each image's row of `vectors`, found by its name."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(names, tf.string), tf.range(len(names), dtype=tf.int64)),
        default_value=-1,
    )
    vectors = tf.constant(vectors)

    def add_embedding(batch):
        rows = table.lookup(batch["name"])
        check = tf.debugging.assert_non_negative(rows, message=f"an image missing from the {key} cache")
        with tf.control_dependencies([check]):
            return {**batch, key: tf.gather(vectors, rows)}

    return dataset.map(add_embedding, num_parallel_calls=tf.data.AUTOTUNE)
