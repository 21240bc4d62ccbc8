"""`chroma serve`: one exported SavedModel over TensorFlow Serving's REST API, and a page to try it in a browser.

Endpoints, as TensorFlow Serving's (https://www.tensorflow.org/tfx/serving/api_rest), version 1:
  GET  /v1/models/NAME              the model's status
  GET  /v1/models/NAME/metadata     its signatures, inputs and outputs
  POST /v1/models/NAME:predict      {"signature_name": ..., "instances": [...]} (row format) or
                                    {"inputs": ...} (columnar); binary strings as {"b64": ...} both ways,
                                    outputs named *_bytes answered so
  GET  /                            the page: drop or pick photos, see each before and after
(each also under /v1/models/NAME/versions/1). A client written for TensorFlow Serving works against this
server and against `tensorflow/serving` given the same SavedModel.

Limits, each a flag: the size of a request's body; the pixels of a photo (read from its header before
anything is decoded); how many predictions run at once, how many wait for a turn (more get 503) and how
long a request may take (then 504). Every refusal is a JSON {"error": ...}, and the server goes on serving.
"""

import asyncio
import base64
import binascii
import json
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from aiohttp import web

from chroma.data.photo_header import photo_header, size_in_words
from chroma.export import METADATA_FILE, is_saved_model
from chroma.limits import MAX_INSTANCES, MAX_PIXELS, REQUEST_TIMEOUT

PAGE = Path(__file__).parent / "page" / "index.html"
VERSION = "1"  # the one version served, as TF Serving numbers a model folder's versions
DEFAULT_SIGNATURE = "serving_default"
MIB = 1024 * 1024
SHUTDOWN_SECONDS = 2.0  # how long a stopping server lets answers in flight finish
# A body in hand costs about 3 times its size while it is parsed and checked (12 bodies of 60 MB at once held
# 2.6 GB); two at a time keep a flood of them to a few hundred MB, and a small request's check takes milliseconds.
BODIES_AT_ONCE = 2
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# One photo's header, read in a graph: a GIF's blocks are walked in a loop that eager execution would run in Python.
read_photo_header = tf.function(photo_header, input_signature=[tf.TensorSpec((), tf.string)])


