"""tf.data pipelines: records -> clean RGB -> the (L, ab) pairs every model trains on.

Elements are dicts {"L": (S, S, 1), "ab": (S, S, 2), "caption": string,
"label": int32}, L and ab scaled to [-1, 1] (see chroma.color). S is whatever
the model needs (the papers use 224, 256 and 299).
"""

import itertools
import logging
import math
import os

import numpy as np
import tensorflow as tf

from ..color import rgb_to_scaled_lab
from .images import SkipReport, UnreadableImage, is_grayscale
from .tfrecords import is_tfrecord_dir, read_metadata, read_tfrecords

logger = logging.getLogger("chroma")

# What both a Source and a TFRecord directory yield before preprocessing.
_RGB_CAPTION_LABEL = (
    tf.TensorSpec((None, None, 3), tf.uint8),
    tf.TensorSpec((), tf.string),
    tf.TensorSpec((), tf.int32),
)


def preprocess(rgb_uint8, image_size, flip=False, seed=None):
    """uint8 RGB (H, W, 3) -> L (S, S, 1) and ab (S, S, 2), float32 in [-1, 1].

    Pure TF, so it runs eagerly or inside tf.data. The image is resized to a
    square S x S as the papers do (no crop), bilinear with antialiasing so
    downscaling does not alias. `flip` mirrors left-right with probability
    1/2; with `seed` (two integers) the choice is stateless and reproducible.
    """
    rgb = tf.convert_to_tensor(rgb_uint8)
    if rgb.dtype != tf.uint8:
        raise TypeError(f"preprocess expects uint8 RGB, got {rgb.dtype}")
    image = tf.image.resize(rgb, (image_size, image_size), method="bilinear", antialias=True) / 255.0
    if flip:
        if seed is None:
            image = tf.image.random_flip_left_right(image)
        else:
            image = tf.image.stateless_random_flip_left_right(image, seed)
    return rgb_to_scaled_lab(image)


def make_dataset(
    source,
    image_size=256,
    *,
    batch_size=None,
    flip=False,
    drop_gray=False,
    shuffle=False,
    seed=0,
    repeat=False,
    max_side=1024,
    report=None,
    drop_remainder=False,
):
    """A tf.data.Dataset of {"L", "ab", "caption", "label"} from a Source or a TFRecord directory.

    From a Source, records are decoded in Python with `load_rgb` (longer side
    <= max_side); unreadable ones, and with drop_gray already-gray ones, are
    skipped and counted into `report` (a SkipReport, filled in and logged once
    at the end of the first full pass). A TFRecord directory (see
    chroma.data.tfrecords) was cleaned when built: max_side is ignored and the
    build's counts go into `report` at once.

    shuffle: a seeded permutation of the records on every pass (for
    TFRecords: of the shards, then a buffer of encoded records) - always
    before decoding, where it costs nothing. flip: a random left-right mirror
    per example, seeded by `seed` and the example's position, so runs repeat.
    """
    if isinstance(source, (str, os.PathLike)):
        if not is_tfrecord_dir(source):
            raise ValueError(
                f"{source} is not a TFRecord directory (no dataset.json); open image folders with open_source"
            )
        images, _ = read_tfrecords(source, drop_gray, shuffle=shuffle, seed=seed, report=report)
    else:
        report = SkipReport() if report is None else report
        images = _decoded_images(source, max_side, drop_gray, shuffle, seed, report)
    if repeat:
        images = images.repeat()

    def to_example(index, rgb_caption_label):
        rgb, caption, label = rgb_caption_label
        flip_seed = tf.stack([tf.constant(seed, tf.int64), index])
        l, ab = preprocess(rgb, image_size, flip=flip, seed=flip_seed)
        return {"L": l, "ab": ab, "caption": caption, "label": label}

    # Numbering examples after repeat() gives each epoch's copy its own flip.
    dataset = images.enumerate().map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _decoded_images(source, max_side, drop_gray, shuffle, seed, report):
    """(rgb, caption, label) for each usable record, decoded by a Python generator."""
    records = source.records
    pass_numbers = itertools.count()
    reported = False

    def generate():
        nonlocal reported
        pass_number = next(pass_numbers)
        order = range(len(records))
        if shuffle:
            order = np.random.default_rng([seed, pass_number]).permutation(len(records))
        this_pass = SkipReport(report.keep)
        for index in order:
            record = records[index]
            this_pass.seen += 1
            try:
                rgb = record.load(max_side)
            except UnreadableImage as error:
                this_pass.skip(record.name, error.reason)
                continue
            if drop_gray and is_grayscale(rgb):
                this_pass.drop_gray(record.name)
                continue
            yield rgb, record.caption, record.label
        # Only reached when a pass runs to the end; later passes repeat the same news.
        if not reported:
            reported = True
            report.merge(this_pass)
            if this_pass.skipped or this_pass.dropped_gray:
                logger.warning("%s: %s", source.name, this_pass.summary())

    return tf.data.Dataset.from_generator(generate, output_signature=_RGB_CAPTION_LABEL)


def count_elements(source, *, batch_size=None, drop_gray=False, drop_remainder=False):
    """How many elements one pass of `make_dataset` yields, e.g. for progress bars.

    Exact for a TFRecord directory; for a Source an upper bound, since
    unreadable and gray images are only found while decoding.
    """
    if isinstance(source, (str, os.PathLike)):
        metadata = read_metadata(source)
        count = metadata["count"] - (metadata["num_gray"] if drop_gray else 0)
    else:
        count = len(source.records)
    if batch_size:
        count = count // batch_size if drop_remainder else math.ceil(count / batch_size)
    return count
