"""Shared fixtures: small image folders (good and bad) and a fake COCO, all written to tmp dirs."""

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image


def colour_image(height=48, width=64, seed=0):
    """A smooth, clearly coloured uint8 RGB image (gradients plus a patch)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [127 + 120 * np.sin(x / width * 3 + y / height * 2 + p) for p in phase]
    return np.stack(channels, axis=-1).astype(np.uint8)


def gray_image(height=48, width=64):
    y, x = np.mgrid[0:height, 0:width]
    return ((x * 3 + y * 2) % 256).astype(np.uint8)


def encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def two_frame_jpeg(rgb):
    """uint8 RGB as a JPEG with a second frame header, declaring 3000x3000, after its own: readers disagree on
    which one counts (libjpeg reads the first and refuses the second)."""
    jpeg = encode(Image.fromarray(rgb), "JPEG")
    start = jpeg.index(b"\xff\xc0")
    end = start + 2 + int.from_bytes(jpeg[start + 2:start + 4], "big")
    second = bytearray(jpeg[start:end])
    second[5:9] = (3000).to_bytes(2, "big") * 2
    return jpeg[:end] + bytes(second) + jpeg[end:]


def gif_screen_smaller_than_its_frame(side):
    """A one-colour GIF whose frame is side x side and whose logical screen says 1 x 1 (a few KB): decoders make
    the image as large as its frame."""
    gif = bytearray(encode(Image.new("P", (side, side)), "GIF"))
    gif[6:10] = struct.pack("<HH", 1, 1)
    return bytes(gif)


def png_rgb48(rgb16):
    """A 16-bit-per-channel RGB PNG, which Pillow can read but not write."""
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def image_folder(tmp_path):
    """root/cats/{a.jpg, b.PNG}, root/dogs/{c.jpeg, gray.png}, root/loose.png, root/notes.txt.

    Every image is 48x64 and coloured except dogs/gray.png; labels cats=0, dogs=1, loose=-1.
    """
    root = tmp_path / "folder"
    for sub in ("cats", "dogs"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(colour_image(seed=1)).save(root / "cats" / "a.jpg", quality=95)
    Image.fromarray(colour_image(seed=2)).save(root / "cats" / "b.PNG", format="PNG")
    Image.fromarray(colour_image(seed=3)).save(root / "dogs" / "c.jpeg", quality=95)
    Image.fromarray(gray_image()).save(root / "dogs" / "gray.png")
    Image.fromarray(colour_image(seed=4)).save(root / "loose.png")
    (root / "notes.txt").write_text("not an image, and not an image extension")
    return root


class BadImageFolder(NamedTuple):
    root: object  # pathlib.Path
    converted: dict  # name -> True if the converted image is gray
    unusable: dict  # name -> the UnreadableImage reason expected


@pytest.fixture(scope="session")
def bad_image_folder(tmp_path_factory):
    """One file per awkward input a real dataset holds; see BadImageFolder."""
    root = tmp_path_factory.mktemp("bad_images")
    colour = Image.fromarray(colour_image())
    colour_jpeg = encode(colour, "JPEG", quality=90)
    files = {
        "colour.jpg": colour_jpeg,
        "cmyk.jpg": encode(colour.convert("CMYK"), "JPEG", quality=95),
        "gray16.png": encode(Image.fromarray((gray_image().astype(np.uint16) * 257)), "PNG"),
        "rgb48.png": png_rgb48(colour_image().astype(np.uint16) * 257),
        "rgba.png": encode(colour.convert("RGBA"), "PNG"),
        "palette.png": encode(colour.quantize(16), "PNG", transparency=0),
        "gray.png": encode(Image.fromarray(gray_image()), "PNG"),
        "bilevel.png": encode(Image.fromarray(gray_image() > 100), "PNG"),
        "animated.gif": encode(colour, "GIF", save_all=True, append_images=[colour.rotate(90)]),
        # 144 Mpixels, decoded at 1/8 scale thanks to JPEG draft mode.
        "huge.jpg": encode(Image.new("L", (12000, 12000), 128), "JPEG", quality=20),
        "corrupt.png": np.random.default_rng(0).bytes(2000),
        "truncated.jpg": colour_jpeg[: len(colour_jpeg) // 2],
        "tiny.png": encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"),
        # Over MAX_PIXELS: a PNG has no reduced-size decoding.
        "huge.png": encode(Image.new("1", (9000, 9000)), "PNG"),
        "text.jpg": b"this is a text file with an image extension\n",
        "empty.jpg": b"",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    converted = {
        "colour.jpg": False,
        "cmyk.jpg": False,
        "gray16.png": True,
        "rgb48.png": False,
        "rgba.png": False,
        "palette.png": False,
        "gray.png": True,
        "bilevel.png": True,
        "animated.gif": False,
        "huge.jpg": True,
    }
    unusable = {
        "corrupt.png": "not an image",
        "truncated.jpg": "corrupt",
        "tiny.png": "too small",
        "huge.png": "too large",
        "text.jpg": "not an image",
        "empty.jpg": "empty file",
    }
    return BadImageFolder(root, converted, unusable)


@pytest.fixture
def fake_coco(tmp_path):
    """root/train2017 with 10 PNGs and root/annotations with captions and instances.

    Image ids 1..10 (file 0000000000NN.png). Categories person (id 1), car (3),
    dog (18). Instances: image 1: 3 persons of area 100 and a dog of 250 ->
    person by total area (300); image 2: a car of 400, a dog of 500 -> dog;
    image 3: a tie car/dog of 100 each -> car (lower id); images 4-10: none.
    Captions: two per image; the lower annotation id says "first caption <id>".
    """
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = []
    for image_id in range(1, 11):
        file_name = f"{image_id:012d}.png"
        Image.fromarray(colour_image(32, 40, seed=image_id)).save(root / "train2017" / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": 32, "width": 40})
    captions = []
    for image_id in range(1, 11):
        # The higher id comes first in the file: order must not matter.
        captions.append({"id": 1000 + image_id, "image_id": image_id, "caption": f"second caption {image_id}"})
        captions.append({"id": 100 + image_id, "image_id": image_id, "caption": f" first caption {image_id}\n"})
    categories = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]
    image_category_area = [
        (1, 1, 100), (1, 1, 100), (1, 1, 100), (1, 18, 250),
        (2, 3, 400), (2, 18, 500),
        (3, 18, 100), (3, 3, 100),
    ]  # fmt: skip
    instances = [
        {"id": i, "image_id": image_id, "category_id": category, "area": area, "bbox": [0, 0, 1, 1], "iscrowd": 0}
        for i, (image_id, category, area) in enumerate(image_category_area, start=1)
    ]
    annotations = root / "annotations"
    (annotations / "captions_train2017.json").write_text(
        json.dumps({"images": images, "annotations": captions})
    )
    (annotations / "instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": instances, "categories": categories})
    )
    return root


@pytest.fixture
def mixed_bfloat16():
    """Keras's global mixed_bfloat16 policy for one test, float32 again afterwards."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def two_replicas():
    """What tests/two_replicas.py measures on two logical CPUs: one fresh process for every such check."""
    script = Path(__file__).parent / "two_replicas.py"
    process = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


# `--dist loadgroup` hands out the xdist groups first, those of most tests first, then the other tests in
# collection order: of those, the longest (the XLA compilations and lowerings) go first, since collected last
# they would leave one worker alone at the end.
LONGEST_FIRST = ("tests/test_xla.py::test_representative_steps", "tests/test_multiworker.py",
                 "tests/test_xla.py::test_every_recipes_steps_lower_to_xla")


def pytest_collection_modifyitems(items):
    for item in items:
        for mark in item.iter_markers("slow"):
            if len(mark.args) != 1 or not isinstance(mark.args[0], str) or not mark.args[0].strip() or mark.kwargs:
                raise pytest.UsageError(f"{item.nodeid}: a test moves to the slow tier with its reason, "
                                        f'@pytest.mark.slow("why, in one line"); got {mark}')
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))

