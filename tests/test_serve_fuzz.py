"""`chroma serve` against a few hundred malformed requests and mutated photos, generated from a fixed seed: every
answer is JSON, a 200 or a 4xx, nothing is logged as a fault, and the server goes on serving."""

import gzip
import json
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import skimage.data
from PIL import Image

from conftest import encode
from helpers import b64, call, chroma_serve, tiny_unet_exported

pytestmark = pytest.mark.xdist_group("serve")  # shares the tiny U-Net's export with test_serve.py

REQUESTS = 300
SEED = 28
CLIENTS = 4  # a few requests in flight at once, well under the 16 that may wait for a turn
MAX_PIXELS = 1_000_000
PHOTO = skimage.data.chelsea()[::10, ::10]  # 30x46
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
PHOTOS = {format: encode(Image.fromarray(PHOTO), format) for format in FORMATS}
SIGNATURES = ("serving_default", "colorize_encoded", "colorize_encoded_as", "colorize_samples_encoded")
HOLE = "<hole>"  # a placeholder in a body, replaced by raw JSON text that json.dumps would not write


class Case(NamedTuple):
    kind: str
    data: bytes
    content_type: str = "application/json"
    headers: dict | None = None


class Server(NamedTuple):
    predict: str  # the URL of :predict
    process: subprocess.Popen
    log: Path  # its stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`chroma serve --max-pixels MAX_PIXELS` in a process of its own, so a crash shows as one (a thread of this
    process would take pytest down with it): a mutated header may claim any size, and the limit keeps what the
    server lets through cheap to decode."""
    log = tmp_path_factory.mktemp("serve_fuzz") / "stderr.txt"
    with chroma_serve(tiny_unet_exported(tmp_path_factory), "--max-pixels", str(MAX_PIXELS), log=log) as (
            process, base):
        yield Server(f"{base}/v1/models/tiny_unet:predict", process, log)


# Mutations of a photo file's bytes, in place.


def overwrite_bytes(rng, data):
    """A few bytes set at random, mostly in the first 64, where formats and sizes are read."""
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(min(len(data), rng.choice((64, len(data)))))] = rng.randrange(256)


def extreme_run(rng, data):
    """A run of 0x00, 0x7f, 0x80 or 0xff bytes: sizes and lengths at their limits."""
    start, length = rng.randrange(min(len(data), 256)), rng.randint(1, 8)
    data[start:start + length] = bytes([rng.choice((0x00, 0x7F, 0x80, 0xFF))]) * length


def insert_bytes(rng, data):
    position = rng.randint(0, len(data))
    data[position:position] = rng.randbytes(rng.randint(1, 64))


def delete_bytes(rng, data):
    start = rng.randint(0, len(data))
    del data[start:start + rng.randint(1, 64)]


def truncate(rng, data):
    del data[rng.randint(0, len(data)):]


def splice_header(rng, data):
    """The start of another format's file over this one's."""
    length = rng.randint(2, 64)
    data[:length] = PHOTOS[rng.choice(FORMATS)][:length]


def garbage(rng, data):
    data[:] = rng.randbytes(rng.randint(0, 2048))


MUTATIONS = (overwrite_bytes, extreme_run, insert_bytes, delete_bytes, truncate, splice_header, garbage)


def mutated_photo(rng):
    """One of PHOTOS, intact or after one to three mutations."""
    data = bytearray(PHOTOS[rng.choice(FORMATS)])
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        if data:
            rng.choice(MUTATIONS)(rng, data)
    return bytes(data)


# Request bodies: well formed around a photo, then broken in one way each.


def photo_body(rng, photo):
    """A well-formed :predict body for `photo` in one of the photo signatures, in row or columnar format."""
    signature = rng.choice(SIGNATURES)
    if signature == "colorize_samples_encoded":  # scalar inputs: the columnar format only
        return {"signature_name": signature, "inputs": {"image_bytes": b64(photo), "samples": rng.randint(1, 2)}}
    instance = {"image_bytes": b64(photo)}
    if signature == "colorize_encoded_as":
        instance |= {"format": rng.choice(("png", "jpeg")), "quality": rng.randint(1, 100)}
    elif rng.random() < 0.5:
        instance = instance["image_bytes"]  # a signature of one input takes its value alone
    if rng.random() < 0.5:
        return {"signature_name": signature, "instances": [instance]}
    columns = {name: [value] for name, value in instance.items()} if "image_bytes" in instance else [instance]
    return {"signature_name": signature, "inputs": columns}


def good_body(rng):
    return photo_body(rng, PHOTOS[rng.choice(FORMATS)])


def spots(value):
    """Every (container, key) in a JSON structure: where one part of it can be swapped for another."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [spot for key, item in items for spot in ((value, key), *spots(item))]


