"""`chroma serve`: TensorFlow Serving's REST API over real HTTP on 127.0.0.1, its limits, and its page in a browser."""

import asyncio
import base64
import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma.serve import ModelServer, application
from conftest import gif_screen_smaller_than_its_frame, two_frame_jpeg
from helpers import b64, call, chroma_serve, png_bomb, serving_in_a_thread, tiny_unet_exported

pytestmark = pytest.mark.xdist_group("serve")  # the tests share one server

PHOTO = skimage.data.coffee()[::8, ::8]  # 50x75
MAX_BODY_MIB = 1
MAX_PIXELS = 1_000_000
MAX_INSTANCES = 4
MAX_REQUEST_PIXELS = 16_384  # the page's 4 variations of a PHOTO or of a 64x64 photo pass; 3 photos of 100x75 do not


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return tiny_unet_exported(tmp_path_factory)


@pytest.fixture(scope="module")
def model_server(saved_model):
    """The SavedModel loaded as `chroma serve --max-pixels MAX_PIXELS --max-instances MAX_INSTANCES
    --max-request-pixels MAX_REQUEST_PIXELS` serves it."""
    return ModelServer(saved_model, max_pixels=MAX_PIXELS, max_instances=MAX_INSTANCES,
                       max_request_pixels=MAX_REQUEST_PIXELS)


@pytest.fixture(scope="module")
def server(model_server):
    """`chroma serve --max-body-mib MAX_BODY_MIB --max-pixels MAX_PIXELS`'s application; its base URL."""
    with serving_in_a_thread(model_server, MAX_BODY_MIB) as base:
        yield base


@pytest.mark.slow("starts `chroma serve` in a process of its own, which loads TensorFlow again; the fast tier "
                  "serves the same application in a thread")
def test_chroma_serve_starts_from_the_command_line_with_its_limits(saved_model, tmp_path):
    with chroma_serve(saved_model, "--max-body-mib", str(MAX_BODY_MIB), "--max-pixels", str(MAX_PIXELS),
                      log=tmp_path / "stderr.txt") as (_, base):
        assert base.startswith("http://127.0.0.1:")
        predict = f"{base}/v1/models/tiny_unet:predict"
        assert call(predict, {"instances": [b64(png_bytes(PHOTO))]})[0] == 200
        status, answer = call(predict, {"instances": [b64(png_bomb(16000))]})
        assert status == 400 and f"over this server's limit of {MAX_PIXELS} pixels" in answer["error"]
        status, answer = call(predict, {"instances": [b64(os.urandom(MAX_BODY_MIB * 1024 * 1024))]})
        assert status == 413 and f"over this server's limit of {MAX_BODY_MIB} MiB" in answer["error"]


class Busy(tf.Module):
    """A SavedModel whose prediction takes as long as asked: `steps` products of two 1000x1000 matrices."""

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32)])
    def __call__(self, steps):
        product = tf.eye(1000)
        product = tf.while_loop(lambda index, _: index < steps[0], lambda index, value: (
            index + 1, tf.linalg.normalize(value @ tf.ones((1000, 1000)))[0]), (0, product))[1]
        return {"total": tf.reduce_sum(product)[None]}


@pytest.mark.slow("starts `chroma serve` in a process of its own and stops it in the middle of a long prediction")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_server_within_seconds_while_a_prediction_runs(tmp_path, stop):
    busy = Busy()
    tf.saved_model.save(busy, str(tmp_path / "busy"), signatures={"serving_default": busy.__call__})
    with chroma_serve(tmp_path / "busy") as (process, base):
        def predict_for_minutes():  # still running when the signal comes; its connection then closes
            with contextlib.suppress(OSError):
                call(f"{base}/v1/models/busy:predict", {"instances": [100_000]})

        threading.Thread(target=predict_for_minutes, daemon=True).start()
        time.sleep(2)
        process.send_signal(stop)
        started = time.perf_counter()
        assert process.wait(timeout=20) == 0
        assert time.perf_counter() - started < 10


