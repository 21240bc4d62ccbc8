"""TensorFlow Datasets as a source: the data spec tfds:NAME?split=SPLIT&data_dir=DIR.

A dataset TFDS has already prepared in data_dir (a local folder or gs://..., default TFDS's own,
~/tensorflow_datasets or $TFDS_DATA_DIR), such as coco/2017 or coco_captions/2017, is read through
make_dataset like every other source: each example's image; its first caption where the dataset has
captions (a "caption" text, or coco_captions' "captions" sequence); its label where it has one (a
"label" ClassLabel, or, as chroma's COCO reader does, the class of the largest of its "objects"); and its
name ("image/filename", else TFDS's id of the example). SPLIT may slice, as TFDS splits do ("train[:8000]").
chroma never downloads: a dataset not prepared in data_dir is an error that names the folder, and
tensorflow_datasets is imported only when a tfds: spec is read.
"""

import os
from typing import NamedTuple

import tensorflow as tf

from .decode import decode_photo
from .images import GRAY_FRACTION, GRAY_TOLERANCE

SPEC_PREFIX = "tfds:"
SHUFFLE_BUFFER = 1024  # encoded examples, before decoding, as chroma's TFRecords shuffle


class TfdsSplit(NamedTuple):
    """A split of a prepared TFDS dataset: what make_dataset reads for a tfds: spec."""

    dataset: str  # "coco/2017": TFDS's name, with its config or version if given
    split: str = "train"
    data_dir: str | None = None  # None: TFDS's default folder

    @property
    def name(self):
        return f"{SPEC_PREFIX}{self.dataset}[{self.split}]"


def is_tfds_spec(location):
    return os.fspath(location).startswith(SPEC_PREFIX)


def open_tfds(location, split="train", data_dir=None):
    """'tfds:coco/2017' -> its TfdsSplit, once TFDS finds the dataset prepared in data_dir with that split."""
    source = TfdsSplit(location.removeprefix(SPEC_PREFIX), split, data_dir)
    info = builder(source).info
    try:
        info.splits[split]
    except (KeyError, ValueError) as error:
        raise ValueError(f"{source.name}: no split {split!r}; it has {sorted(info.splits)}") from error
    return source


def builder(source):
    """The TFDS builder of a prepared dataset; a clear error, and no download, when it is not there."""
    import tensorflow_datasets as tfds

    where = source.data_dir or "TFDS's default folder"
    missing = (f"{SPEC_PREFIX}{source.dataset} is not prepared in {where}: chroma never downloads; prepare it "
               f"with TFDS on a machine that can (tfds build {source.dataset} --data_dir DIR) and give data_dir=DIR "
               "(a folder or gs://...)")
    try:
        dataset_builder = tfds.builder(source.dataset, data_dir=source.data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(missing) from error
    if not tf.io.gfile.exists(os.path.join(dataset_builder.data_dir, "dataset_info.json")):
        raise ValueError(missing)
    return dataset_builder


def count_examples(source):
    return builder(source).info.splits[source.split].num_examples


def read_tfds(source, drop_gray=False, *, shuffle=False, seed=0):
    """A dataset of (rgb uint8 (H, W, 3), caption string, label int32, name string), as read_tfrecords gives.

    Images are left encoded until after the shuffle (files, then a buffer of
    examples), then decoded as a served photo is (chroma.data.decode); with
    drop_gray, the images with (almost) no colour are left out, by the test
    `is_grayscale` applies to folders.
    """
    import tensorflow_datasets as tfds

    dataset_builder = builder(source)
    features = dataset_builder.info.features
    examples = dataset_builder.as_dataset(
        split=source.split, shuffle_files=shuffle, decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True),
    )
    if shuffle:
        examples = examples.shuffle(SHUFFLE_BUFFER, seed=seed)

    def record(example):
        rgb = decode_photo(example["image"])
        return rgb, caption_of(example, features), label_of(example, features), name_of(example)

    records = examples.map(record, num_parallel_calls=tf.data.AUTOTUNE)
    if drop_gray:
        records = records.filter(lambda rgb, caption, label, name: tf.logical_not(is_grayscale_tf(rgb)))
    return records


def read_tfds_captions(source):
    """A dataset of each example's caption (strings), read without decoding an image."""
    import tensorflow_datasets as tfds

    dataset_builder = builder(source)
    features = dataset_builder.info.features
    examples = dataset_builder.as_dataset(split=source.split, decoders={"image": tfds.decode.SkipDecoding()})
    return examples.map(lambda example: caption_of(example, features))


def caption_of(example, features):
    if "caption" in features:
        return example["caption"]
    if "captions" in features:
        texts = example["captions"]["text"]
        return tf.cond(tf.size(texts) > 0, lambda: texts[0], lambda: tf.constant(""))
    return tf.constant("")


def label_of(example, features):
    if "label" in features:
        return tf.cast(example["label"], tf.int32)
    objects = features["objects"].feature if "objects" in features else {}
    if "label" in objects and "area" in objects:
        labels, areas = example["objects"]["label"], example["objects"]["area"]
        return tf.cond(tf.size(labels) > 0, lambda: tf.cast(labels[tf.argmax(areas)], tf.int32),
                       lambda: tf.constant(-1, tf.int32))
    return tf.constant(-1, tf.int32)


def name_of(example):
    return example["image/filename"] if "image/filename" in example else example["tfds_id"]


def is_grayscale_tf(rgb):
    """chroma.data.is_grayscale as TensorFlow ops: the share of pixels whose channels differ by more than the
    tolerance is at most the fraction."""
    rgb = tf.cast(rgb, tf.int16)
    spread = tf.reduce_max(rgb, axis=-1) - tf.reduce_min(rgb, axis=-1)
    return tf.reduce_mean(tf.cast(spread > GRAY_TOLERANCE, tf.float32)) <= GRAY_FRACTION