def with_part_replaced(rng, body, new):
    container, key = rng.choice(spots(body))
    container[key] = new
    return body


def as_json(body, raw=""):
    """`body` as JSON bytes, its HOLE (if any) replaced by the raw text `raw`."""
    return json.dumps(body).replace(json.dumps(HOLE), raw, 1).encode()


def random_text(rng):
    alphabet = "ab/+=:.%-_ \\\"\u00e9\u4e2d\U0001f600\ud800\x00\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice((0, 1, 8, 300))))


def random_value(rng, depth=0):
    """Any JSON value, objects and arrays at most three deep."""
    makers = [lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-2**70, 2**70), lambda: rng.choice(
        (-1, 0, 1, 2, 255, 256)), lambda: rng.uniform(-1e6, 1e6), lambda: random_text(rng)]
    if depth < 3:
        makers += [lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                   lambda: {random_text(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return rng.choice(makers)()


def mutated_photo_request(rng):
    return Case("mutated photo", as_json(photo_body(rng, mutated_photo(rng))))


def truncated_json(rng):
    data = as_json(good_body(rng))
    return Case("truncated JSON", data[:rng.randrange(len(data))])


def overwritten_json(rng):
    data = bytearray(as_json(good_body(rng)))
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return Case("JSON with bytes overwritten", bytes(data))


def wrong_type(rng):
    return Case("a part of the wrong type", as_json(with_part_replaced(rng, good_body(rng), random_value(rng))))


def deep_nesting(rng):
    """A part of a body, or the whole, inside arrays or objects nested deep."""
    # Past NumPy's 32 and 64 dimensions, Python's 1000 frames of recursion, and far past.
    depth = rng.choice((rng.randint(1, 100), rng.randint(100, 1100), 100_000))
    opening, closing = rng.choice((("[", "]"), ('{"a": ', "}")))
    body = good_body(rng)
    if rng.random() < 0.2:
        return Case(f"body nested {depth} deep", (opening * depth + json.dumps(body) + closing * depth).encode())
    container, key = rng.choice(spots(body))
    nested = opening * depth + json.dumps(container[key]) + closing * depth
    container[key] = HOLE
    return Case(f"part nested {depth} deep", as_json(body, nested))


def extra_dimensions(rng):
    """An input's value inside 1 to 70 more arrays: tensors of any rank, past NumPy's 64 dimensions."""
    body = good_body(rng)
    columns = body.get("instances") or body["inputs"]
    key = rng.choice(list(columns)) if isinstance(columns, dict) else 0
    rank = rng.randint(1, 70)
    nested = "[" * rank + json.dumps(columns[key]) + "]" * rank
    columns[key] = HOLE
    return Case(f"{rank} more dimensions", as_json(body, nested))


def extreme_number(rng):
    number = rng.choice((
        str(2**31 - 1), str(-2**31), str(2**31), str(2**63), str(2**64), "1e308", "1e400", "-0.0", "5e-324",
        "NaN", "Infinity", "-Infinity", "9" * rng.choice((20, 400, 4300, 4301, 6000)), "0." + "1" * 5000))
    return Case(f"number {number[:20]} ({len(number)} characters)",
                as_json(with_part_replaced(rng, good_body(rng), HOLE), number))


def wrong_signature(rng):
    body = good_body(rng)
    body["signature_name"] = rng.choice((*SIGNATURES, "colorize_image", "colorize_lab", "colorize_samples",
                                         "colorize_samples_encoded_as", "", random_text(rng)))
    return Case(f"signature {body['signature_name'][:20]!r}", as_json(body))


def wrong_inputs(rng):
    """Inputs missing, unknown or mismatched between instances, or none at all."""
    body = good_body(rng)
    columns = body.get("instances") or body.get("inputs")
    change = rng.choice(("drop", "add", "mismatch", "empty"))
    if change == "empty":
        body[rng.choice(("instances", "inputs"))] = rng.choice(([], {}, [{}], [[]]))
    elif isinstance(columns, dict) and change == "drop":
        del columns[rng.choice(list(columns))]
    elif isinstance(columns, dict):
        columns[random_text(rng)] = random_value(rng)
    elif isinstance(columns[0], dict) and change == "mismatch":
        columns.append({"image_bytes": b64(PHOTOS["PNG"]), "other": 1})
    else:
        columns.append(random_value(rng))
    return Case(f"inputs: {change}", as_json(body))


def bad_base64(rng):
    text = b64(PHOTOS[rng.choice(FORMATS)])["b64"]
    value = rng.choice((
        {"b64": text[:-1]}, {"b64": text + "="}, {"b64": text.replace("+", "-").replace("/", "_")},
        {"b64": text[:10] + random_text(rng) + text[10:]}, {"b64": " " + text}, {"b64": random_text(rng)},
        {"b64": rng.randint(-5, 5)}, {"b64": [text]}, {"b64": text, "extra": 1}, {"b64": None}, {}))
    return Case("bad base64", as_json(with_part_replaced(rng, good_body(rng), value)))


def not_an_object(rng):
    return Case("a body that is not an object", json.dumps(
        rng.choice(([good_body(rng)], "instances", 1, None, True, []))).encode())


def wrong_content_type(rng):
    content_type = rng.choice((
        "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "json",
        "application/json; charset=latin-1", "application/json; charset=", 'application/json; charset="utf-8"',
        "application/json;;;", "application/json; charset=utf-8; charset=ascii", "*/*", "%%%"))
    encoding = rng.choice(("", "", "gzip", "deflate", "br", "identity", "x-unknown"))
    data = as_json(good_body(rng))
    return Case(f"Content-Type {content_type!r}, Content-Encoding {encoding!r}",
                gzip.compress(data) if encoding == "gzip" else data, content_type,
                {"Content-Encoding": encoding} if encoding else {})


def odd_charset(rng):
    """The JSON in another encoding, declared or not, or UTF-8 broken."""
    text = json.dumps(good_body(rng), ensure_ascii=False)
    encoding = rng.choice(("utf-16", "utf-32", "latin-1", "utf-8-sig", "utf-8 broken"))
    if encoding == "utf-8 broken":
        data = text.encode()
        position = rng.randrange(len(data))
        data = data[:position] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80")) + data[position:]
    else:
        data = text.encode(encoding)
    content_type = rng.choice(("application/json", f"application/json; charset={encoding.split()[0]}"))
    return Case(f"JSON in {encoding} as {content_type!r}", data, content_type)


# Each way of making a request, with its weight: mutated photos are most of them.
MALFORMATIONS = {mutated_photo_request: 8, truncated_json: 1, overwritten_json: 1, wrong_type: 2, deep_nesting: 1,
                 extra_dimensions: 1, extreme_number: 2, wrong_signature: 1, wrong_inputs: 1, bad_base64: 1,
                 not_an_object: 1, wrong_content_type: 1, odd_charset: 1}


def malformed_requests(seed, count):
    rng = random.Random(seed)
    makers = rng.choices(list(MALFORMATIONS), weights=list(MALFORMATIONS.values()), k=count)
    return [make(rng) for make in makers]


def answered_well(status, answer):
    """A 200 with predictions or outputs, or a 4xx with an error message, as JSON."""
    if status == 200:
        return isinstance(answer, dict) and bool(answer.keys() & {"predictions", "outputs"})
    return isinstance(status, int) and 400 <= status < 500 and isinstance(answer, dict) and isinstance(
        answer.get("error"), str)


def test_malformed_requests_get_json_200s_or_4xxs_and_the_server_goes_on_serving(server):
    cases = malformed_requests(SEED, REQUESTS)

    def send(case):
        try:
            return case, *call(server.predict, data=case.data, content_type=case.content_type, headers=case.headers)
        except ValueError as error:  # an answer that is not JSON
            return case, "not JSON", str(error)
        except OSError as error:  # no answer
            return case, None, f"{type(error).__name__}: {error}"

    def described(outcome):
        case, status, answer = outcome
        return f"{case.kind}: HTTP {status} {str(answer)[:200]}; request {case.data[:120]!r}"

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(send, cases))
    unanswered = [described(outcome) for outcome in outcomes if outcome[1] is None]
    assert server.process.poll() is None, (  # the request that ended it is among the first unanswered
        f"chroma serve ended with {server.process.poll()}:\n" + "\n".join(unanswered[:CLIENTS]))
    wrong = [described(outcome) for outcome in outcomes if not answered_well(*outcome[1:])]
    assert not wrong, f"{len(wrong)} of {REQUESTS} answers wrong:\n" + "\n".join(wrong)
    # The cases reach the model (200), the checks of a request's values (400) and those of its headers (415).
    assert {200, 400, 415} <= {status for _, status, _ in outcomes}
    # A fault of the server's (a 500) logs a line "chroma serve: ..."; one in aiohttp, a traceback.
    log = server.log.read_text()
    assert not re.search(r"^chroma serve: |Traceback", log, re.MULTILINE), log[-3000:]

    status, answer = call(server.predict, {"instances": [b64(PHOTOS["PNG"])]})
    assert status == 200 and np.array(answer["predictions"]).shape == (1, *PHOTO.shape)