def test_status_and_metadata_answer_as_tensorflow_serving(server):
    status, answer = call(f"{server}/v1/models/tiny_unet")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, answer = call(f"{server}/v1/models/tiny_unet/versions/1/metadata")
    assert status == 200 and answer["model_spec"]["name"] == "tiny_unet"
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "colorize_encoded", "colorize_samples_encoded"} <= set(signatures)
    image_bytes = signatures["serving_default"]["inputs"]["image_bytes"]
    assert image_bytes["dtype"] == "DT_STRING" and image_bytes["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signatures["colorize_encoded"]["outputs"]["colorized_bytes"]["dtype"] == "DT_STRING"


def test_predict_in_row_and_columnar_formats_gives_the_saved_models_colours(server, model_server):
    signatures = model_server.signatures
    expected = signatures["serving_default"](image_bytes=tf.constant([png_bytes(PHOTO)]))["colorized"][0].numpy()

    status, answer = call(f"{server}/v1/models/tiny_unet:predict", {"instances": [b64(png_bytes(PHOTO))]})
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["predictions"], np.uint8), expected[None])

    status, answer = call(f"{server}/v1/models/tiny_unet:predict", {
        "signature_name": "colorize_encoded", "instances": [{"image_bytes": b64(png_bytes(PHOTO))}]})
    assert status == 200
    png = base64.b64decode(answer["predictions"][0]["b64"])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), expected)

    status, answer = call(f"{server}/v1/models/tiny_unet:predict", {
        "signature_name": "colorize_samples_encoded", "inputs": {"image_bytes": b64(png_bytes(PHOTO)), "samples": 2}})
    assert status == 200 and len(answer["outputs"]) == 2
    first, second = (np.asarray(Image.open(io.BytesIO(base64.b64decode(item["b64"])))) for item in answer["outputs"])
    assert first.shape == PHOTO.shape and np.abs(first.astype(int) - second).mean() > 0.5  # dropout: two colourings


