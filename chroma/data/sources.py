"""Where images come from: scikit-image's bundled photos, a folder, or COCO 2017.

A Source only lists records (a path or an in-memory image, a caption, a class
label). Nothing is decoded here: the pipeline and the TFRecord writer decode
each record with `ImageRecord.load` and skip the ones that fail.
"""

import contextlib
import functools
import io
import os
import pathlib
from typing import NamedTuple

import numpy as np
from skimage import data as skimage_data

from .images import load_rgb
from .tfrecords import is_tfrecord_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageRecord(NamedTuple):
    name: str  # shown in skip reports: a path relative to the source's root
    path: str | None = None
    image: np.ndarray | None = None  # uint8 RGB, for samples held in memory
    caption: str = ""
    label: int = -1  # index into Source.class_names; -1 when unknown

    def load(self, max_side=1024):
        """Clean uint8 RGB pixels; raises UnreadableImage."""
        return load_rgb(self.path if self.image is None else self.image, max_side=max_side)


class Source(NamedTuple):
    name: str
    records: list[ImageRecord]
    class_names: list[str]


# The colour photos bundled with scikit-image, so a demo runs with no download.
# Captions are hand-written in the style of COCO's reference captions.
_SAMPLES = {
    "astronaut": (
        skimage_data.astronaut,
        "an astronaut in an orange spacesuit smiling next to a helmet and a flag",
    ),
    "chelsea": (skimage_data.chelsea, "a close up of a tabby cat with green eyes"),
    "coffee": (
        skimage_data.coffee,
        "a cup of coffee on a red saucer with a spoon on a wooden table",
    ),
    "hubble_deep_field": (
        skimage_data.hubble_deep_field,
        "a black night sky full of small colorful galaxies",
    ),
    "immunohistochemistry": (
        skimage_data.immunohistochemistry,
        "a microscope view of tissue stained brown and blue",
    ),
    "motorcycle_left": (
        lambda: skimage_data.stereo_motorcycle()[0],
        "a red motorcycle parked in a garage in front of shelves of boxes",
    ),
    "retina": (
        skimage_data.retina,
        "a photo of an orange retina with red blood vessels",
    ),
    "rocket": (
        skimage_data.rocket,
        "a white rocket on a launch pad between towers at dusk",
    ),
}
SAMPLE_NAMES = tuple(_SAMPLES)


def samples(names=None):
    """The bundled colour photos (all eight unless `names` picks some)."""
    names = SAMPLE_NAMES if names is None else tuple(names)
    unknown = sorted(set(names) - set(_SAMPLES))
    if unknown:
        raise ValueError(f"unknown sample image(s) {unknown}; choose from {list(SAMPLE_NAMES)}")
    records = [ImageRecord(name, image=_sample_pixels(name), caption=_SAMPLES[name][1]) for name in names]
    return Source("samples", records, [])


@functools.cache
def _sample_pixels(name):
    """A bundled photo's pixels, read from scikit-image's files once per process (a run asks for them
    several times); read-only, since every Source of samples shares them."""
    pixels = _SAMPLES[name][0]()
    pixels.setflags(write=False)
    return pixels


