"""`chroma serve` against hostile requests (issue 28, rows 2 to 5, its "lower risk" list and what the fuzz test
found): what each is answered, how fast, and whether the server lives through it.

    .venv/bin/python benchmarks/serve_probes.py                              # this checkout's server
    .venv/bin/python benchmarks/serve_probes.py --serve-from /tmp/before28   # an earlier checkout's server

The model is paper nampouri's U-Net generator at 32 px with random weights (as benchmarks/serve.py --smoke), so a
prediction is quick; it is exported by this checkout and served by `python -m chroma.cli serve --max-pixels 10000
--timeout 10` (every other flag at its default: one prediction at a time, 16 waiting, 64 MiB bodies) in a process
of its own. The probes are sent one after another, in the order of the issue's table. For each, one line:

    probe name: HTTP status (or "no answer", "connection reset") in seconds: the answer's first 150 characters
        | server up, peak memory (VmHWM) so far and resident memory (VmRSS) now, in MB

with "(not JSON)" after an answer that is not JSON. A probe of many requests says what each part was answered.
A server that died is named so, with its exit (a signal: SIGSEGV ...), and started again for the remaining probes;
so is one still busy 600 s after the 8-million-instances probe (an earlier server went on predicting past its 504).
Then one good request (a 64x48 JPEG to colorize_encoded, "serving afterwards: 200") and the last 20 lines of the
server's stderr, where its tracebacks are (--log FILE keeps all of it).

--serve-from DIR runs `chroma serve` from the chroma package in DIR (say a checkout of 095eefd, before issue 28's
checks) on the model this checkout exported, as benchmarks/serve.py does.
"""

import argparse
import base64
import collections
import http.client
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

from colorize_throughput import paper_colorizer  # noqa: E402
from machine_info import machine_lines  # noqa: E402
from serve import photo_jpeg, start_server  # noqa: E402
from serve_worst_case import jpeg_of, with_scans  # noqa: E402

SERVE_FLAGS = ["--max-pixels", "10000", "--timeout", "10"]
TIMEOUT = 30.0  # seconds any one HTTP call may take, but those below
LONG_TIMEOUT = 150.0  # the 8-million-instances request's
BUSY_LIMIT = 600.0  # seconds to wait for a server still predicting a timed-out request before restarting it
BIG_BODY = 60_000_000  # bytes: under the default --max-body-mib of 64 MiB (67,108,864 bytes)


# --- the server -------------------------------------------------------------------------------------------------

class Server:
    """`chroma serve` SERVE_FLAGS on `model` (from the chroma package in `serve_from` if given), its stderr appended
    to `log_path`; watched every 0.2 s for its memory, so the peak of a process that died is still known."""

    def __init__(self, model, log_path, serve_from=None):
        self.model, self.log_path, self.serve_from = Path(model), log_path, serve_from
        self.process = None

    def start(self):
        # serve.py's default --max-waiting 64 would change row 4: this script's own flags.
        with open(self.log_path, "a") as log:
            self.process, self.url = start_server(self.model, log, self.serve_from, SERVE_FLAGS)
        self.peak_mb = self.rss_mb = 0.0
        self.read_memory(self.process.pid)
        threading.Thread(target=self.watch, args=(self.process,), daemon=True).start()

    def watch(self, process):
        while process.poll() is None:
            self.read_memory(process.pid)
            time.sleep(0.2)

    def read_memory(self, pid):
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            self.peak_mb = max(self.peak_mb, int(fields["VmHWM"].split()[0]) / 1024)
            self.rss_mb = int(fields["VmRSS"].split()[0]) / 1024
        except (OSError, KeyError, ValueError):  # gone, or a zombie without memory lines
            pass

    def alive(self, grace=0.0):
        """True while the process runs; `grace` seconds given to one that is dying (a crash takes a moment)."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return True
        return False

    def exit_words(self):
        code = self.process.returncode
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s (an earlier server waited up to 60 s for a prediction in flight)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- HTTP ------------------------------------------------------------------------------------------------------

Answer = collections.namedtuple("Answer", "status seconds text")


def post(url, body, headers=None, timeout=TIMEOUT):
    """POST `body` (bytes, or an iterable of byte chunks, sent chunked) with `headers` (Content-Type
    application/json unless given): an Answer with the HTTP status, or words when none came."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", **(headers or {})}
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        try:
            connection.request("POST", parts.path, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413 ...) and closed before the body was sent: read its answer
        response = connection.getresponse()
        return Answer(response.status, time.perf_counter() - started, response.read())
    except TimeoutError:
        return Answer(f"no answer in {timeout:g} s", time.perf_counter() - started, b"")
    except ConnectionResetError:
        return Answer("connection reset", time.perf_counter() - started, b"")
    except ConnectionRefusedError:
        return Answer("connection refused", time.perf_counter() - started, b"")
    except (http.client.HTTPException, OSError) as error:  # RemoteDisconnected: closed without an answer
        return Answer(f"no answer ({type(error).__name__})", time.perf_counter() - started, b"")
    finally:
        connection.close()


