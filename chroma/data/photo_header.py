"""The one gate in front of every photo decoder: which formats chroma decodes, and how many pixels a photo's bytes
will decode to, read from the bytes the decoder itself reads, before any decoding.

A few KB of PNG, GIF or WebP can describe gigabytes of pixels (a decompression bomb), so the size must come from
the same fields the decoder trusts: a JPEG's frame header, a PNG's IHDR, every frame descriptor of a GIF (its
logical screen says nothing the decoder keeps to), a BMP's info header, and each way libwebp reads a WebP. Formats
are told by their magic bytes; only JPEG, PNG, GIF, BMP and WebP pass, and the others a photo might arrive in are
refused by name (TensorFlow 2.21's decode_image would decode a JPEG XL file, which nothing here reads the size of).

`photo_header` and `gated` are TensorFlow ops only: the exported SavedModel's signatures run them, served by
processes with no chroma inside (TensorFlow Serving). `image_format` reads the same table in Python for Pillow's
path (chroma.data.load_rgb).
"""

from typing import NamedTuple

import tensorflow as tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
# Each format's signatures, each a tuple of (offset, bytes) that must all match. The refused ones are here to be
# named in the refusal.
SIGNATURES = (
    ("JPEG", ((0, b"\xff\xd8\xff"),)),
    ("PNG", ((0, PNG_SIGNATURE),)),
    ("GIF", ((0, b"GIF87a"),)),
    ("GIF", ((0, b"GIF89a"),)),
    ("BMP", ((0, b"BM"),)),
    ("WebP", ((0, b"RIFF"), (8, b"WEBP"))),
    ("JPEG XL", ((0, b"\xff\x0a"),)),
    ("JPEG XL", ((0, b"\0\0\0\x0cJXL \r\n\x87\n"),)),
    ("JPEG 2000", ((0, b"\0\0\0\x0cjP  \r\n\x87\n"),)),
    ("JPEG 2000", ((0, b"\xff\x4f\xff\x51"),)),
    ("TIFF", ((0, b"II*\0"),)),
    ("TIFF", ((0, b"MM\0*"),)),
    ("HEIF or AVIF", ((4, b"ftyp"),)),
    ("ICO", ((0, b"\0\0\1\0"),)),
    ("Photoshop", ((0, b"8BPS"),)),
    ("QOI", ((0, b"qoif"),)),
)
UNKNOWN_FORMAT = "an unknown format"
HEADER_BYTES = 32  # every field read below, for every format but GIF and JPEG, lies in the first 32 bytes
# A GIF's blocks are walked one step at a time; encoders write full 255-byte data blocks, which the walk passes
# GIF_LOOKAHEAD at a step, so a real GIF takes a few steps a frame. A file of tiny blocks would take one step per
# two bytes (16 M for 32 MB): past GIF_STEPS (half a second) it is refused.
GIF_STEPS = 1 << 14
GIF_LOOKAHEAD = 128
GIF_FULL_BLOCK = 255
GIF_IMAGE, GIF_EXTENSION = 0x2C, 0x21  # the bytes that open a frame's descriptor and an extension
# A progressive JPEG's scans each cost a pass over the image, however few their bytes: 33-byte scans of a 16 MP
# image took 12 ms each here, so 64 MiB of them would hold a prediction for hours (the denial of service of
# cure53's libjpeg-turbo audit, which NVIDIA's nvImageCodec bounds at 256 scans). libjpeg and Pillow write 10.
JPEG_SCANS = 100
JPEG_START_OF_SCAN = b"\xff\xda"


def not_accepted(format_name):
    """The refusal of a photo of a format not in ACCEPTED_FORMATS (format_name a str or a string tensor)."""
    return "not a photo chroma reads (" + format_name + f"; it reads {', '.join(ACCEPTED_FORMATS)})"


def image_format(image_bytes):
    """The name of the format of `image_bytes` (bytes, at least their first HEADER_BYTES) by its magic bytes:
    one of SIGNATURES' names, or UNKNOWN_FORMAT."""
    for name, parts in SIGNATURES:
        if all(image_bytes[offset:offset + len(magic)] == magic for offset, magic in parts):
            return name
    return UNKNOWN_FORMAT