class BadRequest(ValueError):
    """A request this server refuses, with the HTTP status it answers and the reason in words."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def json_error(message, status):
    return web.json_response({"error": message}, status=status)


def decode_b64(value):
    """A JSON value with {"b64": ...} objects -> the same with those objects as bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise BadRequest(f"an object in a tensor value must be {{\"b64\": \"...\"}}, got keys {sorted(value)}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:  # ValueError: characters outside ASCII
            raise BadRequest(f"invalid base64: {error}") from error
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    return value


def is_value(item):
    """True for a tensor's value rather than an object of named inputs: anything but a dict, or a {"b64"} one."""
    return not isinstance(item, dict) or set(item) == {"b64"}


def request_columns(body, input_names):
    """A :predict request body -> ({input name: JSON value, stacked on axis 0 for the row format}, row format?)."""
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the request must have either 'instances' (row format) or 'inputs' (columnar format)")
    if "inputs" in body:
        inputs = body["inputs"]
        if is_value(inputs):
            if len(input_names) != 1:
                raise BadRequest(f"the signature has inputs {input_names}: give 'inputs' as an object by name")
            return {input_names[0]: inputs}, False
        return inputs, False
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list")
    if all(is_value(instance) for instance in instances):
        if len(input_names) != 1:
            raise BadRequest(f"the signature has inputs {input_names}: give each instance as an object by name")
        return {input_names[0]: instances}, True
    if not all(isinstance(instance, dict) and not is_value(instance) for instance in instances):
        raise BadRequest("'instances' must all be values, or all objects of named inputs")
    names = set(instances[0])
    if any(set(instance) != names for instance in instances):
        raise BadRequest("every instance must name the same inputs")
    return {name: [instance[name] for instance in instances] for name in names}, True


def list_depth(value, limit):
    """How deeply lists nest in a JSON value, counted no deeper than `limit` (nothing past it is walked)."""
    if not isinstance(value, list) or limit == 0:
        return 0
    return 1 + max((list_depth(item, limit - 1) for item in value), default=0)


def as_tensor(name, value, spec):
    """One input's JSON value -> a tensor of the signature's dtype, its shape checked against the signature's."""
    # Refused before anything else walks it: TensorFlow crashes the process on a string value of 33 dimensions.
    if list_depth(value, spec.shape.rank + 1) > spec.shape.rank:
        raise BadRequest(f"input {name!r} has more dimensions than the signature's {spec.shape.rank}")
    value = decode_b64(value)
    try:
        if spec.dtype == tf.string:
            tensor = tf.constant(np.array(value, dtype=object), dtype=tf.string)
        else:
            check_range(name, value, spec.dtype)
            tensor = tf.constant(value, dtype=spec.dtype)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise BadRequest(f"input {name!r} is not a {spec.dtype.name} tensor: {error}") from error
    if not spec.shape.is_compatible_with(tensor.shape):
        raise BadRequest(f"input {name!r} has shape {tensor.shape.as_list()}, the signature takes "
                         f"{[None if size is None else size for size in spec.shape.as_list()]}")
    return tensor


def check_range(name, value, dtype):
    """Refuses integers the signature's integer dtype cannot hold, which TensorFlow would wrap (uint8 300 -> 44)."""
    if not dtype.is_integer:
        return
    values = np.asarray(value)
    if values.size and values.dtype.kind in "iu" and (values.min() < dtype.min or values.max() > dtype.max):
        raise BadRequest(f"input {name!r} holds integers outside {dtype.name}'s {dtype.min}..{dtype.max}")


def to_json(name, tensor):
    """An output tensor -> its JSON value: strings named *_bytes as {"b64": ...} (TF Serving's rule), text as text."""
    array = tensor.numpy()
    if tensor.dtype != tf.string:
        return array.tolist()
    if name.endswith("_bytes"):
        encode = np.vectorize(lambda item: {"b64": base64.b64encode(item).decode("ascii")}, otypes=[object])
    else:
        encode = np.vectorize(lambda item: item.decode("utf-8", "replace"), otypes=[object])
    return encode(array).tolist() if array.size else array.tolist()


def answer(outputs, row_format):
    """Outputs by name -> TF Serving's response: {"predictions": ...} for rows, {"outputs": ...} for columns; one
    output unnamed, several by name (per instance in rows)."""
    values = {name: to_json(name, tensor) for name, tensor in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    count = len(next(iter(values.values())))
    return {"predictions": [{name: value[index] for name, value in values.items()} for index in range(count)]}


def error_reason(message):
    """A TensorFlow error's message without the graph's trail (node names, where it was defined): what went wrong."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "File ", "[[")
    lines = (line.split("\t [[")[0].strip() for line in message.splitlines())
    return " ".join(line for line in lines if line and not line.startswith(noise)) or message.strip()


def tensor_shape_json(shape):
    """A TensorShape as TF Serving's metadata writes a TensorShapeProto."""
    if shape.rank is None:
        return {"dim": [], "unknown_rank": True}
    return {"dim": [{"size": str(-1 if size is None else size), "name": ""} for size in shape.as_list()],
            "unknown_rank": False}


def signature_metadata(function):
    def tensors(named, prefix):
        return {name: {"dtype": f"DT_{spec.dtype.name.upper()}", "tensor_shape": tensor_shape_json(spec.shape),
                       "name": f"{prefix}{name}:0"} for name, spec in named.items()}

    return {"inputs": tensors(function.structured_input_signature[1], "serving_default_"),
            "outputs": tensors(function.structured_outputs, "StatefulPartitionedCall:"),
            "method_name": "tensorflow/serving/predict"}


class ModelServer:
    """The SavedModel in `model_dir`, served under `name` with the limits of `chroma serve`'s flags."""

    def __init__(self, model_dir, name=None, max_pixels=None, max_in_flight=1, max_waiting=16,
                 timeout=REQUEST_TIMEOUT, max_instances=MAX_INSTANCES, max_request_pixels=MAX_PIXELS):
        model_dir = Path(model_dir)
        if not is_saved_model(model_dir):
            raise FileNotFoundError(f"{model_dir} is not a SavedModel folder (no saved_model.pb); make one with "
                                    "'chroma export'")
        self.name = name or model_dir.name
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"model name {self.name!r}: use letters, digits, '.', '_' and '-' (it is part of URLs)")
        self.signatures = dict(tf.saved_model.load(str(model_dir)).signatures)
        chroma_json = model_dir / METADATA_FILE
        self.chroma_metadata = json.loads(chroma_json.read_text()) if chroma_json.is_file() else {}
        self.max_pixels = max_pixels
        self.max_instances = max_instances
        self.max_request_pixels = max_request_pixels
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.turns = asyncio.Semaphore(max_in_flight)
        self.reading = asyncio.Semaphore(BODIES_AT_ONCE)
        self.waiting = 0
        self.executor = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="predict")

    def status(self):
        return {"model_version_status": [
            {"version": VERSION, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": VERSION},
            "metadata": {"signature_def": {"signature_def": {
                name: signature_metadata(function) for name, function in self.signatures.items()}}},
            "chroma": self.chroma_metadata,
        }

    def check_pixels(self, inputs):
        """Refuses, from their headers, a photo (any *_bytes string input) chroma does not decode or of more pixels
        than the server's limit, and a request whose colorizations together have more than its limit per request
        (`samples` copies of a photo count `samples` times)."""
        copies = int(inputs["samples"]) if "samples" in inputs else 1
        if copies > self.max_instances:
            raise BadRequest(f"{copies} samples are over this server's limit of {self.max_instances} per request "
                             "(chroma serve --max-instances)")
        total = 0
        for name, tensor in inputs.items():
            if tensor.dtype != tf.string or not name.endswith("_bytes"):
                continue
            for photo in tf.reshape(tensor, [-1]):
                header = read_photo_header(photo)
                refusal = header.refusal.numpy().decode()
                if refusal:
                    raise BadRequest(refusal)
                pixels = int(header.pixels)
                if self.max_pixels is not None and pixels > self.max_pixels:
                    raise BadRequest(f"{size_in_words(int(header.width), int(header.height), pixels)} is over this "
                                     f"server's limit of {self.max_pixels} pixels (chroma serve --max-pixels)")
                total += pixels * copies
                if total > self.max_request_pixels:
                    raise BadRequest(f"the request's photos have more than this server's limit of "
                                     f"{self.max_request_pixels} pixels per request "
                                     "(chroma serve --max-request-pixels)")

    def prepare(self, body):
        """A parsed :predict body -> (the signature, its input tensors, row format?): every check a request can
        fail, made before it waits for a turn, so a bad request never holds one a good request needs."""
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise BadRequest(f"'signature_name' must be a string, got a {type(signature_name).__name__}")
        if signature_name not in self.signatures:
            raise BadRequest(f"Serving signature name: \"{signature_name}\" not found in signature def; this model "
                             f"has {sorted(self.signatures)}")
        function = self.signatures[signature_name]
        specs = function.structured_input_signature[1]
        columns, row_format = request_columns(body, sorted(specs))
        instances = max((len(value) if isinstance(value, list) else 1 for value in columns.values()), default=0)
        if instances > self.max_instances:
            raise BadRequest(f"{instances} instances are over this server's limit of {self.max_instances} per "
                             "request (chroma serve --max-instances)")
        if set(columns) != set(specs):
            raise BadRequest(f"signature {signature_name!r} takes inputs {sorted(specs)}, got {sorted(columns)}")
        inputs = {name: as_tensor(name, value, specs[name]) for name, value in columns.items()}
        try:
            self.check_pixels(inputs)
        except tf.errors.InvalidArgumentError as error:  # a photo whose header cannot be read
            raise BadRequest(error_reason(error.message)) from error
        return function, inputs, row_format

    def run(self, prepared):
        """A prepared request -> TF Serving's JSON answer, as text. Runs in the prediction threads; the answer is
        serialised there too, as a large one would hold up every other request in the event loop."""
        function, inputs, row_format = prepared
        try:
            outputs = function(**inputs)
        except tf.errors.InvalidArgumentError as error:
            raise BadRequest(error_reason(error.message)) from error
        return json.dumps(answer(outputs, row_format))

    async def run_predict(self, request):
        """The JSON answer to a :predict request: its body read and checked (prepared) at once, then run in a
        prediction thread once a turn is free; 503 when too many wait, 504 when waiting and predicting outlast the
        timeout.

        A prediction that times out keeps its turn until it ends: the limit counts work running, not answers
        pending, so a slow model cannot pile up threads.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # Bodies are read and checked BODIES_AT_ONCE at a time (the others wait unread), in the default threads,
        # not the prediction ones: decoding base64 and making tensors of a large body is work the event loop
        # should not wait on.
        async with self.reading:
            body = await json_body(request)
            prepared = await loop.run_in_executor(None, self.prepare, body)
        if self.waiting >= self.max_waiting:
            raise BadRequest(f"the server is busy: {self.waiting} requests are waiting; try again later", 503)
        self.waiting += 1
        try:
            await asyncio.wait_for(self.turns.acquire(), self.timeout)
        except asyncio.TimeoutError:
            raise self.timed_out() from None
        finally:
            self.waiting -= 1
        future = loop.run_in_executor(self.executor, self.run, prepared)
        future.add_done_callback(lambda _: self.turns.release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            future.add_done_callback(lambda done: done.exception())  # its late outcome is nobody's: not logged
            raise self.timed_out() from None

    def timed_out(self):
        return BadRequest(f"the request took longer than this server's limit of {self.timeout:g} s "
                          "(chroma serve --timeout)", 504)


async def json_body(request):
    """A :predict request's body, parsed: JSON (RFC 8259: UTF-8) sent as Content-Type application/json, which a
    web page cannot send to this server without its consent (a cross-origin form or a text/plain POST can)."""
    if request.content_type != "application/json":
        raise BadRequest(f"a :predict request must be Content-Type: application/json, got {request.content_type!r}",
                         415)
    if (request.charset or "utf-8").lower() != "utf-8":
        raise BadRequest(f"a :predict request's JSON must be UTF-8, got charset={request.charset!r}", 415)
    # Refused before a byte is read: the server does not inflate bodies (a 1 MB gzip body can inflate to 1 GB).
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BadRequest(f"a :predict request's body must not be compressed, got Content-Encoding {encoding!r}", 415)
    try:
        return json.loads((await request.read()).decode("utf-8"))
    except ValueError as error:  # not UTF-8, not JSON, or an integer of more than 4300 digits
        raise BadRequest(f"the request body is not JSON: {error}") from error
    except RecursionError:
        raise BadRequest("the request body is JSON nested too deeply") from None


def answers_to(request, allowed_hosts):
    """True if a request's Host names this machine's loopback or one of `allowed_hosts` (--allow-host): a web
    page that rebinds its own name to 127.0.0.1 still sends that name, and is refused."""
    try:
        host = request.url.host  # the Host header's name, without its port
    except ValueError:  # a Host header that is no name at all
        return False
    return host is not None and (host in LOOPBACK_NAMES or host.startswith("127.") or host in allowed_hosts)


def application(server, max_body_mib=64, allowed_hosts=()):
    """The aiohttp application serving `server` (a ModelServer); request bodies up to max_body_mib MiB; requests
    whose Host is neither a loopback name nor one of `allowed_hosts` are refused (403)."""
    routes = web.RouteTableDef()
    model_path = r"/v1/models/{name:[^/:]+}{version:(/versions/\d+)?}"

    def served(request):
        name, version = request.match_info["name"], request.match_info["version"]
        if name != server.name or version not in ("", f"/versions/{VERSION}"):
            raise BadRequest(f"Servable not found for request: {'Latest' if not version else 'Specific'}({name}"
                             f"{', ' + version.rsplit('/', 1)[1] if version else ''})", 404)

    @routes.get("/")
    async def page(request):
        html = PAGE.read_text().replace("__MODEL_NAME__", server.name)
        return web.Response(text=html, content_type="text/html")

    @routes.get(model_path)
    async def status(request):
        served(request)
        return web.json_response(server.status())

    @routes.get(model_path + "/metadata")
    async def metadata(request):
        served(request)
        return web.json_response(server.metadata())

    @routes.post(model_path + ":predict")
    async def predict(request):
        served(request)
        return web.Response(text=await server.run_predict(request), content_type="application/json")

    @web.middleware
    async def json_errors(request, handler):
        """Every refusal as TF Serving words them, {"error": message}, with its HTTP status."""
        try:
            if not answers_to(request, allowed_hosts):
                raise BadRequest(f"Host {request.host!r} is not a name this server answers to; chroma serve "
                                 "--allow-host NAME adds one", 403)
            return await handler(request)
        except BadRequest as error:
            return json_error(str(error), error.status)
        except web.HTTPRequestEntityTooLarge:
            return json_error(f"the request body is over this server's limit of {max_body_mib} MiB "
                              "(chroma serve --max-body-mib)", 413)
        except web.HTTPException as error:
            return json_error(f"{error.reason}: {request.method} {request.path}", error.status)
        except Exception as error:  # noqa: BLE001 - a fault of ours: one log line and a JSON answer, never a page
            print(f"chroma serve: {request.method} {request.path}: {type(error).__name__}: {error}"[:500],
                  file=sys.stderr)
            return json_error(f"internal error ({type(error).__name__}); the server goes on serving", 500)

    app = web.Application(client_max_size=max_body_mib * MIB, middlewares=[json_errors])
    app.add_routes(routes)
    return app


def serve(model_dir, host="127.0.0.1", port=8501, name=None, max_body_mib=64, max_pixels=None, max_in_flight=1,
          max_waiting=16, timeout=REQUEST_TIMEOUT, max_instances=MAX_INSTANCES, max_request_pixels=MAX_PIXELS,
          allowed_hosts=()):
    """Serves the SavedModel in model_dir until interrupted; prints where once it listens. The address it listens
    on, unless a wildcard, is a Host it answers to, beside loopback and `allowed_hosts`."""
    allowed_hosts = (*allowed_hosts, *([] if host in ("0.0.0.0", "::", "") else [host]))

    async def main():
        server = ModelServer(model_dir, name, max_pixels, max_in_flight, max_waiting, timeout, max_instances,
                             max_request_pixels)
        # auto_decompress off: a compressed body is refused (json_body), never inflated, even to be drained.
        runner = web.AppRunner(application(server, max_body_mib, allowed_hosts), access_log=None,
                               auto_decompress=False)
        await runner.setup()
        # A prediction in flight is not waited for on the way out: its thread cannot be stopped, and the process
        # ends with it (the `chroma` executable exits without joining threads).
        site = web.TCPSite(runner, host, port, shutdown_timeout=SHUTDOWN_SECONDS)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]  # the port the system chose for --port 0
        base = f"http://{bound_host}:{bound_port}"
        print(f"serving {model_dir} as model {server.name!r}: page {base}/, REST API {base}/v1/models/{server.name} "
              "(Ctrl-C stops)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            server.executor.shutdown(wait=False, cancel_futures=True)

    asyncio.run(main())
    print("stopped", file=sys.stderr)