def describe(answer):
    """'HTTP 400 in 0.01 s: {"error": ...}', the answer cut at 150 characters, '(not JSON)' after one that is not."""
    status = f"HTTP {answer.status}" if isinstance(answer.status, int) else answer.status
    if not answer.text:
        return f"{status} in {answer.seconds:.2f} s, empty answer"
    text = answer.text.decode("utf-8", "replace").replace("\n", " ")
    try:
        json.loads(answer.text)
        not_json = ""
    except ValueError:
        not_json = " (not JSON)"
    return f"{status} in {answer.seconds:.2f} s: {text[:150]}{'...' if len(text) > 150 else ''}{not_json}"


def counts(answers):
    """'20 x HTTP 400, 5 x HTTP 200'."""
    tally = collections.Counter(f"HTTP {a.status}" if isinstance(a.status, int) else a.status for a in answers)
    return ", ".join(f"{count} x {status}" for status, count in tally.most_common())


def at_once(url, bodies, timeout=TIMEOUT):
    """The Answers to `bodies` POSTed all at once, one thread each, in their order."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: post(url, body, timeout=timeout), bodies))


# --- what is sent ----------------------------------------------------------------------------------------------

def b64(data):
    return base64.b64encode(data).decode()


def encoded(image, image_format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def request(signature, *photos):
    """The JSON body of a request to `signature` of `photos` in the row format."""
    return json.dumps({"signature_name": signature, "instances": [{"b64": b64(photo)} for photo in photos]}).encode()


GOOD_JPEG = photo_jpeg((64, 48))
GOOD = request("colorize_encoded", GOOD_JPEG)
TINY_PNG = encoded(Image.new("RGB", (1, 1), (90, 90, 90)), "PNG")


def gif_lying_screen():
    gif = bytearray(encoded(Image.new("P", (3000, 3000)), "GIF"))
    gif[6:10] = struct.pack("<HH", 1, 1)  # the logical screen: 1x1; the frame stays 3000x3000
    return bytes(gif)


def webp_without_chunk_header():
    webp = encoded(Image.new("RGB", (3000, 3000), (40, 80, 120)), "WEBP", lossless=True)
    assert webp[12:16] == b"VP8L", webp[:20]
    bare = bytearray(webp[:12] + webp[20:])  # RIFF....WEBP, then the VP8L bitstream without "VP8L" and its size
    bare[4:8] = struct.pack("<I", len(bare) - 8)
    return bytes(bare)


def jpeg_xl():
    with tempfile.TemporaryDirectory(prefix="chroma-probe-jxl-") as folder:
        Image.new("RGB", (3000, 3000), (40, 80, 120)).save(Path(folder) / "in.png")
        subprocess.run(["cjxl", "in.png", "out.jxl", "-d", "1"], cwd=folder, check=True, capture_output=True)
        return (Path(folder) / "out.jxl").read_bytes()


def jpeg_two_sofs():
    jpeg = encoded(Image.new("RGB", (24, 16), (200, 100, 50)), "JPEG")
    start = jpeg.index(b"\xff\xc0")
    end = start + 2 + int.from_bytes(jpeg[start + 2:start + 4], "big")
    copy = bytearray(jpeg[start:end])
    copy[5:9] = struct.pack(">HH", 3000, 3000)  # the copy's height and width
    return jpeg[:end] + bytes(copy) + jpeg[end:]


def animated_gif():
    frames = [Image.new("RGB", (100, 100), (8 * index, 0, 0)) for index in range(30)]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40)
    assert Image.open(io.BytesIO(gif)).n_frames == 30
    return gif


def progressive_jpeg_of_scans(scans):
    return with_scans(jpeg_of(96, progressive=True), scans)


def gzip_bomb():
    """~1 MB of gzip that inflates to a JSON prefix and 1 GB of spaces, compressed 1 MB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [compressor.compress(b'{"instances": [')]
    spaces = b" " * 2**20
    chunks += [compressor.compress(spaces) for _ in range(1000)]
    chunks.append(compressor.compress(b"1]}") + compressor.flush())
    return b"".join(chunks)


# --- the probes: each (server) -> its line's words -------------------------------------------------------------

