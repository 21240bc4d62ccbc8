"""Sharded TFRecords: decode a Source once (`chroma data build`), train from them at full speed.

Decoding in Python (`load_rgb`) is robust but slow and single-threaded; the
TFRecords hold already-cleaned JPEGs that `tf.data` reads and decodes in
parallel, as a TPU needs. Paths may be `gs://...`, so every file operation
goes through `tf.io.gfile`. Readers get past damaged records (chroma.data.record_scan).
"""

import io
import json
import logging
import sys
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from PIL import Image

from .images import MAX_PIXELS, SkipReport, UnreadableImage, is_grayscale
from .photo_header import gated
from .record_scan import DamagedRecords, check_damage, good_records, read_segment, scan_folder, scanned

logger = logging.getLogger("chroma")

METADATA_FILE = "dataset.json"
SHARD_PATTERN = "part-*-of-*.tfrecord"
JPEG_QUALITY = 95
PROGRESS_EVERY = 500
# Shuffling happens on the serialized records (~50 KB each), before decoding.
SHUFFLE_BUFFER = 2048
# Shards read at once; a fixed number (not AUTOTUNE) keeps the order the same on every machine.
MAX_OPEN_SHARDS = 16
# The fraction of a folder's records a run may lose to damage before it refuses to train on the rest.
MAX_DAMAGED = 0.01

_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "caption": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string),
    "gray": tf.io.FixedLenFeature([], tf.int64),
}


def is_tfrecord_dir(path):
    """True for a directory written by `write_tfrecords` (it has dataset.json)."""
    return tf.io.gfile.exists(tf.io.gfile.join(str(path), METADATA_FILE))


class TfrecordFolder(NamedTuple):
    """A folder `write_tfrecords` wrote, and the fraction of its records that reading it may find damaged
    (the data spec's max_damaged) before refusing it."""

    path: str
    max_damaged: float = MAX_DAMAGED


def as_tfrecord_folder(source):
    """A TfrecordFolder, or a folder's path as one with the default limit."""
    return source if isinstance(source, TfrecordFolder) else TfrecordFolder(str(source))


def _scanned(folder):
    """(TfrecordFolder, its dataset.json, its scan) of a TfrecordFolder or a folder's path."""
    folder = as_tfrecord_folder(folder)
    metadata = read_metadata(folder.path)
    return folder, metadata, scanned(folder.path, metadata, SHARD_PATTERN)


