"""The decoder gate (chroma.data.photo_header): formats told by their magic bytes, sizes read from the bytes the
decoders use, and photos that lie about their size refused before any pixel is decoded."""

import re
import struct

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma import data
from chroma.data.decode import decode_photo
from chroma.data.photo_header import GIF_STEPS, JPEG_SCANS, photo_header
from conftest import encode, gif_screen_smaller_than_its_frame, two_frame_jpeg

LIMIT = 10_000  # pixels: every photo below is far over it, or says it is not
PHOTO = skimage.data.astronaut()[:48, :64]


def gif_of_frames(count, side):
    """An animation of `count` frames, each side x side: each frame within the limit, not all of them."""
    frames = [Image.new("RGB", (side, side), (8 * index, 0, 0)) for index in range(count)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def gif_of_blocks(block_length, blocks):
    """A 10 x 10 GIF whose image data comes in `blocks` blocks of `block_length` bytes: the walk of its header
    passes full (255-byte) blocks many at a step, and takes a step for each smaller one."""
    return (b"GIF89a" + struct.pack("<HH", 10, 10) + bytes(3) + b"\x2c" + struct.pack("<HHHH", 0, 0, 10, 10)
            + b"\0\2" + (bytes([block_length]) + bytes(block_length)) * blocks + b"\0\x3b")


def bare_webp_bitstream(side, **options):
    """A WebP whose RIFF header is followed by the bitstream without its chunk header: libwebp decodes it, Pillow
    does not."""
    webp = bytearray(encode(Image.new("RGB", (side, side), (10, 200, 30)), "WEBP", **options))
    bare = webp[:12] + webp[20:]
    bare[4:8] = struct.pack("<I", len(bare) - 8)
    return bytes(bare)


@tf.function(input_signature=[tf.TensorSpec((), tf.string)], autograph=False)
def read_header(image_bytes):
    return photo_header(image_bytes)


@tf.function(input_signature=[tf.TensorSpec((), tf.string)], autograph=False)
def decoded_within_limit(image_bytes):
    return decode_photo(image_bytes, LIMIT)


def refusal(image_bytes):
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        decoded_within_limit(tf.constant(image_bytes))
    return refused.value.message


def peak_memory_growth_mb(work):
    """How far this process's resident memory rose above where it stood while `work` ran: the kernel's peak
    (VmHWM), reset first through /proc/self/clear_refs."""
    def status(field):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    before = status("VmRSS:")
    work()
    return (status("VmHWM:") - before) / 1024


def test_photos_that_lie_about_their_size_are_refused_before_decoding():
    """The bypasses found in issue 28, each of which decoding would turn into hundreds of MB."""
    lying = {
        "GIF whose screen says 1x1, its frame 10000x10000": (
            gif_screen_smaller_than_its_frame(10_000), "image of 10000x10000 pixels is over the limit of 10000"),
        "GIF of 30 frames of 100x100, each within the limit": (
            gif_of_frames(30, 100), "image of 100x100 pixels, 300000 in all its frames, is over the limit"),
        "WebP of 10000x10000 without its chunk header": (
            bare_webp_bitstream(10_000, lossless=True), "a WebP without a VP8, VP8L or VP8X chunk"),
        "JPEG of 24x16 with a second frame header of 3000x3000": (two_frame_jpeg(PHOTO[:16, :24]), "Invalid JPEG data"),
    }
    for name, (photo, _) in lying.items():
        assert len(photo) < 200_000, name
    messages = {}
    growth = peak_memory_growth_mb(lambda: messages.update({name: refusal(photo) for name, (photo, _) in lying.items()}))
    for name, (_, expected) in lying.items():
        assert expected in messages[name], (name, messages[name])
    assert growth < 100  # the GIF's frame alone would take 100 MB of raster and 300 MB of RGB


def test_formats_chroma_does_not_read_are_refused_by_name_on_every_path(tmp_path):
    tiff = encode(Image.fromarray(PHOTO), "TIFF")
    others = {
        "JPEG XL": b"\xff\x0a" + bytes(64),  # a codestream's signature: TensorFlow 2.21 would decode the rest
        "TIFF": tiff,
        "an unknown format": b"not a photo at all, but long enough to hold a header",
    }
    for name, photo in others.items():
        expected = f"not a photo chroma reads ({name}; it reads JPEG, PNG, GIF, BMP, WebP)"
        assert expected in refusal(photo), name
        with pytest.raises(data.UnreadableImage, match=re.escape(expected)):
            data.load_rgb(photo)
    (tmp_path / "photo.tif").write_bytes(tiff)
    with pytest.raises(data.UnreadableImage, match="TIFF"):
        data.load_rgb(tmp_path / "photo.tif")  # Pillow would decode it; the SavedModel would not


def test_a_webp_without_its_chunk_header_is_refused_as_pillow_refuses_it():
    for options in ({"lossless": True}, {"quality": 50}):
        bare = bare_webp_bitstream(3000, **options)
        assert "a WebP without a VP8, VP8L or VP8X chunk" in refusal(bare), options
        with pytest.raises(data.UnreadableImage):
            data.load_rgb(bare)


def test_a_gif_of_full_blocks_is_read_to_its_end_and_one_of_tiny_blocks_is_refused():
    full_blocks = read_header(gif_of_blocks(255, 2 * GIF_STEPS))  # 8 MB
    assert (int(full_blocks.height), int(full_blocks.width), full_blocks.refusal.numpy()) == (10, 10, b"")
    tiny_blocks = read_header(gif_of_blocks(1, 2 * GIF_STEPS))
    assert f"too small to read in {GIF_STEPS} steps" in tiny_blocks.refusal.numpy().decode()


def test_a_bmp_of_negative_width_is_refused_rather_than_counted_as_negative_pixels():
    bmp = bytearray(encode(Image.fromarray(PHOTO), "BMP"))
    bmp[18:22] = struct.pack("<i", -64)
    assert read_header(bytes(bmp)).refusal.numpy() == b"a BMP of negative width"


def test_a_progressive_jpeg_of_too_many_scans_is_refused():
    """Each scan is a pass over the whole image, whatever its size in bytes (issue 28, row 3: work one request
    could hold a turn with). A scan repeated is legal enough for libjpeg, which decodes it."""
    progressive = encode(Image.fromarray(PHOTO), "JPEG", progressive=True)
    header = read_header(progressive)
    assert (int(header.height), int(header.width), header.refusal.numpy()) == (48, 64, b"")
    last_scan = progressive.rindex(b"\xff\xda")
    repeated = progressive[:last_scan] + progressive[last_scan:-2] * JPEG_SCANS + b"\xff\xd9"
    assert tf.io.decode_jpeg(repeated).shape == (48, 64, 3)
    assert f"a JPEG of more than {JPEG_SCANS} scans" in read_header(repeated).refusal.numpy().decode()


def test_photos_within_the_limit_decode_as_pillow_decodes_them():
    photo = Image.fromarray(PHOTO)
    for image_format, options in {"GIF": {}, "WEBP": {"lossless": True}, "PNG": {}, "BMP": {}}.items():
        photo_bytes = encode(photo, image_format, **options)
        np.testing.assert_array_equal(decoded_within_limit(photo_bytes), data.load_rgb(photo_bytes),
                                      err_msg=image_format)
