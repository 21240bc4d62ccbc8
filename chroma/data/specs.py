"""Data specs: the one-string names of datasets that commands and recipes use.

A spec is "samples", an image folder, a TFRecord folder from `chroma data
build`, or "coco:ROOT", each optionally followed by a query
"?split=train2017&take=N&skip=M&seed=S" that picks a seeded random subset
(see `chroma.data.sources.subset`); a TFRecord folder's query is
"?max_damaged=F", the fraction of its records a run may find damaged and go
on without (chroma.data.record_scan); or "tfds:NAME?split=SPLIT&data_dir=DIR", a
dataset TensorFlow Datasets has prepared (see `chroma.data.tfds_source`).
"""

import os
from urllib.parse import parse_qsl

from .images import SkipReport
from .pipeline import make_dataset
from .sources import open_source
from .tfds_source import TfdsSplit, is_tfds_spec, open_tfds, read_tfds_captions
from .tfrecords import TfrecordFolder, is_tfrecord_dir, read_captions

SOURCE_OPTIONS = ("split", "take", "skip", "seed")
TFDS_OPTIONS = ("split", "data_dir")
TFRECORD_OPTIONS = ("max_damaged",)


def parse_data_spec(spec):
    """'coco:/x?take=8000&seed=1' -> ('coco:/x', {'take': 8000, 'seed': 1}); a split is 'coco_split', but a
    tfds: spec's 'split' (and 'data_dir'); a TFRecord folder's only option is max_damaged."""
    location, _, query = spec.partition("?")
    if is_tfds_spec(location):
        allowed = TFDS_OPTIONS
    else:
        allowed = TFRECORD_OPTIONS if query and is_tfrecord_dir(location) else SOURCE_OPTIONS
    options = {}
    for key, value in parse_qsl(query, strict_parsing=bool(query)):
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} in data spec {spec!r} (use {', '.join(allowed)})")
        if key == "split" and not is_tfds_spec(location):
            options["coco_split"] = value
        else:
            options[key] = int(value) if key in ("take", "skip", "seed") else value
    if "max_damaged" in options:
        options["max_damaged"] = _fraction(options["max_damaged"], spec)
    return location, options


def _fraction(text, spec):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"max_damaged in {spec!r} is a fraction of the records, from 0 to 1, got {text!r}")
    return value


def resolve(spec):
    """A data spec -> what `make_dataset` reads: a Source, a TfrecordFolder, or a TfdsSplit."""
    location, options = parse_data_spec(spec)
    if is_tfds_spec(location):
        return open_tfds(location, **options)
    if is_tfrecord_dir(location):
        return TfrecordFolder(location, **options)
    return open_source(location, **options)


def captions_of(source):
    """What build_vocabulary reads from a resolved spec (see resolve): a Source as it is (its records' captions),
    or for TFRecords and TFDS a dataset of the captions, read without decoding an image."""
    if isinstance(source, TfdsSplit):
        return read_tfds_captions(source)
    if isinstance(source, (str, os.PathLike, TfrecordFolder)):
        return read_captions(source)
    return source


def dataset_from_spec(spec, image_size, batch_size, report=None, **pipeline_options):
    """A batched dataset of dicts (L, ab, caption, label) from a data spec."""
    report = SkipReport() if report is None else report
    return make_dataset(resolve(spec), image_size, batch_size=batch_size, report=report, **pipeline_options)
