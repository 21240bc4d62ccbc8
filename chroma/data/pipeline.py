"""tf.data pipelines: records -> clean RGB -> the (L, ab) pairs every model trains on.

Elements are dicts {"L": (S, S, 1), "ab": (S, S, 2), "caption": string,
"label": int32, "name": string}, L and ab scaled to [-1, 1] (see
chroma.color), name the image's name in its source (unique within it). S is
whatever the model needs (the papers use 224, 256 and 299).
"""

import logging
import math
import os
import threading

import numpy as np
import tensorflow as tf

from ..color import rgb_to_scaled_lab
from .images import SkipReport, UnreadableImage, is_grayscale
from .tfds_source import TfdsSplit, count_examples, read_tfds
from .tfrecords import TfrecordFolder, as_tfrecord_folder, count_records, is_tfrecord_dir, read_tfrecords

logger = logging.getLogger("chroma")

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
    """A tf.data.Dataset of {"L", "ab", "caption", "label", "name"} from a Source, a TFRecord directory (its
    path or a TfrecordFolder) or a TfdsSplit (a prepared TensorFlow Datasets dataset: chroma.data.tfds_source).

    From a Source, records are decoded in Python with `load_rgb` (longer side
    <= max_side); unreadable ones, and with drop_gray already-gray ones, are
    skipped and counted into `report` (a SkipReport, filled in and logged once
    at the end of the first full pass). A TFRecord directory (see
    chroma.data.tfrecords) was cleaned when built: max_side is ignored and the
    build's counts, and its damaged records by shard, go into `report` at once. A TfdsSplit is decoded in
    TensorFlow; max_side is ignored there too.

    shuffle: a seeded permutation of the records on every pass (for
    TFRecords: of the shards, then a buffer of encoded records) - always
    before decoding, where it costs nothing. flip: a random left-right mirror
    per example, seeded by `seed` and the example's position, so runs repeat.
    The dataset's options tell a multi-worker strategy how to split it between
    its workers (distribute_options).
    """
    if isinstance(source, TfdsSplit):
        images = read_tfds(source, drop_gray, shuffle=shuffle, seed=seed)
        if repeat:
            images = images.repeat()
        # By data: every worker reads all the examples and keeps its part of each batch, which needs no
        # more files than workers; at TPU-pod scale, TFRecords from `chroma data build` shard by file.
        shard_by = tf.data.experimental.AutoShardPolicy.DATA
    elif isinstance(source, (str, os.PathLike, TfrecordFolder)):
        path = as_tfrecord_folder(source).path
        if not is_tfrecord_dir(path):
            raise ValueError(
                f"{path} is not a TFRecord directory (no dataset.json); open image folders with open_source"
            )
        images, _ = read_tfrecords(source, drop_gray, shuffle=shuffle, seed=seed, report=report)
        if repeat:
            images = images.repeat()
        shard_by = tf.data.experimental.AutoShardPolicy.FILE
    else:
        report = SkipReport() if report is None else report
        images = _decoded_images(source, max_side, drop_gray, shuffle, seed, repeat, report)
        shard_by = tf.data.experimental.AutoShardPolicy.DATA

    def to_example(index, record):
        rgb, caption, label, name = record
        flip_seed = tf.stack([tf.constant(seed, tf.int64), index])
        l, ab = preprocess(rgb, image_size, flip=flip, seed=flip_seed)
        return {"L": l, "ab": ab, "caption": caption, "label": label, "name": name}

    # Numbering examples after repeat() gives each epoch's copy its own flip.
    dataset = _numbered(images, seed, shard_by).map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(distribute_options(shard_by))


def _numbered(images, seed, shard_by):
    """(n, record) for each record of `images`, n an int64 that seeds the record's flip.

    n is the record's position, counted by a zip with Dataset.counter() (not
    enumerate(): enumerate over a generator left mid-pass hangs the process at
    exit). Sharding by file walks the pipeline back to the TFRecord reader and
    cannot pass that zip, so TFRecords draw n instead, from a seeded random op
    in a sequential map: one draw per record in order, the same draws on every
    new iterator, as repeatable as the count.
    """
    if shard_by == tf.data.experimental.AutoShardPolicy.FILE:
        return images.map(lambda *record: (tf.random.uniform([], maxval=2**62, dtype=tf.int64, seed=seed), record))
    return tf.data.Dataset.zip(tf.data.Dataset.counter(), images)


