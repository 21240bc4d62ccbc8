"""Checks shared by the model tests."""

import asyncio
import base64
import contextlib
import json
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zlib

import keras
import numpy as np
import tensorflow as tf

from chroma import color
from chroma.data import samples
from chroma.models.network_generator import NetworkGenerator


def _as_saved(config):
    """A config as the .keras file stores it: JSON, where tuples become lists."""
    return json.loads(json.dumps(config))


def photo_lab(size, names=("astronaut", "coffee")):
    """Bundled photos resized to size x size -> (scaled L (N,S,S,1), scaled ab (N,S,S,2))."""
    photos = [tf.image.resize(record.image, (size, size)) / 255.0 for record in samples(names).records]
    return color.rgb_to_scaled_lab(tf.stack(photos))


def trainable_count(*owners):
    """How many trainable parameters the layers or models hold together."""
    return sum(int(np.prod(weight.shape)) for owner in owners for weight in owner.trainable_weights)


def assert_reloads_identically(model, inputs, tmp_path):
    """Saving to .keras and loading back gives the same config and the same outputs."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    assert _as_saved(reloaded.get_config()) == _as_saved(model.get_config())
    keras.tree.map_structure(lambda actual, expected: np.testing.assert_allclose(actual, expected, atol=1e-6),
                             reloaded(inputs), model(inputs))
    return reloaded


def ab_of(generator, scaled_l, training=False):
    """A generator's colours for scaled L alone."""
    return generator({"L": scaled_l}, training=training)["ab"]


# Parameter counts from layer sizes, so model tests check the structure rather than a copied number.


def conv(kernel_size, inputs, outputs):
    """A square convolution with bias."""
    return kernel_size * kernel_size * inputs * outputs + outputs


def dense(inputs, outputs):
    return inputs * outputs + outputs


def batch_norm(channels):
    return 4 * channels  # gamma, beta and the two moving statistics


def png_bomb(side):
    """A gray PNG of side x side black pixels: a few hundred KB that decode to side**2 bytes and more."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    compressor, row = zlib.compressobj(9), b"\0" * (side + 1)  # each row: filter type 0, then its pixels
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def tiny_unet_with_dropout(depth=4):
    """A tiny U-Net with dropout, random weights scaled up from N(0, 0.02), so its colours (and dropout's effect)
    show in uint8."""
    from chroma.models.unet import UNetGenerator

    keras.utils.set_random_seed(0)
    generator = UNetGenerator(base_filters=4, depth=depth)
    for weight in generator.trainable_weights:
        weight.assign(weight * 5.0)
    return generator


def spread_colours(generator, scaled_l, spread=0.5):
    """Scales a U-Net's last convolution so that, on scaled_l, its ab before the tanh has standard deviation
    `spread`: an untrained U-Net's N(0, 0.02) weights give ab within a few hundredths of gray, scaling every
    weight saturates the tanh, and either would hide differences. The output block "out" (blocks.output_block)
    is a convolution with bias then tanh, so scaling its kernel and bias scales what enters the tanh exactly."""
    before_tanh = np.arctanh(ab_of(generator, scaled_l).numpy().astype(np.float64))
    factor = spread / before_tanh.std()
    for weight in generator.decoder.get_layer("out").trainable_weights:
        weight.assign(weight * factor)


def tiny_generator():
    """Two convolutions (114 parameters): the cheapest colorizer to save, export or convert."""
    return NetworkGenerator(keras.Sequential([
        keras.Input((None, None, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(2, 3, padding="same", activation="tanh"),
    ]))


# The tiny U-Net's SavedModel, for the modules that serve it (test_serve.py, test_serve_fuzz.py). They share the
# xdist group "serve", so it is made once, on one worker.
_TINY_UNET_EXPORTED = []


def tiny_unet_exported(tmp_path_factory):
    """The SavedModel folder of a tiny U-Net with dropout, so the model has colorize_samples_encoded too; at depth 2
    (dropout in its one decoder block) its eight signatures trace a second sooner than at 4, and two samples of
    test_serve.py's photo still differ by about 3.5 levels on average. Made once in this process, as
    baseline0_exported: read it, never change it."""
    if not _TINY_UNET_EXPORTED:
        from chroma.export import dropout_layers, export_saved_model

        generator = tiny_unet_with_dropout(depth=2)
        assert dropout_layers(generator)
        _TINY_UNET_EXPORTED.append(export_saved_model(generator, tmp_path_factory.mktemp("serve") / "tiny_unet", 16))
    return _TINY_UNET_EXPORTED[0]


def b64(data):
    """Bytes as a JSON value of TensorFlow Serving's REST API."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def call(url, body=None, data=None, content_type="application/json", host=None, headers=None):
    """(HTTP status, parsed JSON answer) of a GET, or of a POST of `body` as JSON (or raw `data`); `host`: the
    Host header, if not the URL's; `headers`: others."""
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type, **(
        {"Host": host} if host else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def chroma_serve(model, *flags, log=None):
    """`chroma serve --model MODEL --port 0 FLAGS...` in a process of its own, its stderr written to the file `log`
    (default: dropped); yields (the process, its base URL) once it listens, and kills it on exit."""
    with open(log, "w") if log else contextlib.nullcontext(subprocess.DEVNULL) as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chroma.cli", "serve", "--model", str(model), "--port", "0", *flags],
            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {model} as model "), line + (log.read_text()[-3000:] if log else "")
        yield process, line.split("page ")[1].split("/,")[0]
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serving_in_a_thread(server, max_body_mib=64):
    """`chroma serve`'s application for a chroma.serve.ModelServer on a free port of 127.0.0.1, run by a thread of
    this process (a `chroma serve` process would start TensorFlow again); yields its base URL."""
    from aiohttp import web

    from chroma.serve import application

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(application(server, max_body_mib), access_log=None, auto_decompress=False)  # as serve
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    host, port = runner.addresses[0][:2]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.run_until_complete(runner.cleanup())
        loop.close()


# baseline0 and its SavedModel, for the modules that serve or read one (test_export.py, test_readme.py). They share
# the xdist group "baseline0", so it is made once, on one worker.
_BASELINE0_EXPORTED = []


def baseline0_exported(tmp_path_factory):
    """(baseline0 fitted on the bundled photos at 32x32, its SavedModel's folder exported at 32): a colorizer with
    plausible colours. One pass of its train step, the counts one epoch of `fit` sums, without tracing `fit`'s loop
    (test_baseline0.py and test_cli.py fit it). Made once in this process, in the session's temporary folder, for
    the module fixtures that call it: read it, never change it. (A session fixture defined in two modules would be
    two fixtures, each made once.)"""
    if not _BASELINE0_EXPORTED:
        from chroma import data
        from chroma.export import export_saved_model
        from chroma.models.baseline0 import MeanColorBaseline

        model = MeanColorBaseline()
        model.compile()
        for batch in data.make_dataset(data.samples(), 32, batch_size=8):
            model.train_step(batch)
        directory = tmp_path_factory.mktemp("baseline0") / "baseline0"
        export_saved_model(model, directory, 32)
        _BASELINE0_EXPORTED.append((model, directory))
    return _BASELINE0_EXPORTED[0]
