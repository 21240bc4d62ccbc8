"""One 12-megapixel photo over TensorFlow Serving's REST API: how many bytes come back, and how fast, per signature.

    .venv/bin/python benchmarks/rest_response.py                  # 4000x3000 JPEG, the paper-size U-Net
    .venv/bin/python benchmarks/rest_response.py --smoke          # 64x48 to a 32-px U-Net: checks the script runs

serving_default answers with the colorized pixels as a JSON array (TF Serving's REST form of a uint8 tensor);
colorize_encoded with a PNG, colorize_encoded_as with a JPEG of the quality asked, both as {"b64": ...}. The
model and server are benchmarks/serve.py's: paper nampouri's U-Net at paper size, random weights, `chroma
serve` in a process of its own on loopback. Each signature is called once untimed (it traces), then --repeats
times; printed: the request's and the response's size and the median latency.
"""

import argparse
import base64
import json
import statistics
import time
import urllib.request

from machine_info import machine_lines
from serve import photo_jpeg, served_unet

CALLS = (
    ("serving_default", {}),
    ("colorize_encoded", {}),
    ("colorize_encoded_as", {"format": "jpeg", "quality": 90}),
)


def post(url, body):
    """(response bytes, seconds) of one POST."""
    started = time.perf_counter()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=900) as response:
        answer = response.read()
    return answer, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo-size", default="4000x3000", help="WxH of the JPEG sent (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a 64x48 photo to a 32-px U-Net")
    args = parser.parse_args()
    if args.smoke:
        args.photo_size, args.repeats = "64x48", 1
    size = tuple(int(side) for side in args.photo_size.split("x"))
    for line in machine_lines():
        print(line)
    photo = photo_jpeg(size)
    print(f"{size[0]}x{size[1]} JPEG of {len(photo) / 1e6:.2f} MB")
    print("| signature | request | response | latency (median) |")
    print("|---|---:|---:|---:|")
    with served_unet(args.smoke) as url:
        for signature, options in CALLS:
            body = json.dumps({"signature_name": signature, "instances": [
                {"image_bytes": {"b64": base64.b64encode(photo).decode()}, **options}]}).encode()
            answer, _ = post(url, body)  # traces the signature
            seconds = [post(url, body)[1] for _ in range(args.repeats)]
            label = " ".join([signature, *(f"{key}={value}" for key, value in options.items())])
            print(f"| {label} | {len(body) / 1e6:.2f} MB | {len(answer) / 1e6:.2f} MB | "
                  f"{statistics.median(seconds):.2f} s |", flush=True)


if __name__ == "__main__":
    main()