def folder(root):
    """Every image file under `root`, recursively, in sorted order.

    First-level subfolders are the classes (sorted names, so label i is
    class_names[i]); images directly in `root` get label -1. Every subfolder
    is a class even if it holds no images, so train and test folders with the
    same subfolders agree on labels. Hidden files and folders (".DS_Store",
    "._x.jpg", ".ipynb_checkpoints") are ignored.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    label_of = {name: index for index, name in enumerate(class_names)}
    relative_paths = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
    if not relative_paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    records = [
        ImageRecord(
            name,
            path=str(root / name),
            label=label_of[name.split("/")[0]] if "/" in name else -1,
        )
        for name in relative_paths
    ]
    return Source(str(root), records, class_names)


def coco(root, split="train2017", take=None, skip=0, seed=0, annotations_dir=None):
    """COCO 2017 images with one caption and one class label each.

    Layout: root/<split>/*.jpg and annotations_dir (default root/annotations)
    holding captions_<split>.json and/or instances_<split>.json; without the
    first captions are "", without the second labels are -1. A split with
    neither, as test2017, is read from image_info_<split>.json, its list of
    images: colorization needs no annotations.

    caption: the reference caption with the lowest annotation id (one per
    image, as villarenteria et al. use). label: the category covering the most
    area over all its instances, as an index 0..79 into class_names (which are
    in category-id order); -1 for images without instances.

    take/skip/seed pick a seeded random subset (see `subset`): the papers' 8k
    train / 2k test images are take=8000 and take=2000, skip=8000.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"COCO root {root} does not exist")
    image_dir = root / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"COCO split folder {image_dir} does not exist")
    annotations_dir = pathlib.Path(annotations_dir) if annotations_dir else root / "annotations"
    captions = _load_coco_index(annotations_dir / f"captions_{split}.json")
    instances = _load_coco_index(annotations_dir / f"instances_{split}.json")
    image_info = _load_coco_index(annotations_dir / f"image_info_{split}.json")
    if captions is None and instances is None and image_info is None:
        raise FileNotFoundError(
            f"no COCO annotations for {split} in {annotations_dir}: "
            f"expected captions_{split}.json and/or instances_{split}.json, or image_info_{split}.json"
        )
    images = {}
    for index in (image_info, instances, captions):
        if index is not None:
            images.update(index.imgs)
    category_ids = sorted(instances.cats) if instances is not None else []
    label_of = {category_id: label for label, category_id in enumerate(category_ids)}
    records = [
        ImageRecord(
            images[image_id]["file_name"],
            path=str(image_dir / images[image_id]["file_name"]),
            caption=_first_caption(captions, image_id),
            label=_dominant_label(instances, image_id, label_of),
        )
        for image_id in sorted(images)
    ]
    class_names = [instances.cats[category_id]["name"] for category_id in category_ids]
    return subset(Source(f"coco {split}", records, class_names), take, skip, seed)


def required_coco(root):
    """`root`, a COCO root a paper-scale recipe needs (its paper_data), or the error that asks for one."""
    if not root:
        raise ValueError("SCALE=paper needs COCO=/path/to/coco (train2017/, val2017/, annotations/)")
    return root


def coco_test_split(root):
    """"test2017" where COCO's test images and their list are under `root`, else "val2017".

    Papers nampouri and agosti score on COCO's test split, whose images are
    public though unannotated (colorization needs no annotations); val2017,
    their stand-in, is what most COCO copies hold.
    """
    root = pathlib.Path(root)
    present = (root / "test2017").is_dir() and (root / "annotations" / "image_info_test2017.json").is_file()
    return "test2017" if present else "val2017"


def _load_coco_index(path):
    if not path.is_file():
        return None
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return COCO(str(path))


def _first_caption(captions, image_id):
    annotations = captions.imgToAnns[image_id] if captions is not None else []
    if not annotations:
        return ""
    return min(annotations, key=lambda annotation: annotation["id"])["caption"].strip()


def _dominant_label(instances, image_id, label_of):
    area_by_category = {}
    for annotation in instances.imgToAnns[image_id] if instances is not None else []:
        category_id = annotation["category_id"]
        area_by_category[category_id] = area_by_category.get(category_id, 0.0) + annotation["area"]
    if not area_by_category:
        return -1
    # max() keeps the first of equal areas: ties go to the lower category id.
    return label_of[max(sorted(area_by_category), key=area_by_category.get)]


def subset(source, take=None, skip=0, seed=0):
    """Records [skip : skip + take] of a seeded permutation of `source`'s records.

    The same seed gives the same permutation, so take=N and (take=M, skip=N)
    are disjoint: a train and a test split of one source. With neither take
    nor skip, the source comes back as it is.
    """
    if take is None and skip == 0:
        return source
    available = len(source.records)
    end = available if take is None else skip + take
    if skip < 0 or end > available or end < skip:
        raise ValueError(
            f"cannot take {take} images after skipping {skip}: {source.name} has {available}"
        )
    order = np.random.default_rng(seed).permutation(available)[skip:end]
    return source._replace(records=[source.records[i] for i in order])


def open_source(spec, *, coco_split="train2017", take=None, skip=0, seed=0):
    """The Source a command line names: "samples", "coco:ROOT" or an image folder.

    take/skip/seed pick a seeded subset of any of them (see `subset`).
    A TFRecord directory is not a Source: pass it to `make_dataset` directly.
    """
    spec = os.fspath(spec)
    if spec == "samples":
        return subset(samples(), take, skip, seed)
    if spec.startswith("coco:"):
        return coco(spec.removeprefix("coco:"), coco_split, take, skip, seed)
    if is_tfrecord_dir(spec):
        raise ValueError(f"{spec} holds TFRecords: pass it to make_dataset, not open_source")
    if spec.startswith("tfds:"):
        raise ValueError(f"{spec} is a TensorFlow Datasets dataset, already stored in shards: read it as it is "
                         "(chroma.data.specs.resolve gives what make_dataset reads)")
    return subset(folder(spec), take, skip, seed)
