"""Data specs: the one-string names of datasets that commands and recipes use.

A spec is "samples", an image folder, a TFRecord folder from `chroma data
build`, or "coco:ROOT", each optionally followed by a query
"?split=train2017&take=N&skip=M&seed=S" that picks a seeded random subset
(see `chroma.data.sources.subset`).
"""

from urllib.parse import parse_qsl

from .images import SkipReport
from .pipeline import make_dataset
from .sources import open_source
from .tfrecords import is_tfrecord_dir

def parse_data_spec(spec):
    """'coco:/x?take=8000&seed=1' -> ('coco:/x', {'take': 8000, 'seed': 1})."""
    location, _, query = spec.partition("?")
    options = {}
    for key, value in parse_qsl(query, strict_parsing=bool(query)):
        if key == "split":
            options["coco_split"] = value
        elif key in ("take", "skip", "seed"):
            options[key] = int(value)
        else:
            raise ValueError(f"unknown option {key!r} in data spec {spec!r} (use split, take, skip, seed)")
    return location, options


def resolve(spec):
    """A data spec -> what `make_dataset` reads: a Source, or a TFRecord directory's path."""
    location, options = parse_data_spec(spec)
    if is_tfrecord_dir(location):
        if options:
            raise ValueError(f"a TFRecord folder takes no query options: {spec!r}")
        return location
    return open_source(location, **options)


def dataset_from_spec(spec, image_size, batch_size, report=None, **pipeline_options):
    """A batched dataset of dicts (L, ab, caption, label) from a data spec."""
    report = SkipReport() if report is None else report
    return make_dataset(resolve(spec), image_size, batch_size=batch_size, report=report, **pipeline_options)
