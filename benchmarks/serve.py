"""`chroma serve` under load: N requests from C concurrent clients on loopback, answered how fast; with --flood, beside
clients sending bad requests as fast as they can.

    .venv/bin/python benchmarks/serve.py                       # 200 requests, 8 clients, the paper-size U-Net
    .venv/bin/python benchmarks/serve.py --requests 50 --photo-size 4000x3000
    .venv/bin/python benchmarks/serve.py --requests 100 --flood 8   # beside 8 clients of bad requests
    .venv/bin/python benchmarks/serve.py --requests 100 --flood 8 --serve-from /tmp/before  # an earlier server
    .venv/bin/python benchmarks/serve.py --smoke --flood 2     # tiny sizes: checks the script runs

The model is paper nampouri's U-Net generator at paper size with random weights (the cost of trained ones),
exported as `chroma export` does, served by `python -m chroma.cli serve` in a process of its own. Each client
sends the same JPEG (a bundled photo resized to --photo-size) to :predict with signature colorize_encoded, one
request after another, until all requests are sent or --time-limit has passed. Printed: the machine, then
requests answered (by HTTP status), requests/s over the whole run, the share answered 200 and the median (p50)
and 95th percentile (p95) of the latency a client saw; with one prediction at a time (the server's default),
latency is mostly waiting for a turn, so p50 ~ clients / requests-per-second.

--flood F adds F clients that send bad requests, one after another without pause, until the good ones are done:
base64 that is not, an unknown signature, inputs the signature does not take, bytes that are no photo, and a body
that is not JSON, in turn. The figures above stay those of the good requests; a second line counts the bad ones'
answers. A server that checks a request before it waits for a turn keeps the good requests' latency.

--serve-from DIR runs `chroma serve` from the chroma package in DIR (say a checkout of an earlier commit) on the
model this checkout exported, to compare two servers on one SavedModel.
"""

import argparse
import base64
import collections
import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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


def start_server(model, log, serve_from=None, flags=("--max-waiting", "64")):
    """`chroma serve FLAGS` on a free port, from the chroma package in the folder `serve_from` if given (`python -m`
    imports from its working folder first); (process, the predict URL) once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chroma.cli", "serve", "--model", str(model), "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=serve_from)
    line = process.stdout.readline()
    if not line.startswith("serving"):
        process.kill()
        raise RuntimeError(f"chroma serve did not start: {line!r}")
    base = line.split("page ")[1].split("/,")[0]
    return process, f"{base}/v1/models/{Path(model).name}:predict"


@contextlib.contextmanager
def served_unet(smoke, serve_from=None):
    """The predict URL of `chroma serve` (from `serve_from`, if given) serving paper nampouri's U-Net (32 px with
    smoke), exported to a temporary folder; the server stops on exit."""
    with tempfile.TemporaryDirectory(prefix="chroma-serve-bench-") as work_dir:
        print("... exporting the U-Net, starting chroma serve", file=sys.stderr, flush=True)
        model = paper_colorizer(Path(work_dir) / "unet", 32 if smoke else None)
        with open(Path(work_dir) / "serve.log", "w") as log:
            process, url = start_server(model, log, serve_from)
            try:
                yield url
            finally:
                process.terminate()
                process.wait(timeout=30)


def send(url, body):
    """(HTTP status, or None when no answer came, seconds) of one POST."""
    started = time.perf_counter()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except OSError:  # refused, reset or timed out: the server is down or drowning
        status = None
    return status, time.perf_counter() - started


def bad_bodies():
    """The bad requests of --flood, as bodies: each refused by a different check."""
    not_a_photo = base64.b64encode(os.urandom(1000)).decode()
    return [json.dumps(body).encode() for body in (
        {"instances": [{"b64": "*** not base64 ***"}]},
        {"signature_name": "no_such_signature", "instances": [{"b64": not_a_photo}]},
        {"signature_name": "colorize_encoded", "inputs": {"image": [[[0, 0, 0]]]}},
        {"signature_name": "colorize_encoded", "instances": [{"b64": not_a_photo}]},
    )] + [b"{not json"]


def load(url, photo, requests, clients, time_limit, flood=0):
    """`requests` POSTs from `clients` threads, none started after time_limit seconds, while `flood` threads send
    bad requests until they are done: ([(status, seconds)] of the good, [(status, seconds)] of the bad, wall)."""
    body = json.dumps({"signature_name": "colorize_encoded",
                       "instances": [{"b64": base64.b64encode(photo).decode()}]}).encode()
    send(url, body)  # the model's first call, untimed
    started = time.perf_counter()
    remaining = iter(range(requests))
    results, bad_results = [], []
    done = threading.Event()

    def client():
        for _ in remaining:  # the shared iterator hands each request to one client
            if time.perf_counter() - started > time_limit:
                return
            results.append(send(url, body))

    def flooder(first):
        for bad in itertools.islice(itertools.cycle(bad_bodies()), first, None):
            if done.is_set():
                return
            bad_results.append(send(url, bad))

    # Each flooder starts at another kind of bad request, so all kinds are in flight at once.
    flooders = [threading.Thread(target=flooder, args=(index,)) for index in range(flood)]
    for thread in flooders:
        thread.start()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.perf_counter() - started
    done.set()
    for thread in flooders:
        thread.join()
    return results, bad_results, wall


def status_counts(results):
    """'N x HTTP 200, M x no answer', by status."""
    counts = collections.Counter(status for status, _ in results)
    return ", ".join(f"{count} x {'no answer' if status is None else f'HTTP {status}'}"
                     for status, count in sorted(counts.items(), key=lambda item: item[0] or 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds after which no request starts")
    parser.add_argument("--photo-size", default="640x480", help="WxH of the photo sent (default: %(default)s)")
    parser.add_argument("--flood", type=int, default=0, metavar="F",
                        help="clients sending bad requests without pause beside the good ones (default: none)")
    parser.add_argument("--serve-from", type=Path, metavar="DIR",
                        help="run chroma serve from the chroma package in DIR (a checkout of another commit)")
    parser.add_argument("--smoke", action="store_true", help="20 requests of a small photo to a 32-px U-Net")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.photo_size = 20, "64x48"
    size = tuple(int(side) for side in args.photo_size.split("x"))
    for line in machine_lines():
        print(line)
    with served_unet(args.smoke, args.serve_from) as url:
        results, bad_results, wall = load(url, photo_jpeg(size), args.requests, args.clients, args.time_limit,
                                          args.flood)
    latencies = sorted(seconds for _, seconds in results)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    answered_200 = sum(1 for status, _ in results if status == 200) / len(results)
    beside = f" beside {args.flood} clients of bad requests" if args.flood else ""
    served_by = f" from {args.serve_from}" if args.serve_from else ""
    print(f"chroma serve{served_by}, colorize_encoded, {size[0]}x{size[1]} JPEG, {args.clients} clients{beside}: "
          f"{len(results)} of {args.requests} requests answered ({status_counts(results)}) in {wall:.1f} s: "
          f"{len(results) / wall:.2f} requests/s, {answered_200:.1%} answered 200, "
          f"latency p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s")
    if args.flood:
        bad_latencies = [seconds for _, seconds in bad_results]
        print(f"bad requests: {len(bad_results)} sent ({status_counts(bad_results)}): "
              f"{len(bad_results) / wall:.1f} requests/s, latency p50 {statistics.median(bad_latencies):.3f} s")


if __name__ == "__main__":
    main()
