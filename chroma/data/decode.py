"""Photo bytes to RGB in TensorFlow ops alone: how a SavedModel decodes what it serves (chroma.export).

It mirrors chroma.data.load_rgb, the Pillow decoding of training images and
of `chroma colorize`'s files, so a served photo gives the colours the same
file gives on the command line.
"""

import tensorflow as tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GRAY = 0  # IHDR's colour type (byte 25) for gray without an alpha channel; its bit depth is byte 24
WEBP_ANIMATION = 0x02  # in the flags of a WebP VP8X header, byte 20


def header_size(image_bytes):
    """(height, width), int64, read from the header of JPEG, PNG, GIF, BMP or WebP bytes without decoding them.

    (0, 0) for bytes of no such format (decoding them then fails with its own
    error). A JPEG's size is in its frame header, which
    tf.image.extract_jpeg_shape finds; the others' are at fixed offsets:
    PNG's IHDR (big-endian), GIF's logical screen, BMP's info header (a
    negative height means rows stored top-down), and WebP's lossy (VP8),
    lossless (VP8L) or extended (VP8X) header.
    """
    header = tf.strings.substr(tf.strings.substr(image_bytes, 0, 32) + b"\0" * 32, 0, 32)
    header_bytes = tf.cast(tf.reshape(tf.io.decode_raw(header, tf.uint8), (32,)), tf.int64)

    def little_endian(offset, length):
        return sum(header_bytes[offset + index] * 256**index for index in range(length))

    def big_endian(offset, length):
        return sum(header_bytes[offset + length - 1 - index] * 256**index for index in range(length))

    def signed(value, bits):
        return tf.where(value >= 2 ** (bits - 1), value - 2**bits, value)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0], shape[1]

    def webp_lossless():
        bits = little_endian(21, 4)
        return (bits // 2**14) % 2**14 + 1, bits % 2**14 + 1

    is_webp = (tf.strings.substr(header, 0, 4) == b"RIFF") & (tf.strings.substr(header, 8, 4) == b"WEBP")
    return tf.case(
        [
            (tf.io.is_jpeg(image_bytes), jpeg),
            (tf.strings.substr(header, 0, 8) == PNG_SIGNATURE, lambda: (big_endian(20, 4), big_endian(16, 4))),
            (tf.strings.substr(header, 0, 3) == b"GIF", lambda: (little_endian(8, 2), little_endian(6, 2))),
            (tf.strings.substr(header, 0, 2) == b"BM",
             lambda: (tf.abs(signed(little_endian(22, 4), 32)), signed(little_endian(18, 4), 32))),
            (is_webp & (tf.strings.substr(header, 12, 4) == b"VP8 "),
             lambda: (little_endian(28, 2) % 2**14, little_endian(26, 2) % 2**14)),
            (is_webp & (tf.strings.substr(header, 12, 4) == b"VP8L"), webp_lossless),
            (is_webp & (tf.strings.substr(header, 12, 4) == b"VP8X"),
             lambda: (little_endian(27, 3) + 1, little_endian(24, 3) + 1)),
        ],
        default=lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
    )


def within_pixel_limit(image_bytes, max_pixels):
    """image_bytes, once its header says it has at most max_pixels pixels (see checked_size). A few hundred
    KB of PNG can describe an image of gigabytes (a decompression bomb): this refuses it undecoded."""
    height, width = header_size(image_bytes)
    return checked_size(image_bytes, height, width, max_pixels)


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


def decode_photo(image_bytes):
    """JPEG, PNG, GIF, BMP or WebP bytes -> uint8 RGB (H, W, 3), in TensorFlow ops: the pixels that
    chroma.data.load_rgb (Pillow), which decodes training images and `chroma colorize`'s files, makes of them.

    Training's decoding is the rule, mirrored here, so that a model is served what it was trained on:
    transparency composited on white, 16-bit gray rounded and 16-bit colour cut to its high byte as Pillow
    does, an animation's first frame. A GIF's transparency is the exception, where load_rgb follows TensorFlow:
    TensorFlow's GIF decoder reports no alpha and paints those pixels black. Not mirrored: EXIF rotation, WebP
    animations without alpha (TensorFlow refuses them) and tRNS transparency in 2- and 4-bit gray PNGs (Pillow
    misreads it). Pillow ignores the tRNS of RGB and 16-bit gray PNGs, and so does this.
    """
    # Zero-padded, so that every header field below exists even in a short input (which then fails to decode).
    header = tf.strings.substr(tf.strings.substr(image_bytes, 0, 32) + b"\0" * 32, 0, 32)
    header_bytes = tf.reshape(tf.io.decode_raw(header, tf.uint8), (32,))

    def jpeg():
        # The accurate inverse DCT, as Pillow's: decode_image's default, the fast one, is up to 7 levels off.
        return tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE")

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
    return image
