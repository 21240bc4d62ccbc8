"""EXIF orientation in TensorFlow ops (chroma.data.decode): a served JPEG is turned upright as Pillow turns it."""

import io

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma import data
from chroma.data.decode import decode_photo, display_size, exif_orientation
from chroma.data.photo_header import photo_header

# Non-square, so that a quarter turn shows in the shape and a flip in the pixels.
PHOTO = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((40, 24)))
LARGE = 4096  # load_rgb's max_side: Pillow decodes at full size


@tf.function(input_signature=[tf.TensorSpec((), tf.string)], autograph=False)
def decoded(jpeg):
    """In a graph, as a SavedModel runs them: the pixels, the orientation, the stored and the displayed size.
    (decode.py has no Python control flow for autograph to convert: tracing without it takes half the time.)"""
    stored = photo_header(jpeg)
    stored_size = tf.stack([stored.height, stored.width])
    return decode_photo(jpeg), exif_orientation(jpeg), stored_size, tf.stack(display_size(jpeg))


def jpeg_with_orientation(orientation, byte_order="MM"):
    """PHOTO as JPEG bytes whose EXIF (TIFF data in `byte_order`, "II" little-endian or "MM" big-endian) has
    Orientation `orientation`."""
    exif = Image.Exif()
    exif.endian = "<" if byte_order == "II" else ">"
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(PHOTO).save(buffer, format="JPEG", quality=90, exif=exif)
    assert byte_order.encode() + (b"*\0" if byte_order == "II" else b"\0*") in buffer.getvalue()[:64]
    return buffer.getvalue()


@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_each_orientation_decodes_to_the_pixels_pillow_turns_upright(byte_order):
    """Pillow's ImageOps.exif_transpose (chroma.data.load_rgb) is the rule, pixel for pixel, at full size."""
    turned = []
    for orientation in range(1, 9):
        jpeg = jpeg_with_orientation(orientation, byte_order)
        pixels, read_orientation, stored_size, displayed_size = (value.numpy() for value in decoded(jpeg))
        np.testing.assert_array_equal(pixels, data.load_rgb(jpeg, max_side=LARGE), err_msg=orientation)
        assert read_orientation == orientation
        # The pixel limit reads the stored size; serving_default compares the displayed sizes of its photos.
        assert stored_size.tolist() == [24, 40] and displayed_size.tolist() == list(pixels.shape[:2])
        turned.append(pixels)
    assert [image.shape[:2] for image in turned] == [(24, 40)] * 4 + [(40, 24)] * 4
    assert len({image.tobytes() for image in turned}) == 8  # eight different turns and flips


def corrupted(jpeg, old, new):
    assert jpeg.count(old) == 1
    return jpeg.replace(old, new)


def test_jpegs_without_or_with_broken_exif_decode_as_stored():
    plain = io.BytesIO()
    Image.fromarray(PHOTO).save(plain, format="JPEG", quality=90)
    turned = jpeg_with_orientation(6)
    exif = turned.index(b"Exif\0\0")
    tiff = exif + 6
    entry = b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06"  # Orientation, SHORT, count 1, value 6 (big-endian)
    broken = {
        "no EXIF": plain.getvalue(),
        "not TIFF data": turned[:tiff] + b"XX" + turned[tiff + 2:],
        "IFD0 past the end": turned[:tiff + 4] + b"\xff\xff\xff\xf0" + turned[tiff + 8:],
        "orientation 9": corrupted(turned, entry, entry[:-1] + b"\x09"),
        "orientation as a LONG": corrupted(turned, entry, entry[:3] + b"\x04" + entry[4:]),
        "an APP1 segment of length 0": turned[:exif - 2] + b"\0\0" + turned[exif:],
    }
    stored = decoded(plain.getvalue())[0].numpy()
    for name, jpeg in broken.items():
        pixels, orientation, _, _ = decoded(jpeg)
        assert orientation == 1, name
        np.testing.assert_array_equal(pixels, stored, err_msg=name)
    for name in ("no EXIF", "orientation 9", "orientation as a LONG"):  # Pillow reads these as unturned too
        np.testing.assert_array_equal(data.load_rgb(broken[name], max_side=LARGE), stored, err_msg=name)


def test_other_formats_have_no_exif_orientation_read():
    for image_format in ("PNG", "GIF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(PHOTO).save(buffer, format=image_format)
        _, orientation, _, displayed_size = decoded(buffer.getvalue())
        assert orientation == 1 and displayed_size.numpy().tolist() == [24, 40], image_format
    assert exif_orientation(tf.constant(b"")) == 1