def test_bad_requests_get_json_errors_while_a_good_one_is_served(server):
    predict = f"{server}/v1/models/tiny_unet:predict"
    photo_in_39_lists = b64(png_bytes(PHOTO))
    for _ in range(39):
        photo_in_39_lists = [photo_in_39_lists]
    bad = {
        "garbage bytes": (predict, {"instances": [b64(b"not an image at all")]}, 400,
                          "not a photo chroma reads (an unknown format; it reads JPEG, PNG, GIF, BMP, WebP)"),
        "bomb": (predict, {"instances": [b64(png_bomb(16000))]}, 400,
                 f"image of 16000x16000 pixels is over this server's limit of {MAX_PIXELS} pixels"),
        "over-size upload": (predict, {"instances": [b64(os.urandom(MAX_BODY_MIB * 1024 * 1024))]}, 413,
                             f"over this server's limit of {MAX_BODY_MIB} MiB"),
        "not base64": (predict, {"instances": [{"b64": "***"}]}, 400, "invalid base64"),
        "no instances": (predict, {"signature_name": "serving_default"}, 400, "either 'instances'"),
        "unknown signature": (predict, {"signature_name": "nope", "instances": [b64(b"x")]}, 400,
                              "\"nope\" not found"),
        "photos of two sizes": (predict, {"instances": [b64(png_bytes(PHOTO)), b64(png_bytes(PHOTO[:20]))]}, 400,
                                "differ in size"),
        "unknown model": (f"{server}/v1/models/other:predict", {"instances": [b64(b"x")]}, 404,
                          "Servable not found"),
        "signature name not a string": (predict, {"signature_name": ["serving_default"], "instances": [1]}, 400,
                                        "'signature_name' must be a string, got a list"),
        "two frame headers": (predict, {"instances": [b64(two_frame_jpeg(PHOTO[:16, :24]))]}, 400,
                              "Invalid JPEG data"),
        "a GIF's screen hiding its frame": (predict, {"instances": [b64(gif_screen_smaller_than_its_frame(3000))]},
                                            400, f"image of 3000x3000 pixels is over this server's limit of "
                                                 f"{MAX_PIXELS} pixels"),
        "JPEG XL": (predict, {"instances": [b64(b"\xff\x0a" + bytes(64))]}, 400,
                    "not a photo chroma reads (JPEG XL; it reads JPEG, PNG, GIF, BMP, WebP)"),
        "too many samples": (predict, {"signature_name": "colorize_samples_encoded", "inputs": {
            "image_bytes": b64(png_bytes(PHOTO)), "samples": 2**31 - 1}}, 400,
            f"2147483647 samples are over this server's limit of {MAX_INSTANCES} per request"),
        "samples over the pixels per request": (predict, {"signature_name": "colorize_samples_encoded", "inputs": {
            "image_bytes": b64(png_bytes(np.tile(PHOTO, (2, 1, 1)))), "samples": MAX_INSTANCES}}, 400,
            f"limit of {MAX_REQUEST_PIXELS} pixels per request"),
        # TensorFlow crashed the process on a string tensor of 33 to 64 dimensions.
        "a photo in 40 dimensions": (predict, {"instances": [photo_in_39_lists]}, 400,
                                     "has more dimensions than the signature's 1"),
        "quality over int32": (predict, {"signature_name": "colorize_encoded_as", "instances": [
            {"image_bytes": b64(png_bytes(PHOTO)), "format": "jpeg", "quality": 2**40}]}, 400,
            "holds integers outside int32's"),
        "too many instances": (predict, {"instances": [b64(b"x")] * (MAX_INSTANCES + 1)}, 400,
                               f"5 instances are over this server's limit of {MAX_INSTANCES} per request"),
        "too many pixels together": (predict, {"instances": [b64(png_bytes(np.tile(PHOTO, (2, 1, 1))))] * 3}, 400,
                                     f"limit of {MAX_REQUEST_PIXELS} pixels per request"),
    }
    answers = {}

    def send(name, url, body):
        answers[name] = call(url, body)

    threads = [threading.Thread(target=send, args=(name, url, body)) for name, (url, body, _, _) in bad.items()]
    threads.append(threading.Thread(target=send, args=("good", predict, {
        "signature_name": "colorize_encoded", "instances": [b64(png_bytes(PHOTO))]})))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (_, _, status, message) in bad.items():
        assert answers[name][0] == status, (name, answers[name])
        assert message in answers[name][1]["error"], (name, answers[name])
    assert answers["good"][0] == 200 and "b64" in answers["good"][1]["predictions"][0]
    status, answer = call(predict, data=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = call(predict, data=b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nested too deeply" in answer["error"]
    # What a web page could send without the server's consent: a form or text/plain POST, or another charset.
    status, answer = call(predict, {"instances": [b64(png_bytes(PHOTO))]}, content_type="text/plain")
    assert status == 415 and "must be Content-Type: application/json" in answer["error"]
    status, answer = call(predict, {"instances": [1]}, content_type="application/json; charset=rot13")
    assert status == 415 and "must be UTF-8, got charset='rot13'" in answer["error"]
    # A compressed body is refused from its header, before it is read and inflated (1 MB of gzip can be 1 GB).
    status, answer = call(predict, data=gzip.compress(json.dumps({"instances": [1]}).encode()),
                          headers={"Content-Encoding": "gzip"})
    assert status == 415 and "must not be compressed, got Content-Encoding 'gzip'" in answer["error"]
    # A page whose own name resolves to 127.0.0.1 (DNS rebinding) still sends its name.
    port = server.rsplit(":", 1)[1]
    status, answer = call(f"{server}/v1/models/tiny_unet", host=f"evil.example:{port}")
    assert status == 403 and "Host 'evil.example:" in answer["error"] and "--allow-host" in answer["error"]
    assert call(f"{server}/v1/models/tiny_unet", host=f"localhost:{port}")[0] == 200
    assert call(f"{server}/v1/models/tiny_unet")[0] == 200  # still serving


def test_allow_host_adds_the_names_a_server_answers_to():
    from aiohttp.test_utils import make_mocked_request

    from chroma.serve import answers_to

    request = make_mocked_request("GET", "/", headers={"Host": "colour.example:8501"})
    assert answers_to(request, ("colour.example",)) and not answers_to(request, ())
    assert answers_to(make_mocked_request("GET", "/", headers={"Host": "[::1]:8501"}), ())


def test_requests_over_the_limits_wait_then_get_503_or_504(tmp_path):
    """One prediction at a time, one request waiting: a third is turned away at once; a slow one times out, and
    its turn comes back when its work ends."""
    # predict is replaced below, so the model is never run: an empty SavedModel loads at once, the U-Net in seconds.
    tf.saved_model.save(tf.Module(), str(tmp_path / "tiny_unet"))
    server = ModelServer(tmp_path / "tiny_unet", max_in_flight=1, max_waiting=1, timeout=1.0)
    slow = threading.Event()

    def run(body):
        if body.get("slow"):
            slow.wait(5)
        return json.dumps({"predictions": ["done"]})

    server.prepare, server.run = (lambda body: body), run

    async def scenario():
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(application(server))) as client:
            url = "/v1/models/tiny_unet:predict"
            running = asyncio.create_task(client.post(url, json={"slow": True, "instances": [1]}))
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(client.post(url, json={"instances": [1]}))
            await asyncio.sleep(0.2)
            turned_away = await client.post(url, json={"instances": [1]})
            answers = [await task for task in (running, waiting)]
            slow.set()
            await asyncio.sleep(0.2)
            afterwards = await client.post(url, json={"instances": [1]})
            return [(r.status, await r.json()) for r in (turned_away, *answers, afterwards)]

    turned_away, running, waiting, afterwards = asyncio.run(scenario())
    assert turned_away[0] == 503 and "busy" in turned_away[1]["error"]
    assert running[0] == 504 and "longer than this server's limit of 1 s" in running[1]["error"]
    assert waiting[0] == 504
    assert afterwards == (200, {"predictions": ["done"]})


def chromium_and_driver():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        message = "needs Debian's chromium and chromium-driver (.ci/run installs them)"
        if os.environ.get("CHROMA_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.mark.slow("starts headless Chromium, which only CI is sure to have (.ci/run installs it)")
def test_the_page_colorizes_a_dropped_photo_in_a_real_browser(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium_and_driver()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"{server}/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
        # Dropped: a drop event carrying the photo, as a file dragged from the desktop brings.
        driver.execute_script("""
            const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "coffee.png", {type: "image/png"}));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer}));
        """, base64.b64encode(png_bytes(PHOTO)).decode())
        # Picked: the file input, as a click on "Choose files" gives it.
        picked = tmp_path / "astronaut.jpg"
        Image.fromarray(skimage.data.astronaut()[::8, ::8]).save(picked)
        driver.find_element(By.ID, "pick").send_keys(str(picked))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".compare img.after")) == 2)
        wait.until(lambda d: all(image.get_attribute("naturalWidth") != "0"
                                 for image in d.find_elements(By.CSS_SELECTOR, ".compare img.after")))
        sizes = [(int(image.get_attribute("naturalWidth")), int(image.get_attribute("naturalHeight")))
                 for image in driver.find_elements(By.CSS_SELECTOR, ".compare img.after")]
        assert sorted(sizes) == [(64, 64), (75, 50)]  # each at its full size
        download = driver.find_elements(By.CSS_SELECTOR, "a.download")
        assert {link.get_attribute("download") for link in download} == {"coffee_colorized.png",
                                                                          "astronaut_colorized.png"}
        driver.find_element(By.CSS_SELECTOR, ".photo button").click()  # 4 variations: dropout kept on
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".variations img")) == 4)
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        assert not driver.find_elements(By.CSS_SELECTOR, ".error")
    finally:
        driver.quit()
