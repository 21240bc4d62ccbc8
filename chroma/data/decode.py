"""Photo bytes to RGB in TensorFlow ops alone: how a SavedModel decodes what it serves (chroma.export).

It mirrors chroma.data.load_rgb, the Pillow decoding of training images and
of `chroma colorize`'s files, so a served photo gives the colours the same
file gives on the command line. Bytes pass chroma.data.photo_header's gate
(format and size) before any decoder sees them.
"""

import tensorflow as tf

from chroma.limits import MAX_PIXELS

from .photo_header import PNG_SIGNATURE, gated, photo_header

PNG_GRAY = 0  # IHDR's colour type (byte 25) for gray without an alpha channel; its bit depth is byte 24
WEBP_ANIMATION = 0x02  # in the flags of a WebP VP8X header, byte 20
JPEG_APP1 = 0xE1  # the marker of the segment that holds EXIF
JPEG_START_OF_SCAN = 0xDA  # the image data follows: no metadata segment after it
JPEG_SEGMENTS_SEARCHED = 256  # for EXIF, a bound on hostile files: cameras write a handful of segments
EXIF_ORIENTATION = 0x0112  # its tag in IFD0
TIFF_SHORT = 3  # the type of a 16-bit unsigned field, the Orientation tag's


def checked_size(tensor, height, width, max_pixels):
    """tensor, once height x width is at most max_pixels; else an InvalidArgument error that gives the size
    and the limit. Nothing that depends on the result runs before the check."""
    check = tf.debugging.Assert(
        (width >= 0) & (height * width <= max_pixels),
        [tf.strings.format("image of {}x{} pixels is over the limit of {} pixels set at export (chroma export "
                           "--max-pixels)", (width, height, max_pixels))],
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def padded_bytes(string, offset, length):
    """`length` bytes of `string` from `offset` on, int32 (length,), zeros past its end: reads of a short or broken
    file fail the checks that follow rather than the graph."""
    start = tf.minimum(tf.strings.length(string), offset)
    padded = tf.strings.substr(tf.strings.substr(string, start, length) + b"\0" * length, 0, length)
    return tf.cast(tf.reshape(tf.io.decode_raw(padded, tf.uint8), (length,)), tf.int32)


def jpeg_exif(image_bytes):
    """The TIFF data inside a JPEG's first APP1 "Exif" segment (Pillow reads its EXIF there), a string; empty
    when no such segment comes before the image data."""
    size = tf.strings.length(image_bytes)

    def searching(offset, found):
        marker = padded_bytes(image_bytes, offset, 2)
        return ~found & (offset < size) & (marker[0] == 0xFF) & (marker[1] != JPEG_START_OF_SCAN)

    def next_segment(offset, found):
        # 0xFF, marker, length (big-endian, itself included) and the first 6 bytes of the segment's data.
        segment = padded_bytes(image_bytes, offset, 10)
        is_exif = (segment[1] == JPEG_APP1) & tf.reduce_all(segment[4:] == list(b"Exif\0\0"))
        step = tf.where(segment[1] == 0xFF, 1, 2 + segment[2] * 256 + segment[3])  # 0xFF: a fill byte
        return tf.where(is_exif, offset, offset + step), is_exif

    offset, found = tf.while_loop(searching, next_segment, (tf.constant(2), tf.constant(False)),
                                  maximum_iterations=JPEG_SEGMENTS_SEARCHED)
    length = padded_bytes(image_bytes, offset + 2, 2)
    tiff_length = tf.maximum(length[0] * 256 + length[1] - 8, 0)  # less the length field and "Exif\0\0"
    return tf.cond(found, lambda: tf.strings.substr(image_bytes, tf.minimum(offset + 10, size), tiff_length),
                   lambda: tf.constant(b""))


def exif_orientation(image_bytes):
    """A JPEG's EXIF orientation, int32 1 to 8: Orientation (tag 0x0112, a SHORT) in IFD0, the last if repeated,
    as Pillow reads it. 1 (as stored) without EXIF, with EXIF broken (no error) and for bytes of other formats."""
    tiff_data = jpeg_exif(image_bytes)
    little_endian = tf.strings.substr(tiff_data, 0, 4) == b"II*\0"
    big_endian = tf.strings.substr(tiff_data, 0, 4) == b"MM\0*"
    tiff = tf.cast(tf.io.decode_raw(tiff_data, tf.uint8), tf.int64)
    size = tf.size(tiff, tf.int64)

    def unsigned(fields):
        """(..., n) bytes -> (...) numbers, in the TIFF data's byte order."""
        weights = 256 ** tf.range(fields.shape[-1], dtype=tf.int64)
        return tf.reduce_sum(fields * tf.where(little_endian, weights, weights[::-1]), axis=-1)

    padded = tf.concat([tiff, tf.zeros(4, tf.int64)], axis=0)  # a field read past the end is 0

    def number_at(offset, length):
        return unsigned(tf.slice(padded, [tf.minimum(size, offset)], [length]))

    ifd = number_at(4, 4)
    # Entries cut off by the end of the data are dropped, as Pillow does.
    entry_count = tf.clip_by_value((size - ifd - 2) // 12, 0, number_at(ifd, 2))
    entries = tf.reshape(tf.slice(tiff, [tf.minimum(ifd + 2, size)], [12 * entry_count]), (-1, 12))
    # Each entry: tag, type, count, then the value (a SHORT in its first two bytes).
    tag, kind, count, value = (unsigned(entries[:, start:end]) for start, end in ((0, 2), (2, 4), (4, 8), (8, 10)))
    orientations = tf.boolean_mask(value, (tag == EXIF_ORIENTATION) & (kind == TIFF_SHORT) & (count == 1))
    orientation = tf.concat([[1], orientations], axis=0)[-1]
    known = tf.io.is_jpeg(image_bytes) & (little_endian | big_endian) & (orientation >= 1) & (orientation <= 8)
    return tf.cast(tf.where(known, orientation, 1), tf.int32)


def exif_transposed(image, orientation):
    """image (H, W, C) turned upright as EXIF orientation 1 to 8 says, as Pillow's ImageOps.exif_transpose does
    (its Transpose methods named below; ROTATE_ turns anticlockwise). Slices rather than tf.image's flips and
    rot90, which build conditions of their own: the graph traces in a fraction of the time."""
    transposed = lambda: tf.transpose(image, (1, 0, 2))  # noqa: E731
    return tf.switch_case(orientation - 1, [
        lambda: image,
        lambda: image[:, ::-1],  # FLIP_LEFT_RIGHT
        lambda: image[::-1, ::-1],  # ROTATE_180
        lambda: image[::-1],  # FLIP_TOP_BOTTOM
        transposed,  # TRANSPOSE
        lambda: transposed()[:, ::-1],  # ROTATE_270
        lambda: transposed()[::-1, ::-1],  # TRANSVERSE
        lambda: transposed()[::-1],  # ROTATE_90
    ])


def display_size(image_bytes):
    """(height, width), int64, of the pixels decode_photo gives: photo_header's, its sides swapped for a JPEG whose
    EXIF orientation is a quarter turn (5 to 8)."""
    _, height, width, _, _ = photo_header(image_bytes)
    turned = exif_orientation(image_bytes) >= 5
    return tf.where(turned, width, height), tf.where(turned, height, width)


def on_white(image):
    """uint8 gray, gray + alpha, RGB or RGBA (H, W, 1 to 4) -> uint8 RGB (H, W, 3), alpha composited on white.

    Rounded to nearest, which is what Pillow's alpha_composite over opaque white gives (chroma.data.load_rgb)
    for all 256 x 256 pairs of colour and alpha.
    """
    channels = tf.shape(image)[-1]
    has_alpha = channels % 2 == 0
    colour = image[..., : channels - tf.cast(has_alpha, tf.int32)]
    colour = tf.broadcast_to(colour, tf.concat([tf.shape(image)[:2], [3]], axis=0))

    def composite():
        rgb, alpha = tf.cast(colour, tf.int32), tf.cast(image[..., -1:], tf.int32)
        return tf.cast((rgb * alpha + 255 * (255 - alpha) + 127) // 255, tf.uint8)

    return tf.cond(has_alpha, composite, lambda: colour)


def decode_photo(image_bytes, max_pixels=MAX_PIXELS):
    """JPEG, PNG, GIF, BMP or WebP bytes -> uint8 RGB (H, W, 3), in TensorFlow ops: the pixels that
    chroma.data.load_rgb (Pillow), which decodes training images and `chroma colorize`'s files, makes of them.

    Bytes of another format, or of more than max_pixels pixels, are refused before decoding (chroma.data.
    photo_header.gated: an InvalidArgument error), and the decoded image's size is checked again.

    Training's decoding is the rule, mirrored here, so that a model is served what it was trained on:
    transparency composited on white, 16-bit gray rounded and 16-bit colour cut to its high byte as Pillow
    does, an animation's first frame, a JPEG turned upright at full resolution as its EXIF orientation says
    (exif_orientation; the pixel limit reads the stored size, which has as many pixels). A GIF's transparency is
    the exception, where load_rgb follows TensorFlow: TensorFlow's GIF decoder reports no alpha and paints those
    pixels black. Not mirrored: the orientation of a JPEG's XMP and of PNG and WebP EXIF (cameras write it in
    JPEG EXIF), WebP animations without alpha (TensorFlow refuses them) and tRNS transparency in 2- and 4-bit
    gray PNGs (Pillow misreads it). Pillow ignores the tRNS of RGB and 16-bit gray PNGs, and so does this.
    """
    image_bytes = gated(image_bytes, max_pixels)
    # Zero-padded, so that every header field below exists even in a short input (which then fails to decode).
    header = tf.strings.substr(tf.strings.substr(image_bytes, 0, 32) + b"\0" * 32, 0, 32)
    header_bytes = tf.reshape(tf.io.decode_raw(header, tf.uint8), (32,))

    def jpeg():
        # The accurate inverse DCT, as Pillow's: decode_image's default, the fast one, is up to 7 levels off.
        stored = tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE")
        return exif_transposed(stored, exif_orientation(image_bytes))

    def bmp():
        # Pillow reads the fourth byte of a 32-bit BMP as padding, not alpha.
        return tf.io.decode_bmp(image_bytes, channels=3)

    def sixteen_bit_gray_png():
        # Pillow rounds 16-bit gray to 8 bits (chroma.data.images._to_rgb), ignoring its tRNS.
        gray = tf.cast(tf.io.decode_png(image_bytes, channels=1, dtype=tf.uint16), tf.int32)
        return tf.image.grayscale_to_rgb(tf.cast((gray + 128) // 257, tf.uint8))

    def gray_png():
        # channels=4 turns a tRNS chunk into alpha, 0 or 255 (channels=0 would drop it). Any other alpha is
        # TensorFlow's opaque filler, which is 1, 3 or 15 rather than 255 in 1-, 2- and 4-bit files.
        rgba = tf.io.decode_png(image_bytes, channels=4)
        alpha = tf.where(rgba[..., 3:] > 0, tf.constant(255, tf.uint8), tf.constant(0, tf.uint8))
        return on_white(tf.concat([rgba[..., :3], alpha], axis=-1))

    def animated_webp():
        # TensorFlow decodes WebP animations only as RGBA: channels=0 on one without alpha corrupts memory.
        return on_white(tf.io.decode_image(image_bytes, channels=4, expand_animations=False))

    def in_its_own_channels():
        # PNG, GIF, WebP: alpha where the file has it (a palette PNG's tRNS too), 16-bit PNGs cut to their high byte.
        return on_white(tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False))

    is_gray_png = (tf.strings.substr(header, 0, 8) == PNG_SIGNATURE) & (header_bytes[25] == PNG_GRAY)
    is_animated_webp = (
        (tf.strings.substr(header, 0, 4) == b"RIFF")
        & (tf.strings.substr(header, 8, 8) == b"WEBPVP8X")
        & (tf.bitwise.bitwise_and(header_bytes[20], WEBP_ANIMATION) != 0)
    )
    image = tf.case(
        [
            (tf.io.is_jpeg(image_bytes), jpeg),
            (tf.strings.substr(header, 0, 2) == b"BM", bmp),
            (is_gray_png & (header_bytes[24] == 16), sixteen_bit_gray_png),
            (is_gray_png, gray_png),
            (is_animated_webp, animated_webp),
        ],
        default=in_its_own_channels,
    )
    image.set_shape((None, None, 3))
    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.int64))
    return checked_size(image, height, width, max_pixels)