class PhotoHeader(NamedTuple):
    """What a photo's bytes say of it, as tensors: `format` (a name of SIGNATURES or UNKNOWN_FORMAT); the
    `height` and `width` of the image the decoder gives; `pixels`, int64, what decoding it holds in memory, in
    pixels (a GIF's every frame); `refusal`, empty or why the bytes will not be decoded."""

    format: tf.Tensor
    height: tf.Tensor
    width: tf.Tensor
    pixels: tf.Tensor
    refusal: tf.Tensor


def photo_header(image_bytes):
    """The PhotoHeader of a scalar string of photo bytes, read without decoding them."""
    header = tf.strings.substr(tf.strings.substr(image_bytes, 0, HEADER_BYTES) + b"\0" * HEADER_BYTES, 0,
                               HEADER_BYTES)
    header_bytes = tf.cast(tf.reshape(tf.io.decode_raw(header, tf.uint8), (HEADER_BYTES,)), tf.int64)

    def matches(parts):
        return tf.reduce_all([tf.strings.substr(header, offset, len(magic)) == magic for offset, magic in parts])

    format_name = tf.constant(UNKNOWN_FORMAT)
    for name, parts in reversed(SIGNATURES):  # the first signature that matches names it
        format_name = tf.where(matches(parts), name, format_name)

    def little_endian(offset, length):
        return sum(header_bytes[offset + index] * 256**index for index in range(length))

    def big_endian(offset, length):
        return sum(header_bytes[offset + length - 1 - index] * 256**index for index in range(length))

    def signed(value, bits):
        return tf.where(value >= 2 ** (bits - 1), value - 2**bits, value)

    def still(height, width):
        return height, width, height * width, tf.constant("")

    def jpeg():
        # The first frame header (SOF), as the decoder reads it; libjpeg refuses a second one. A scan (SOS) of a
        # few bytes costs the decoder a pass over the whole image: their count is bounded (an over-count, as a
        # thumbnail's scans are in it too).
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        scans = tf.size(tf.strings.split(image_bytes[None], sep=JPEG_START_OF_SCAN).flat_values) - 1
        height, width, pixels, _ = still(shape[0], shape[1])
        return height, width, pixels, tf.where(scans > JPEG_SCANS, f"a JPEG of more than {JPEG_SCANS} scans, "
                                               "each a pass over the image (encoders write 1 to a few dozen)", "")

    def bmp():  # a negative height means rows stored top-down; a negative width means nothing
        width = signed(little_endian(18, 4), 32)
        return tf.cond(width >= 0, lambda: still(tf.abs(signed(little_endian(22, 4), 32)), width),
                       lambda: refused("a BMP of negative width"))

    def webp():
        # A lossy (VP8) or lossless (VP8L) chunk, or the canvas of an extended one (VP8X: libwebp makes a still
        # image fill it and an animation's frames fit in it). libwebp would also take the bytes after the RIFF
        # header for a bare bitstream, whatever their tag; Pillow, which decodes training's images, does not.
        tag = tf.strings.substr(header, 12, 4)
        lossless_bits = little_endian(21, 4)
        return tf.case([
            (tag == b"VP8 ", lambda: still(little_endian(28, 2) % 2**14, little_endian(26, 2) % 2**14)),
            (tag == b"VP8L", lambda: still((lossless_bits // 2**14) % 2**14 + 1, lossless_bits % 2**14 + 1)),
            (tag == b"VP8X", lambda: still(little_endian(27, 3) + 1, little_endian(24, 3) + 1)),
        ], default=lambda: refused("a WebP without a VP8, VP8L or VP8X chunk, which Pillow does not read"))

    def refused(reason):
        zero = tf.constant(0, tf.int64)
        return zero, zero, zero, tf.convert_to_tensor(reason)

    return PhotoHeader(format_name, *tf.case([
        (format_name == "JPEG", jpeg),
        (format_name == "PNG", lambda: still(big_endian(20, 4), big_endian(16, 4))),
        (format_name == "GIF", lambda: gif_header(image_bytes)),
        (format_name == "BMP", bmp),
        (format_name == "WebP", webp),
    ], default=lambda: refused(not_accepted(format_name))))


def gif_header(image_bytes):
    """(height, width, pixels, refusal) of a GIF. The decoder (giflib's DGifSlurp) reads every frame, each at its
    own size, and makes the image at least as large as the first frame; Pillow's canvas grows to hold every frame
    at its offset. Its size is the larger of the two readings, its pixels the larger of that canvas and all frames
    together."""
    data = tf.io.decode_raw(image_bytes, tf.uint8)  # bytes, not int32: four times less memory
    size = tf.size(data)
    padded = tf.concat([data, tf.zeros(16, tf.uint8)], axis=0)  # a field read past the end is 0

    def byte(offsets):  # one offset, or a vector of them
        return tf.cast(tf.gather(padded, tf.minimum(offsets, size + 15)), tf.int32)

    def le16(offset):
        return byte(offset) + 256 * byte(offset + 1)

    def color_table(flags):  # its size in bytes, when the packed flags say there is one
        return tf.where(flags >= 128, 3 * 2 ** (flags % 8 + 1), 0)

    def running(position, in_blocks, width, height, pixels):
        return (position < size) & (in_blocks | (byte(position) == GIF_IMAGE) | (byte(position) == GIF_EXTENSION))

    def step(position, in_blocks, width, height, pixels):
        def data_blocks():
            lengths = byte(position + 256 * tf.range(GIF_LOOKAHEAD))
            full = tf.argmin(tf.concat([tf.cast(lengths == GIF_FULL_BLOCK, tf.int32), [0]], 0), output_type=tf.int32)
            length = tf.where(full == GIF_LOOKAHEAD, 0, lengths[tf.minimum(full, GIF_LOOKAHEAD - 1)])
            ended = (full < GIF_LOOKAHEAD) & (length == 0)  # the zero-length block that ends a run
            return (position + 256 * full + tf.where(full < GIF_LOOKAHEAD, 1 + length, 0), ~ended,
                    width, height, pixels)

        def frame():
            left, top, frame_width, frame_height = (le16(position + offset) for offset in (1, 3, 5, 7))
            # +1: the byte of the LZW code size, before the data blocks
            after = position + 10 + color_table(byte(position + 9)) + 1
            return (after, tf.constant(True), tf.maximum(width, left + frame_width),
                    tf.maximum(height, top + frame_height),
                    pixels + tf.cast(frame_width, tf.int64) * tf.cast(frame_height, tf.int64))

        def extension():  # the introducer and the label, then data blocks
            return position + 2, tf.constant(True), width, height, pixels

        return tf.case([(in_blocks, data_blocks), (byte(position) == GIF_IMAGE, frame)], default=extension)

    screen_width, screen_height = le16(6), le16(8)
    start = 13 + color_table(byte(10))
    zero = tf.constant(0, tf.int64)
    position, in_blocks, width, height, pixels = tf.while_loop(
        running, step, (start, tf.constant(False), screen_width, screen_height, zero),
        maximum_iterations=GIF_STEPS)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    walked = ~running(position, in_blocks, width, height, pixels)
    refusal = tf.where(walked, "", f"a GIF of data blocks too small to read in {GIF_STEPS} steps (encoders write "
                                   "255-byte blocks)")
    return height, width, tf.maximum(height * width, pixels), refusal


def size_in_words(width, height, pixels):
    """A photo's size as refusals give it: "image of WxH pixels", and a GIF's pixels in all its frames when more."""
    frames = "" if pixels == width * height else f", {pixels} in all its frames,"
    return f"image of {width}x{height} pixels{frames}"


def gated(image_bytes, max_pixels):
    """image_bytes, once photo_header finds them of an accepted format and at most max_pixels pixels; else an
    InvalidArgument error that says which. Nothing that depends on the result runs before the checks."""
    header = photo_header(image_bytes)
    accepted = tf.debugging.Assert(tf.strings.length(header.refusal) == 0, [header.refusal])
    width, height, pixels = (tf.strings.as_string(value) for value in (header.width, header.height, header.pixels))
    frames = tf.where(header.pixels == header.width * header.height, "", ", " + pixels + " in all its frames,")
    with tf.control_dependencies([accepted]):
        within = tf.debugging.Assert(
            header.pixels <= max_pixels,
            [tf.strings.join(["image of ", width, "x", height, " pixels", frames, f" is over the limit of {max_pixels} "
                              "pixels set at export (chroma export --max-pixels)"])])
    with tf.control_dependencies([within]):
        return tf.identity(image_bytes)
