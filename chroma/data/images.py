"""Decoding any image file into clean 8-bit RGB, and keeping count of the ones that fail.

Decoding happens in Python with Pillow rather than with `tf.io.decode_image`,
because real folders (and COCO) hold CMYK JPEGs, 16-bit PNGs, transparent
images, truncated downloads and files that are not images at all. Each of those
is either converted or refused with `UnreadableImage`; a bad file must never
stop a run.
"""

import collections
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chroma.limits import MAX_PIXELS

from .photo_header import ACCEPTED_FORMATS, HEADER_BYTES, image_format, not_accepted

# is_grayscale: a pixel is coloured when its channels spread by more than
# GRAY_TOLERANCE levels. Re-encoded gray JPEGs stay well below (their chroma is
# quantised away; a faint tint of +-6 levels reaches a spread of 11), while any
# visible colour exceeds it.
GRAY_TOLERANCE = 12
# ...and an image is gray when at most GRAY_FRACTION of its pixels are
# coloured: a small coloured object (1% of a gray photo) still makes it a
# colour image, while a few ringing edge pixels do not.
GRAY_FRACTION = 0.005

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class UnreadableImage(Exception):
    """An input that cannot become a training image; `reason` is a short category."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def load_rgb(source, max_side=1024, min_side=8):
    """Decode `source` into a uint8 (H, W, 3) RGB array, longer side <= max_side.

    `source` is a file path, encoded bytes, or an array already in memory
    (uint8 gray/RGB/RGBA, or uint16), which gets the same conversion and size
    checks. Raises UnreadableImage for anything that cannot be used.
    """
    if isinstance(source, np.ndarray):
        try:
            return _clean(Image.fromarray(source), max_side, min_side)
        except TypeError as error:
            raise UnreadableImage("not an image", str(error)) from error
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise UnreadableImage("empty file")
        file = io.BytesIO(source)
        header = bytes(source[:HEADER_BYTES])
    else:
        try:
            if os.path.getsize(source) == 0:
                raise UnreadableImage("empty file")
            with open(source, "rb") as opened:
                header = opened.read(HEADER_BYTES)
        except OSError as error:
            raise UnreadableImage("missing file", str(error)) from error
        file = source
    # The formats the SavedModel's signatures decode too (chroma.data.photo_header), told the same way.
    header_format = image_format(header)
    if header_format not in ACCEPTED_FORMATS:
        raise UnreadableImage("not an image", not_accepted(header_format))
    try:
        # Our own MAX_PIXELS bound applies below; Pillow's warning would be noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
    except Image.DecompressionBombError as error:
        raise UnreadableImage("too large", str(error)) from error
    except UnidentifiedImageError as error:
        raise UnreadableImage("not an image", str(error)) from error
    except Exception as error:  # Pillow's plugins raise many kinds
        raise UnreadableImage("corrupt", f"{type(error).__name__}: {error}") from error
    with image:
        if image.format == "JPEG":
            # Decode straight to 1/2, 1/4 or 1/8 size, staying >= max_side.
            image.draft(None, (max_side, max_side))
        return _clean(image, max_side, min_side)


def _clean(image, max_side, min_side):
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UnreadableImage("too large", f"{width}x{height} pixels")
    try:
        image_format = image.format  # exif_transpose returns a copy without it
        image = ImageOps.exif_transpose(image)  # also decodes the pixels
        image = _to_rgb(image, image_format)
        if max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    except Exception as error:  # truncated data, broken EXIF, unknown modes, ...
        raise UnreadableImage("corrupt", f"{type(error).__name__}: {error}") from error
    if min(image.size) < min_side:
        raise UnreadableImage("too small", "{}x{} pixels".format(*image.size))
    if image.width * image.height > MAX_PIXELS:  # the decoded size, checked again: the header's may have lied
        raise UnreadableImage("too large", "{}x{} pixels".format(*image.size))
    return np.asarray(image, dtype=np.uint8)


def _to_rgb(image, image_format):
    """Any Pillow mode -> 8-bit RGB: alpha on white (a GIF's on black), 16-bit scaled (not clipped)."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's convert() clips 16-bit values at 255; scale 65535 -> 255 instead.
        # (48-bit RGB PNGs already arrive as "RGB": Pillow keeps their high byte.)
        values = np.clip(np.asarray(image, dtype=np.float32), 0, 65535)
        gray = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Transparent regions would otherwise keep arbitrary (often black) colour. A GIF's go black: serving
        # decodes with TensorFlow (chroma.data.decode.decode_photo), whose GIF decoder paints them black and reports
        # no alpha, and the same file must give the same pixels there.
        rgba = image.convert("RGBA")
        background = (0, 0, 0, 255) if image_format == "GIF" else (255, 255, 255, 255)
        return Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def is_grayscale(rgb, tolerance=GRAY_TOLERANCE, fraction=GRAY_FRACTION):
    """True for an image with (almost) no colour, like the 3% of COCO that
    agosti et al. (section IV-B) drop: nothing to learn colour from.

    See GRAY_TOLERANCE and GRAY_FRACTION for why the defaults are what they are.
    """
    rgb = np.asarray(rgb)
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return bool(np.mean(spread > tolerance) <= fraction)


class SkipReport:
    """Counts what a pass over a dataset could not use, with example names.

    `seen` counts every record looked at, `skipped` the unreadable ones (by
    reason), `dropped_gray` the already-gray images left out on purpose.
    """

    _GRAY = "already gray"

    def __init__(self, keep=5):
        self.keep = keep
        self.seen = 0
        self._counts = collections.Counter()
        self._examples = collections.defaultdict(list)

    @property
    def skipped(self):
        return sum(n for reason, n in self._counts.items() if reason != self._GRAY)

    @property
    def dropped_gray(self):
        return self._counts[self._GRAY]

    def skip(self, name, reason):
        self._add(reason, 1, [name])

    def skip_many(self, reason, count):
        """Counts `count` records skipped for one reason that names no record, e.g. a damaged shard's."""
        self._add(reason, count, [])

    def drop_gray(self, name):
        self._add(self._GRAY, 1, [name])

    def merge(self, other):
        self.seen += other.seen
        for reason, count in other._counts.items():
            self._add(reason, count, other._examples[reason])

    def _add(self, reason, count, names):
        self._counts[reason] += count
        examples = self._examples[reason]
        examples.extend(names[: self.keep - len(examples)])

    def summary(self):
        if not self._counts:
            return f"used all {self.seen} images"
        parts = []
        if self.skipped:
            reasons = "; ".join(
                f"{count} {reason}" + (f": {self._names(reason)}" if self._examples[reason] else "")
                for reason, count in sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
                if reason != self._GRAY
            )
            parts.append(f"skipped {self.skipped} of {self.seen} images ({reasons})")
        if self.dropped_gray:
            parts.append(f"dropped {self.dropped_gray} already-gray images ({self._names(self._GRAY)})")
        return "; ".join(parts)

    def _names(self, reason):
        names = ", ".join(self._examples[reason])
        return names + ", ..." if self._counts[reason] > len(self._examples[reason]) else names

    def to_dict(self):
        """JSON-ready form, e.g. for a TFRecord directory's dataset.json."""
        return {"seen": self.seen, "counts": dict(self._counts), "examples": dict(self._examples)}

    @classmethod
    def from_dict(cls, data, keep=5):
        report = cls(keep)
        report.seen = data["seen"]
        for reason, count in data["counts"].items():
            report._add(reason, count, data["examples"].get(reason, []))
        return report