def write_tfrecords(source, out_dir, num_shards=8, max_side=512, report=None, progress=True, seed=0):
    """Decode every record of `source` and write it to `num_shards` TFRecord files.

    Unreadable records are skipped, counted and merged into `report` if one is
    given (also kept in dataset.json for readers). Records are written in a
    seeded random order, so every shard mixes all classes and a reader's
    shuffle buffer suffices. dataset.json is written last: a directory without
    it is an interrupted build. Returns the metadata written there.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    out_dir = str(out_dir)
    tf.io.gfile.makedirs(out_dir)
    if is_tfrecord_dir(out_dir) or tf.io.gfile.glob(tf.io.gfile.join(out_dir, SHARD_PATTERN)):
        raise FileExistsError(f"{out_dir} already holds TFRecords; choose an empty directory")
    shard_names = [f"part-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(tf.io.gfile.join(out_dir, name)) for name in shard_names]
    skips = SkipReport()
    gray = SkipReport()  # the gray images, flagged for readers that drop them
    written = 0
    shard_counts = [0] * num_shards
    try:
        order = np.random.default_rng(seed).permutation(len(source.records))
        for done, index in enumerate(order, start=1):
            record = source.records[index]
            skips.seen += 1
            try:
                rgb = record.load(max_side)
            except UnreadableImage as error:
                skips.skip(record.name, error.reason)
            else:
                record_is_gray = is_grayscale(rgb)
                if record_is_gray:
                    gray.drop_gray(record.name)
                example = _to_example(record, rgb, record_is_gray)
                writers[written % num_shards].write(example.SerializeToString())
                shard_counts[written % num_shards] += 1
                written += 1
            if progress and done % PROGRESS_EVERY == 0:
                print(f"{out_dir}: {done}/{len(order)} images", file=sys.stderr, flush=True)
    finally:
        for writer in writers:
            writer.close()
    metadata = {
        "source": source.name,
        "count": written,
        "num_gray": gray.dropped_gray,
        "class_names": list(source.class_names),
        "max_side": max_side,
        "jpeg_quality": JPEG_QUALITY,
        "shards": shard_names,
        "shard_counts": shard_counts,
        "skipped": skips.to_dict(),
        "gray": gray.to_dict(),
        "summary": skips.summary(),
    }
    if progress:
        print(f"{out_dir}: reading the shards back", file=sys.stderr, flush=True)
    written_back = scan_folder(out_dir, metadata, SHARD_PATTERN, decode=True, progress=progress)
    if written_back.lost or written_back.problems:
        for name in shard_names:
            tf.io.gfile.remove(tf.io.gfile.join(out_dir, name))
        raise DamagedRecords(f"the shards written do not read back, so they were removed: {written_back.summary()}\n"
                             f"{written_back.table()}")
    with tf.io.gfile.GFile(tf.io.gfile.join(out_dir, METADATA_FILE), "w") as file:
        json.dump(metadata, file, indent=2)
    if report is not None:
        report.merge(skips)
    if progress:
        message = f"{out_dir}: wrote {written} images to {num_shards} shards; {skips.summary()}"
        print(message, file=sys.stderr, flush=True)
    return metadata


def _to_example(record, rgb, gray):
    encoded = io.BytesIO()
    # subsampling=0 keeps chroma at full resolution: the ab channels are the target.
    Image.fromarray(rgb).save(encoded, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    feature = {
        "image": _bytes_feature(encoded.getvalue()),
        "caption": _bytes_feature(record.caption.encode("utf-8")),
        "label": _int_feature(record.label),
        "name": _bytes_feature(record.name.encode("utf-8")),
        "gray": _int_feature(int(gray)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def read_metadata(path):
    with tf.io.gfile.GFile(tf.io.gfile.join(str(path), METADATA_FILE)) as file:
        return json.load(file)


def read_tfrecords(folder, drop_gray=False, *, shuffle=False, seed=0, report=None):
    """A dataset of (rgb uint8 (H, W, 3), caption string, label int32, name string), and the metadata.

    folder: a TfrecordFolder or a folder's path. Its damaged records are left out (a DamagedRecords error
    when more than its max_damaged are); the build's skip counts, the damaged records by shard and, with
    drop_gray, the gray images flagged at build time are merged into `report` and logged once.
    """
    folder, metadata, scan = _scanned(folder)
    check_damage(scan, folder.max_damaged)
    read_report = SkipReport.from_dict(metadata["skipped"])
    for shard in scan.damaged:
        read_report.skip_many(f"unreadable in {shard.name} ({shard.describe_damage()})", shard.lost)
    if drop_gray:
        read_report.merge(SkipReport.from_dict(metadata["gray"]))
    if report is not None:
        report.merge(read_report)
    if read_report.skipped or read_report.dropped_gray:
        logger.warning("%s: %s", folder.path, read_report.summary())

    segments = scan.segments()
    dataset = good_records(segments)
    if shuffle:
        dataset = dataset.shuffle(max(1, len(segments)), seed=seed)
    dataset = dataset.interleave(
        read_segment,
        cycle_length=max(1, min(len(segments), MAX_OPEN_SHARDS)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed)
    dataset = dataset.map(
        lambda serialized: tf.io.parse_single_example(serialized, _FEATURES),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if drop_gray:
        dataset = dataset.filter(lambda example: example["gray"] == 0)
    dataset = dataset.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, metadata


def count_records(folder, drop_gray=False):
    """The records one pass of read_tfrecords yields: the good ones, less the gray with drop_gray."""
    _, _, scan = _scanned(folder)
    return scan.records - (scan.gray if drop_gray else 0)


def read_captions(folder):
    """A dataset of the good records' captions (strings), read without decoding a single image."""
    folder, _, scan = _scanned(folder)
    check_damage(scan, folder.max_damaged)
    return good_records(scan.segments()).flat_map(read_segment).map(
        lambda serialized: tf.io.parse_single_example(serialized, {"caption": _FEATURES["caption"]})["caption"]
    )


def verify_tfrecords(path, progress=True):
    """Reads every record of every shard of the folder `path` as `chroma data verify` does: CRCs, content and
    a full decode of each image, counts against dataset.json. Returns the FolderScan."""
    return scan_folder(str(path), read_metadata(path), SHARD_PATTERN, decode=True, progress=progress)


def _decode(example):
    rgb = tf.io.decode_jpeg(gated(example["image"], MAX_PIXELS), channels=3)
    return rgb, example["caption"], tf.cast(example["label"], tf.int32), example["name"]