def distribute_options(shard_by):
    """tf.data options that say how a multi-worker strategy splits the dataset between its workers.

    FILE: each worker reads its own TFRecord files (a directory needs at
    least as many as there are workers). DATA: each worker reads every
    record and keeps its part of each global batch, the only split of
    records decoded in Python; it needs their order to be the same on every
    worker, as the seeded shuffle and deterministic maps make it.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_by
    return options


def _decoded_images(source, max_side, drop_gray, shuffle, seed, repeat, report):
    """(rgb, caption, label, name) for each usable record, decoded in Python by a parallel map; endlessly
    with repeat.

    A map over record indices rather than `Dataset.from_generator`: a generator
    left mid-pass (as fit leaves a repeated dataset) hangs the process at exit,
    and Pillow releases the GIL while decoding, so parallel calls really overlap.
    """
    records = source.records
    lock = threading.Lock()
    first_pass = SkipReport(report.keep)
    counted = set()  # the record indices first_pass has counted

    def load(index):
        record = records[index]
        rgb, usable = _EMPTY_RGB, True
        try:
            rgb = record.load(max_side)
        except UnreadableImage as error:
            usable, outcome = False, error.reason
        else:
            outcome = "gray" if drop_gray and is_grayscale(rgb) else None
            usable = outcome is None
        with lock:
            _count_first_pass(first_pass, counted, index, record.name, outcome, len(records), report, source.name)
        return rgb, usable, record.caption, np.int32(record.label), record.name

    def record_order(_):
        # Made anew for every iterator: a shuffle draws each pass's order from a seed generator that all iterators
        # of its dataset share, so an iterator made and dropped before (fit's model build under a strategy) would
        # shift the order by however far it had prefetched, and workers sharding by data would disagree on it.
        order = tf.data.Dataset.range(len(records))
        if shuffle:
            order = order.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)  # a new order every pass
        return order.repeat() if repeat else order

    indices = tf.data.Dataset.from_tensors(0).flat_map(record_order)
    loaded = indices.map(
        lambda index: tf.numpy_function(load, [index], (tf.uint8, tf.bool, tf.string, tf.int32, tf.string),
                                        stateful=True),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    usable = loaded.filter(lambda rgb, ok, caption, label, name: ok)
    return usable.map(
        lambda rgb, ok, caption, label, name: (tf.ensure_shape(rgb, [None, None, 3]), tf.ensure_shape(caption, []),
                                               tf.ensure_shape(label, []), tf.ensure_shape(name, []))
    )


_EMPTY_RGB = np.zeros((1, 1, 3), np.uint8)


def _count_first_pass(first_pass, counted, index, name, outcome, total, report, source_name):
    """Counts record `index` the first time it is decoded; once every record is counted, reports them once.

    By index, not by how many came before: the parallel map decodes the next
    pass's first records while this pass's slow ones (a huge JPEG) are still
    decoding, and those must neither count twice nor push a record out.
    """
    if index in counted:
        return  # later passes repeat the same news
    counted.add(index)
    first_pass.seen += 1
    if outcome == "gray":
        first_pass.drop_gray(name)
    elif outcome is not None:
        first_pass.skip(name, outcome)
    if first_pass.seen == total:
        report.merge(first_pass)
        if first_pass.skipped or first_pass.dropped_gray:
            logger.warning("%s: %s", source_name, first_pass.summary())


def count_elements(source, *, batch_size=None, drop_gray=False, drop_remainder=False):
    """How many elements one pass of `make_dataset` yields, e.g. for progress bars.

    Exact for a TFRecord directory (its good records); for a Source an upper bound, since
    unreadable and gray images are only found while decoding, and for a
    TfdsSplit with drop_gray.
    """
    if isinstance(source, TfdsSplit):
        count = count_examples(source)
    elif isinstance(source, (str, os.PathLike, TfrecordFolder)):
        count = count_records(source, drop_gray)
    else:
        count = len(source.records)
    if batch_size:
        count = count // batch_size if drop_remainder else math.ceil(count / batch_size)
    return count
