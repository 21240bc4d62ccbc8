"""Images in, (L, ab) pairs out: robust decoding, image sources, tf.data pipelines, TFRecords."""

from .images import MAX_PIXELS, SkipReport, UnreadableImage, is_grayscale, load_rgb
from .pipeline import count_elements, make_dataset, preprocess
from .sources import (
    IMAGE_EXTENSIONS,
    SAMPLE_NAMES,
    ImageRecord,
    Source,
    coco,
    coco_test_split,
    required_coco,
    folder,
    open_source,
    samples,
    subset,
)
from .record_scan import DamagedRecords
from .tfrecords import (
    TfrecordFolder,
    is_tfrecord_dir,
    read_metadata,
    read_tfrecords,
    verify_tfrecords,
    write_tfrecords,
)

__all__ = [
    "DamagedRecords",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "SAMPLE_NAMES",
    "ImageRecord",
    "SkipReport",
    "Source",
    "TfrecordFolder",
    "UnreadableImage",
    "coco",
    "coco_test_split",
    "required_coco",
    "count_elements",
    "folder",
    "is_grayscale",
    "is_tfrecord_dir",
    "load_rgb",
    "make_dataset",
    "open_source",
    "preprocess",
    "read_metadata",
    "read_tfrecords",
    "samples",
    "subset",
    "verify_tfrecords",
    "write_tfrecords",
]
