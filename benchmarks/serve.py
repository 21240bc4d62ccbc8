"""`chroma serve` under load: N requests from C concurrent clients on loopback, answered how fast.

    .venv/bin/python benchmarks/serve.py                       # 200 requests, 8 clients, the paper-size U-Net
    .venv/bin/python benchmarks/serve.py --requests 50 --photo-size 4000x3000
    .venv/bin/python benchmarks/serve.py --smoke               # tiny sizes: checks the script runs

The model is paper nampouri's U-Net generator at paper size with random weights (the cost of trained ones),
exported as `chroma export` does, served by `python -m chroma.cli serve` in a process of its own. Each client
sends the same JPEG (a bundled photo resized to --photo-size) to :predict with signature colorize_encoded, one
request after another, until all requests are sent or --time-limit has passed. Printed: the machine, then
requests answered (by HTTP status), requests/s over the whole run, and the median (p50) and 95th percentile
(p95) of the latency a client saw; with one prediction at a time (the server's default), latency is mostly
waiting for a turn, so p50 ~ clients / requests-per-second.
"""

import argparse
import base64
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

from chroma.data import samples  # noqa: E402

from colorize_throughput import paper_colorizer  # noqa: E402
from machine_info import machine_lines  # noqa: E402


def photo_jpeg(size):
    """The bundled astronaut as JPEG bytes of `size` (width, height)."""
    record = next(record for record in samples().records if record.name == "astronaut")
    buffer = io.BytesIO()
    Image.fromarray(record.load()).resize(size, Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def start_server(model, log):
    """`chroma serve` on a free port; (process, the predict URL) once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chroma.cli", "serve", "--model", str(model), "--port", "0", "--max-waiting", "64"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    if not line.startswith("serving"):
        process.kill()
        raise RuntimeError(f"chroma serve did not start: {line}")
    base = line.split("page ")[1].split("/,")[0]
    return process, f"{base}/v1/models/{Path(model).name}:predict"


@contextlib.contextmanager
def served_unet(smoke):
    """The predict URL of `chroma serve` serving paper nampouri's U-Net (32 px with smoke), exported to a
    temporary folder; the server stops on exit."""
    with tempfile.TemporaryDirectory(prefix="chroma-serve-bench-") as work_dir:
        print("... exporting the U-Net, starting chroma serve", file=sys.stderr, flush=True)
        model = paper_colorizer(Path(work_dir) / "unet", 32 if smoke else None)
        with open(Path(work_dir) / "serve.log", "w") as log:
            process, url = start_server(model, log)
            try:
                yield url
            finally:
                process.terminate()
                process.wait(timeout=30)


def send(url, body):
    """(HTTP status, seconds) of one POST."""
    started = time.perf_counter()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


def load(url, photo, requests, clients, time_limit):
    """`requests` POSTs from `clients` threads, none started after time_limit seconds: [(status, seconds)], wall."""
    body = json.dumps({"signature_name": "colorize_encoded",
                       "instances": [{"b64": base64.b64encode(photo).decode()}]}).encode()
    send(url, body)  # the model's first call, untimed
    started = time.perf_counter()
    remaining = iter(range(requests))
    results = []

    def client():
        for _ in remaining:  # the shared iterator hands each request to one client
            if time.perf_counter() - started > time_limit:
                return
            results.append(send(url, body))

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    return results, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds after which no request starts")
    parser.add_argument("--photo-size", default="640x480", help="WxH of the photo sent (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="20 requests of a small photo to a 32-px U-Net")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.photo_size = 20, "64x48"
    size = tuple(int(side) for side in args.photo_size.split("x"))
    for line in machine_lines():
        print(line)
    with served_unet(args.smoke) as url:
        results, wall = load(url, photo_jpeg(size), args.requests, args.clients, args.time_limit)
    statuses = sorted({status for status, _ in results})
    counts = ", ".join(f"{sum(1 for s, _ in results if s == status)} x HTTP {status}" for status in statuses)
    latencies = sorted(seconds for _, seconds in results)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(f"chroma serve, colorize_encoded, {size[0]}x{size[1]} JPEG, {args.clients} clients: {len(results)} of "
          f"{args.requests} requests answered ({counts}) in {wall:.1f} s: {len(results) / wall:.2f} requests/s, "
          f"latency p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s")


if __name__ == "__main__":
    main()
