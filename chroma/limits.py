"""Bounds on what arrives from outside, shared by the library and the command line (which imports no
TensorFlow to show them in its help)."""

# Largest image decoded at full size: 64 Mi pixels (8192 x 8192) are ~200 MB
# as 8-bit RGB and ~400 MB at 16 bits, affordable with a couple of decoders
# running at once. JPEGs are decoded at 1/2 .. 1/8 scale first (`draft`), so a
# JPEG passes if that reduced size fits; others beyond it are refused.
# Pillow refuses even earlier, at 2 x Image.MAX_IMAGE_PIXELS (~179 Mi pixels).
MAX_PIXELS = 64 * 1024 * 1024
# chroma serve, per :predict request: a batch of photos, not a way to hold the one turn for minutes. Their pixels
# together are bounded by MAX_PIXELS too, which a 12-megapixel photo passes five times over.
MAX_INSTANCES = 64
# chroma serve's --timeout. A prediction cannot be stopped once started, so the caps above (and photo_header's on
# JPEG scans and GIF blocks) are what bound its work: the largest request they let through runs well inside this
# (benchmarks/serve_worst_case.py).
REQUEST_TIMEOUT = 120.0