def photo_probe(photo):
    return lambda server: f"{len(photo):,} bytes: {describe(post(server.url, request('colorize_encoded', photo)))}"


def body_probe(body, headers=None):
    return lambda server: describe(post(server.url, body, headers))


def many_tiny_instances(server):
    item = b'{"b64": "' + b64(TINY_PNG).encode() + b'"}'
    count = min(8_000_000, (BIG_BODY - 20) // (len(item) + 1))
    body = b'{"instances": [' + b",".join([item] * count) + b"]}"
    big = post(server.url, body, timeout=LONG_TIMEOUT)
    good = post(server.url, GOOD)
    return (f"N = {count:,} instances of a 1x1 PNG ({len(body) / 1e6:.1f} MB): {describe(big)}; "
            f"a good request right after: {describe(good)}")


def until_free(server):
    """Good requests one after another until one is answered 200; a server still busy after BUSY_LIMIT s is
    restarted (the caller sees it from the words)."""
    started = time.perf_counter()
    answers = []

    def sent():
        return f"{len(answers)} good request{'' if len(answers) == 1 else 's'}"

    while time.perf_counter() - started < BUSY_LIMIT and server.alive():
        answers.append(post(server.url, GOOD))
        if answers[-1].status == 200:
            return f"{sent()} in {time.perf_counter() - started:.1f} s: {counts(answers)}"
        time.sleep(1.0)
    if not server.alive():
        return f"{sent()}: {counts(answers)}; the server died"
    server.stop()
    server.start()
    return (f"{sent()} in {time.perf_counter() - started:.1f} s: {counts(answers)}; "
            f"still busy after {BUSY_LIMIT:g} s: RESTARTED for the remaining probes")


def samples_max(server):
    body = json.dumps({"signature_name": "colorize_samples_encoded",
                       "inputs": {"image_bytes": {"b64": b64(TINY_PNG)}, "samples": 2147483647}}).encode()
    return describe(post(server.url, body))


def twelve_big_bodies(server):
    body = b'{"instances": [{"b64": "' + base64.b64encode(os.urandom(BIG_BODY * 3 // 4 - 21)) + b'"}]}'
    answers = at_once(server.url, [body] * 12, timeout=60.0)
    slowest = max(answer.seconds for answer in answers)
    return (f"12 x {len(body) / 1e6:.1f} MB at once: {counts(answers)}, slowest {slowest:.1f} s; "
            f"peak memory after {server.peak_mb:.0f} MB; first answer {describe(answers[0])}")


def gzip_probe(server):
    bomb = gzip_bomb()
    answer = post(server.url, bomb, {"Content-Encoding": "gzip"})
    return f"{len(bomb) / 1e6:.2f} MB inflating to 1 GB: {describe(answer)}"


def half_malformed(server):
    bad_base64 = json.dumps({"signature_name": "colorize_encoded", "instances": [{"b64": "*** not base64 ***"}]})
    unknown = json.dumps({"signature_name": "no_such_signature", "instances": [{"b64": b64(GOOD_JPEG)}]})
    bad = [body.encode() for body in (bad_base64, unknown) * 13][:25]
    bodies = [body for pair in zip(bad, [GOOD] * 25) for body in pair]  # bad and good in turn
    answers = at_once(server.url, bodies)
    good, malformed = answers[1::2], answers[0::2]
    return (f"25 good: {sum(a.status == 200 for a in good)} x 200, {sum(a.status == 503 for a in good)} x 503 "
            f"({counts(good)}); 25 malformed: {counts(malformed)}; slowest {max(a.seconds for a in answers):.1f} s")


def nested(depth, inner=b""):
    return b'{"instances": ' + b"[" * depth + inner + b"]" * depth + b"}"


PROBES = [
    # Row 2: photos that lie about their size (the server has --max-pixels 10000).
    ("row 2: GIF, screen 1x1, frame 3000x3000", photo_probe(gif_lying_screen())),
    ("row 2: WebP 3000x3000 lossless without its VP8L chunk header", photo_probe(webp_without_chunk_header())),
    ("row 2: JPEG XL 3000x3000", photo_probe(jpeg_xl())),
    ("row 2: JPEG 24x16 with a second SOF0 of 3000x3000", photo_probe(jpeg_two_sofs())),
    ("row 2: animated GIF, 30 frames of 100x100", photo_probe(animated_gif())),
    ("row 2: progressive JPEG 96x96 of 150 scans", photo_probe(progressive_jpeg_of_scans(150))),
    # Row 3: requests that ask for much work.
    ("row 3: serving_default, 8,000,000 instances (fewer: < 60 MB)", many_tiny_instances),
    ("row 3: ... then good requests until one is answered 200", until_free),
    ("row 3: colorize_samples_encoded, samples 2147483647", samples_max),
    # Row 4: memory.
    ("row 4: 12 concurrent 60 MB bodies", twelve_big_bodies),
    ("row 4: gzip body of 1 GB inflated, Content-Encoding: gzip", gzip_probe),
    ("row 4: 50 concurrent requests, half malformed", half_malformed),
    # Row 5: parsing.
    ("row 5: JSON nested 100,000 deep", body_probe(nested(100_000))),
    ("row 5: Content-Type: application/json; charset=rot13",
     body_probe(GOOD, {"Content-Type": "application/json; charset=rot13"})),
    ('row 5: "signature_name": ["serving_default"]', body_probe(json.dumps(
        {"signature_name": ["serving_default"], "instances": [{"b64": b64(GOOD_JPEG)}]}).encode())),
    # Lower risk.
    ("lower risk: text/plain POST of a good body", body_probe(GOOD, {"Content-Type": "text/plain"})),
    ("lower risk: good request with Host: evil.example", body_probe(GOOD, {"Host": "evil.example"})),
    ("lower risk: colorize_image of a uint8 value 300", body_probe(json.dumps(
        {"signature_name": "colorize_image", "inputs": {"image": [[[300, 0, 0]]]}}).encode())),
    ("lower risk: colorize_encoded_as, quality 2**40", body_probe(json.dumps(
        {"signature_name": "colorize_encoded_as",
         "instances": [{"image_bytes": {"b64": b64(GOOD_JPEG)}, "format": "jpeg", "quality": 2**40}]}).encode())),
    # Found by the fuzz test (tests/test_serve_fuzz.py).
    ("fuzz: a string input nested 33 arrays deep", body_probe(nested(33, b'"x"'))),
    ("fuzz: JSON nested 600 deep", body_probe(nested(600))),
    ("fuzz: an integer of 5000 digits", body_probe(b'{"instances": [' + b"1" * 5000 + b"]}")),
    ('fuzz: non-ASCII base64 {"b64": "é"}', body_probe(json.dumps({"instances": [{"b64": "é"}]}).encode())),
    ('fuzz: {"inputs": {}}', body_probe(b'{"inputs": {}}')),
    ("fuzz: Content-Encoding: br on a good body", body_probe(GOOD, {"Content-Encoding": "br"})),
]


def server_words(server):
    """The server's state after a probe; one that died is started again, and the words say so."""
    memory = f"peak {server.peak_mb:.0f} MB, RSS {server.rss_mb:.0f} MB"
    if server.alive(grace=1.0):
        return f"server up, {memory}"
    dead = f"SERVER DIED ({server.exit_words()}; last seen {memory}); restarted for the remaining probes"
    server.start()
    return dead


def checkout_words(folder):
    """'095eefd' or 'f7ba406 with uncommitted changes': the commit the chroma package in `folder` is at."""
    def git(*command):
        return subprocess.run(["git", "-C", str(folder), *command], capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"{git('rev-parse', '--short', 'HEAD')}{' with uncommitted changes' if changed else ''}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-from", type=Path, metavar="DIR",
                        help="run chroma serve from the chroma package in DIR (a checkout of another commit)")
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="keep the server's stderr in FILE (default: a temporary file, removed at the end)")
    args = parser.parse_args()
    for line in machine_lines():
        print(line)
    source = args.serve_from or Path(__file__).resolve().parent.parent
    print(f"chroma serve {' '.join(SERVE_FLAGS)}, from {source} (commit {checkout_words(source)}); model: nampouri's "
          "U-Net at 32 px, random weights", flush=True)
    with tempfile.TemporaryDirectory(prefix="chroma-serve-probes-") as work_dir:
        print("... exporting the U-Net, starting chroma serve", file=sys.stderr, flush=True)
        model = paper_colorizer(Path(work_dir) / "unet", 32)
        log_path = args.log or Path(work_dir) / "serve.log"
        log_path.write_text("")
        server = Server(model, log_path, args.serve_from)
        server.start()
        try:
            warm = post(server.url, GOOD)  # the model's first call
            print(f"first good request (warm-up): {describe(warm)}", flush=True)
            for name, probe in PROBES:
                print(f"{name}: {probe(server)} | {server_words(server)}", flush=True)
            print(f"serving afterwards: {describe(post(server.url, GOOD))} | {server_words(server)}")
        finally:
            server.stop()
        log = log_path.read_text(errors="replace").splitlines()
        print(f"server stderr, last {min(20, len(log))} of {len(log)} lines:")
        for line in log[-20:]:
            print(f"    {line[:300]}")


if __name__ == "__main__":
    main()
