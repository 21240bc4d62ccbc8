"""The longest prediction one `chroma serve` request can start under the default limits, against --timeout.

    .venv/bin/python benchmarks/serve_worst_case.py            # the paper-size U-Net, requests at the caps
    .venv/bin/python benchmarks/serve_worst_case.py --smoke    # a 32-px U-Net, photos 1/16 of the caps

A prediction runs in a thread, which nothing can stop: past --timeout the client gets 504 and the work goes on,
holding its turn. chroma bounds that work instead, with caps on what one request may ask for: photos per request
(--max-instances), pixels per request (--max-request-pixels, samples counted as photos), and from each photo's
header, the scans of a JPEG and the blocks of a GIF (chroma.data.photo_header). This script sends the SavedModel's
signatures the largest requests those defaults let through (the signature calls `chroma serve` makes, without
HTTP) and prints how long each held the turn: every one must end well inside the default --timeout.

The model is paper nampouri's U-Net generator at paper size with random weights (the cost of trained ones), as
benchmarks/serve.py serves. Its network runs at 256 x 256 whatever the photo's size; the rest (decoding,
converting to Lab and back at full size, encoding) grows with the pixels, which the caps bound.
"""

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from chroma.data import samples  # noqa: E402
from chroma.data.photo_header import JPEG_SCANS  # noqa: E402
from chroma.limits import MAX_INSTANCES, MAX_PIXELS, REQUEST_TIMEOUT  # noqa: E402

from colorize_throughput import paper_colorizer  # noqa: E402
from machine_info import machine_lines  # noqa: E402


def jpeg_of(side, **options):
    """The bundled astronaut as a side x side JPEG."""
    record = next(record for record in samples().records if record.name == "astronaut")
    buffer = io.BytesIO()
    Image.fromarray(record.load()).resize((side, side), Image.Resampling.BICUBIC).save(
        buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def with_scans(progressive, count):
    """A progressive JPEG whose smallest scan is repeated until it has `count` scans, as an attacker would: each
    costs the decoder a pass over the whole image, however few its bytes."""
    starts = [index for index in range(len(progressive) - 1) if progressive[index:index + 2] == b"\xff\xda"]
    scans = [progressive[start:end] for start, end in zip(starts, starts[1:] + [len(progressive) - 2])]
    smallest = min(range(1, len(scans)), key=lambda index: len(scans[index]))  # after the first (DC) scan
    end = starts[smallest] + len(scans[smallest])
    return progressive[:end] + scans[smallest] * (count - len(scans)) + progressive[end:]


def worst_requests(side, photos):
    """(what, signature name, inputs) of the largest requests the default caps let through: `photos` photos of
    side x side (side**2 * photos = MAX_PIXELS at full scale)."""
    small = jpeg_of(side)
    large = jpeg_of(side * int(photos**0.5))
    scanned = with_scans(jpeg_of(side * int(photos**0.5), progressive=True), JPEG_SCANS)
    return [
        (f"serving_default, {photos} photos of {side}x{side}", "serving_default",
         {"image_bytes": tf.constant([small] * photos)}),
        (f"colorize_encoded (PNG), {photos} photos of {side}x{side}", "colorize_encoded",
         {"image_bytes": tf.constant([small] * photos)}),
        (f"colorize_encoded_as (JPEG 100), {photos} photos of {side}x{side}", "colorize_encoded_as",
         {"image_bytes": tf.constant([small] * photos), "format": tf.constant(["jpeg"] * photos),
          "quality": tf.constant([100] * photos)}),
        (f"colorize_encoded (PNG), 1 photo of {size_of(large)}", "colorize_encoded",
         {"image_bytes": tf.constant([large])}),
        (f"colorize_encoded (PNG), 1 progressive photo of {size_of(scanned)}, {JPEG_SCANS} scans "
         f"({len(scanned) / 2**20:.1f} MiB)",
         "colorize_encoded", {"image_bytes": tf.constant([scanned])}),
        (f"colorize_samples_encoded (PNG), {photos} samples of {side}x{side}", "colorize_samples_encoded",
         {"image_bytes": tf.constant(small), "samples": tf.constant(photos)}),
    ]


def size_of(jpeg):
    height, width, _ = (int(side) for side in tf.image.extract_jpeg_shape(jpeg))
    return f"{width}x{height}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a 32-px U-Net and photos of 1/16 the caps' pixels")
    args = parser.parse_args()
    for line in machine_lines():
        print(line)
    photos = MAX_INSTANCES
    side = int((MAX_PIXELS // photos) ** 0.5) // (4 if args.smoke else 1)
    print(f"caps: {MAX_INSTANCES} photos and {MAX_PIXELS} pixels per request, JPEG scans {JPEG_SCANS}; "
          f"default --timeout {REQUEST_TIMEOUT:g} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="chroma-worst-case-") as work_dir:
        print("... exporting the U-Net", file=sys.stderr, flush=True)
        model = paper_colorizer(Path(work_dir) / "unet", 32 if args.smoke else None)
        signatures = tf.saved_model.load(str(model)).signatures
        signatures["colorize_encoded"](image_bytes=tf.constant([jpeg_of(64)]))  # the first call, untimed
        longest = 0.0
        for what, name, inputs in worst_requests(side, photos):
            started = time.perf_counter()
            signatures[name](**inputs)
            seconds = time.perf_counter() - started
            longest = max(longest, seconds)
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
            print(f"{what}: {seconds:.1f} s (peak memory so far {peak_gb:.1f} GB)", flush=True)
    print(f"longest: {longest:.1f} s, {longest / REQUEST_TIMEOUT:.0%} of the default --timeout")


if __name__ == "__main__":
    main()
