"""Exported SavedModels: served without chroma, at the input's full size, keeping its lightness."""

import contextlib
import datetime
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf
import yaml
from PIL import Image

from chroma import cli, data, reports
from chroma.data.decode import decode_photo
from chroma.data.photo_header import photo_header
from chroma.model_card import model_card, scored_result
from chroma.export import dropout_layers, export_saved_model, load_generator, scored_generator, serving_functions
from chroma.models.generator import BatchInput, Generator
from chroma.models.unet import UNetGenerator
from chroma.training import RegressionColorizer
from chroma.models.network_generator import NetworkGenerator
from helpers import ab_of, baseline0_exported, png_bomb, tiny_generator, tiny_unet_with_dropout

IMAGE_SIZE = 32
# With test_readme.py: the session's baseline0 and this module's exports are made once, on one worker.
pytestmark = pytest.mark.xdist_group("baseline0")
# Non-square, odd sizes: any mix-up of height and width or off-by-one resizing shows.
COFFEE = skimage.data.coffee()[:301, :457]


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array, orientation=1):
    """array as JPEG bytes of quality 90 whose EXIF says `orientation` (6: turn a quarter clockwise to show)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """baseline0 fitted on the bundled photos: a colorizer with plausible colours in a second."""
    return baseline0_exported(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """baseline0's SavedModel at IMAGE_SIZE, with the default pixel limit (shared with test_readme.py)."""
    return baseline0_exported(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported))


@pytest.fixture(scope="module")
def tiny_replaced(exported, tmp_path_factory):
    """(tiny_generator, its export at IMAGE_SIZE): exported over a copy of baseline0's SavedModel, which it replaces."""
    directory = tmp_path_factory.mktemp("replaced") / "model"
    shutil.copytree(exported, directory)
    generator = tiny_generator()
    export_saved_model(generator, directory, IMAGE_SIZE)
    return generator, directory


CLI_MAX_PIXELS = COFFEE.shape[0] * COFFEE.shape[1] - 1  # one pixel fewer than COFFEE has


@pytest.fixture(scope="module")
def cli_exported(baseline, tmp_path_factory):
    """`chroma export` of baseline0 saved as base.keras, at size 16, --max-pixels CLI_MAX_PIXELS and no -o, run
    in a folder of its own: (that folder, what it printed). One export, read by both tests of the CLI's export."""
    folder = tmp_path_factory.mktemp("cli_export")
    baseline.save(folder / "base.keras")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(printed):
        monkeypatch.chdir(folder)
        status = cli.main(["export", "--model", "base.keras", "--image-size", "16",
                           "--max-pixels", str(CLI_MAX_PIXELS)])
    assert status == 0
    return folder, printed.getvalue()


def lightness(rgb_uint8):
    return skimage.color.rgb2lab(rgb_uint8)[..., 0]


# serving_default takes "JPEG, PNG, GIF, BMP or WebP bytes" (README): the photo in each, as Pillow writes them.
SERVED_FORMATS = {
    "coffee.png": dict(format="PNG"),
    "coffee.bmp": dict(format="BMP"),
    "coffee.gif": dict(format="GIF"),  # quantised to a 256-colour palette when written; decoded exactly
    "coffee.lossless.webp": dict(format="WEBP", lossless=True),
    "coffee.webp": dict(format="WEBP", quality=90),  # lossy; Pillow and TensorFlow decode it identically (measured)
    "coffee.jpg": dict(format="JPEG", quality=90),
}


@pytest.mark.slow("a fresh TensorFlow process colorizes a 12-megapixel photo and six formats; fast tier, in process: "
                  "test_serving_default_takes_photos_of_one_size_as_shown, test_colorize.py's every-encoding test")
def test_saved_model_serves_encoded_photos_without_chroma(exported, loaded, tmp_path):
    gray = (lightness(COFFEE) * 2.55).astype(np.uint8)[:37, :53]
    for name, options in SERVED_FORMATS.items():
        Image.fromarray(COFFEE).save(tmp_path / name, **options)
    (tmp_path / "gray.png").write_bytes(png_bytes(gray))  # a mode "L" PNG: one channel
    # A phone's 12 megapixels: stored 4000 wide and 3000 high, shown (EXIF orientation 6) 3000 wide and 4000 high.
    phone = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((4000, 3000), Image.Resampling.BILINEAR))
    (tmp_path / "phone.jpg").write_bytes(jpeg_bytes(phone, orientation=6))
    names = [*SERVED_FORMATS, "gray.png"]
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        assert "chroma" not in sys.modules
        serve = tf.saved_model.load({str(exported)!r}).signatures["serving_default"]
        for name in {names!r}:
            image_bytes = open({str(tmp_path)!r} + f"/{{name}}", "rb").read()
            colorized = serve(image_bytes=tf.constant([image_bytes]))["colorized"][0]
            np.save({str(tmp_path)!r} + f"/{{name}}.npy", colorized.numpy())
        # colorize_encoded: the same pixels as PNG, for photos of any sizes in one call.
        encode = tf.saved_model.load({str(exported)!r}).signatures["colorize_encoded"]
        photos = [open({str(tmp_path)!r} + f"/{{name}}", "rb").read() for name in ("coffee.png", "gray.png")]
        for name, png in zip(("coffee.png", "gray.png"), encode(image_bytes=tf.constant(photos))["colorized_bytes"]):
            np.save({str(tmp_path)!r} + f"/{{name}}.encoded.npy", tf.io.decode_png(png).numpy())
        # The 12-megapixel photo: colorize_encoded's PNG against serving_default's array.
        phone = tf.constant([open({str(tmp_path)!r} + "/phone.jpg", "rb").read()])
        served_phone = serve(image_bytes=phone)["colorized"][0]
        phone_png = tf.io.decode_png(encode(image_bytes=phone)["colorized_bytes"][0])
        print("phone:", served_phone.shape.as_list(), "PNG equal:", bool(tf.reduce_all(phone_png == served_phone)))
        try:
            serve(image_bytes=tf.constant(photos))
        except tf.errors.InvalidArgumentError as error:
            print(error.message)
        assert "chroma" not in sys.modules
    """)
    served = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-3000:]  # e.g. the format TensorFlow could not decode
    assert "the photos of one serving_default call differ in size" in served.stdout
    for name in ("coffee.png", "gray.png"):
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.encoded.npy"), np.load(tmp_path / f"{name}.npy"))
    assert "phone: [4000, 3000, 3] PNG equal: True" in served.stdout  # at full resolution, turned upright

    for name in SERVED_FORMATS:
        colorized = np.load(tmp_path / f"{name}.npy")
        assert colorized.shape == COFFEE.shape and colorized.dtype == np.uint8, name
        # The bytes path decodes to what the uint8 signature is given: the pixels Pillow decodes from the file.
        with Image.open(tmp_path / name) as image:
            pixels = np.asarray(image.convert("RGB"))
        expected = loaded.signatures["colorize_image"](image=tf.constant(pixels))["colorized"].numpy()
        np.testing.assert_array_equal(colorized, expected, err_msg=name)
    colorized_gray = np.load(tmp_path / "gray.png.npy")
    assert colorized_gray.shape == gray.shape + (3,)
    assert np.abs(lightness(colorized_gray) - lightness(np.stack([gray] * 3, axis=-1))).mean() < 1.0


@pytest.mark.slow("starts TensorFlow in a fresh process; fast tier, in process: the pixel-limit test below refuses "
                  "from the header, test_serve.py's bad-requests test refuses a bomb and bad bytes")
def test_saved_model_refuses_bombs_and_bad_bytes_and_keeps_serving_without_chroma(exported, tmp_path):
    """A 16000 x 16000 PNG of ~250 KB is refused from its header: decoded it would take gigabytes."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(16000))
    assert bomb.stat().st_size < 400_000
    inputs = {"bomb": bomb.read_bytes(), "empty": b"", "text": b"not an image at all",
              "truncated": png_bytes(COFFEE)[:3000], "photo": png_bytes(COFFEE)}
    (tmp_path / "inputs.json").write_text(json.dumps({name: value.hex() for name, value in inputs.items()}))
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(exported)!r}).signatures["serving_default"]
        answers = {{}}
        for name, value in json.load(open("inputs.json")).items():
            try:
                answers[name] = list(serve(image_bytes=tf.constant([bytes.fromhex(value)]))["colorized"].shape)
            except tf.errors.InvalidArgumentError as error:
                answers[name] = "InvalidArgument: " + error.message
        # VmHWM, this program's own peak: ru_maxrss would count the pytest worker's memory at the fork too.
        peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        answers["peak GB"] = peak_kb * 1024 / 1e9
        assert "chroma" not in sys.modules
        print(json.dumps(answers))
    """)
    served = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-3000:]
    answers = json.loads(served.stdout.strip().splitlines()[-1])
    assert "image of 16000x16000 pixels is over the limit of 67108864 pixels set at export" in answers["bomb"]
    for name in ("empty", "text", "truncated"):
        assert answers[name].startswith("InvalidArgument: "), (name, answers[name])
    assert answers["photo"] == [1, *COFFEE.shape]  # served after every refusal: the process goes on
    assert answers["peak GB"] < 3  # the bomb's 256 MB of pixels, and the decoder's gigabytes, never came to be


def test_the_pixel_limit_is_fixed_at_export_for_bytes_and_arrays(cli_exported):
    model = cli_exported[0] / "saved_models" / "base"
    assert json.loads((model / "chroma.json").read_text())["max_pixels"] == CLI_MAX_PIXELS
    signatures = tf.saved_model.load(str(model)).signatures
    refusal = f"image of 457x301 pixels is over the limit of {CLI_MAX_PIXELS} pixels set at export"
    with pytest.raises(tf.errors.InvalidArgumentError, match=refusal):
        signatures["serving_default"](image_bytes=tf.constant([png_bytes(COFFEE)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=refusal):
        signatures["colorize_image"](image=tf.constant(COFFEE))
    assert signatures["colorize_image"](image=tf.constant(COFFEE[:300]))["colorized"].shape == (300, 457, 3)
    export_defaults = cli.build_parser().parse_args(["export", "--model", "m.keras"])
    assert export_defaults.max_pixels == data.MAX_PIXELS  # the default: what `chroma colorize` reads files within


def stored_size(image_bytes):
    header = photo_header(tf.constant(image_bytes))
    return [int(header.height), int(header.width)]


def test_every_format_tells_its_size_from_its_header():
    for name, options in SERVED_FORMATS.items():
        buffer = io.BytesIO()
        Image.fromarray(COFFEE).save(buffer, **options)
        assert stored_size(buffer.getvalue()) == [301, 457], name
    upside_down = io.BytesIO()  # a BMP stored top-down gives a negative height
    Image.fromarray(COFFEE).save(upside_down, format="BMP")
    top_down = bytearray(upside_down.getvalue())
    top_down[22:26] = struct.pack("<i", -301)
    assert stored_size(bytes(top_down)) == [301, 457]


def test_decode_photo_rounds_as_training_decoding_does():
    """Every pair of colour and alpha composited on white, and every 16-bit gray level, as chroma.data.load_rgb."""
    colour, alpha = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    every_pair = Image.fromarray(np.dstack([colour, 255 - colour, colour, alpha]))
    every_gray_level = Image.fromarray(np.arange(65536, dtype=np.uint16).reshape(256, 256))
    for image in (every_pair, every_gray_level):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        decoded = decode_photo(tf.constant(buffer.getvalue())).numpy()
        np.testing.assert_array_equal(decoded, data.load_rgb(buffer.getvalue(), max_side=256), err_msg=image.mode)


def test_webp_animation_without_alpha_is_refused():
    # TensorFlow decodes WebP animations only as RGBA; asked for the file's own channels it writes out of bounds.
    photo = skimage.data.astronaut()[::8, ::8]
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="WEBP", save_all=True, append_images=[Image.fromarray(photo[::-1])])
    assert buffer.getvalue()[20] == 0x02  # the VP8X flags: an animation, without alpha
    with pytest.raises(tf.errors.InvalidArgumentError, match="channels"):
        decode_photo(tf.constant(buffer.getvalue()))


@pytest.mark.slow("saved_model_cli starts TensorFlow in a process of its own; fast tier: "
                  "test_chroma_json_says_what_is_inside and test_serve.py's metadata test list the signatures")
def test_saved_model_cli_lists_the_signatures(exported):
    saved_model_cli = Path(sys.executable).parent / "saved_model_cli"
    if not saved_model_cli.exists():
        pytest.skip(f"no saved_model_cli beside {sys.executable}")
    shown = subprocess.run(
        [saved_model_cli, "show", "--dir", exported, "--all"], check=True, capture_output=True, text=True
    ).stdout
    for signature in ("serving_default", "colorize_encoded", "colorize_encoded_as", "colorize_image", "colorize_lab"):
        assert f"signature_def['{signature}']" in shown
    assert "image_bytes" in shown and "colorized" in shown and "scaled_ab" in shown


def test_colorized_photo_keeps_the_input_lightness_and_gains_colour(loaded):
    colorized = loaded.signatures["colorize_image"](image=tf.constant(COFFEE))["colorized"].numpy()
    assert colorized.shape == COFFEE.shape
    # Where a channel clips at 0 or 255 the colour was out of gamut, and clipping moves L.
    unclipped = ((colorized > 0) & (colorized < 255)).all(axis=-1)
    assert unclipped.mean() > 0.9
    assert np.abs(lightness(colorized) - lightness(COFFEE))[unclipped].mean() < 1.0
    # The mean colour per gray level of the bundled photos is not gray.
    chroma = np.hypot(*np.moveaxis(skimage.color.rgb2lab(colorized)[..., 1:], -1, 0))
    assert chroma.mean() > 3.0


@pytest.mark.parametrize("model", ["tiny_generator", "baseline"])
def test_colorize_lab_is_the_keras_model(model, baseline, loaded, tiny_replaced):
    if model == "baseline":
        generator, colorize_lab = baseline, loaded.signatures["colorize_lab"]
    else:
        generator, directory = tiny_replaced
        colorize_lab = tf.saved_model.load(str(directory)).signatures["colorize_lab"]
    scaled_l = tf.random.stateless_uniform((3, IMAGE_SIZE, IMAGE_SIZE, 1), seed=(1, 2), minval=-1.0, maxval=1.0)
    np.testing.assert_allclose(colorize_lab(scaled_l=scaled_l)["scaled_ab"], ab_of(generator, scaled_l), atol=1e-6)


@pytest.mark.slow("traces every serving function of baseline0 again, in memory; fast tier: test_colorize.py's "
                  "test_colorized_pixels_are_the_models colorizes from a .keras file through them, as the SavedModel")
def test_in_memory_functions_equal_the_exported_signatures(baseline, loaded):
    in_memory = serving_functions(baseline, IMAGE_SIZE)["colorize_image"](image=tf.constant(COFFEE))
    exported = loaded.signatures["colorize_image"](image=tf.constant(COFFEE))
    np.testing.assert_array_equal(in_memory["colorized"], exported["colorized"])


def test_colorize_encoded_as_gives_each_photo_in_its_format(loaded):
    photos = tf.constant([png_bytes(COFFEE)] * 4)
    encoded = loaded.signatures["colorize_encoded_as"](
        image_bytes=photos, format=tf.constant(["png", "jpeg", "jpeg", "png"]), quality=tf.constant([90, 90, 50, 1]),
    )["colorized_bytes"].numpy()
    png = loaded.signatures["colorize_encoded"](image_bytes=photos[:1])["colorized_bytes"][0].numpy()
    assert encoded[0] == png and encoded[3] == png  # PNG takes a quality and ignores it
    assert encoded[1].startswith(b"\xff\xd8") and encoded[2].startswith(b"\xff\xd8")
    # Quality 90 decodes to the PNG's pixels within 3 levels on average (2.1 measured; 4.1 at quality 50).
    error = np.abs(tf.io.decode_jpeg(encoded[1]).numpy().astype(int) - tf.io.decode_png(png).numpy())
    assert error.mean() < 3
    assert len(encoded[2]) < len(encoded[1]) < len(png)


def test_colorize_encoded_as_refuses_what_it_cannot_encode(loaded):
    encode_as = loaded.signatures["colorize_encoded_as"]
    photo = tf.constant([png_bytes(COFFEE[:40, :60])])
    refused = {
        "format must be png or jpeg, got gif": (["gif"], [90]),
        "format must be png or jpeg, got JPEG": (["JPEG"], [90]),
        "quality must be 1 to 100 (used for jpeg only), got [0]": (["jpeg"], [0]),
        "quality must be 1 to 100 (used for jpeg only), got [101]": (["png"], [101]),
        "give one format and one quality per photo: 1 photos, 2 formats, 1 qualities": (["png", "png"], [90]),
    }
    for message, (formats, qualities) in refused.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            encode_as(image_bytes=photo, format=tf.constant(formats), quality=tf.constant(qualities))


def test_serving_default_takes_photos_of_one_size_as_shown(loaded):
    """A photo stored on its side (EXIF orientation 6) is served upright: it shares a call with photos of its
    upright size, not with those of its stored size."""
    upright = COFFEE[:40, :60]
    on_its_side = np.ascontiguousarray(np.rot90(upright))  # stored 40 wide, 60 high
    serve = loaded.signatures["serving_default"]
    colorized = serve(image_bytes=tf.constant([jpeg_bytes(upright), jpeg_bytes(on_its_side, orientation=6)]))
    assert colorized["colorized"].shape == (2, 40, 60, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in size"):
        serve(image_bytes=tf.constant([jpeg_bytes(on_its_side), jpeg_bytes(on_its_side, orientation=6)]))


@pytest.mark.slow("exports a U-Net with dropout, traced for eight signatures; fast tier: test_serve.py's predict test "
                  "draws two different samples from such a SavedModel, test_colorize.py checks --samples")
def test_colorize_samples_differ_and_colorize_image_stays_deterministic(tmp_path):
    generator = tiny_unet_with_dropout()
    export_saved_model(generator, tmp_path / "unet", 16)
    assert json.loads((tmp_path / "unet" / "chroma.json").read_text())["signatures"][-3:] == [
        "colorize_samples", "colorize_samples_encoded", "colorize_samples_encoded_as"]
    # Tracing colorize_samples for the export switched dropout on only while it ran.
    assert dropout_layers(generator) and not any(layer.at_inference for layer in dropout_layers(generator))

    signatures = tf.saved_model.load(str(tmp_path / "unet")).signatures
    photo = tf.constant(COFFEE[::8, ::8])
    samples = signatures["colorize_samples"](image=photo, samples=tf.constant(3))["colorized"].numpy()
    assert samples.shape == (3, *photo.shape) and samples.dtype == np.uint8
    more = signatures["colorize_samples"](image=photo, samples=tf.constant(1))["colorized"].numpy()
    ab = skimage.color.rgb2lab(np.concatenate([samples, more]))[..., 1:]
    # Paper agosti, figure 4: each sample, within a call and from call to call, is another colorization.
    for first, second in ((0, 1), (0, 2), (1, 2), (0, 3)):
        assert np.abs(ab[first] - ab[second]).mean() > 1.0

    colorize_image = signatures["colorize_image"]
    np.testing.assert_array_equal(colorize_image(image=photo)["colorized"], colorize_image(image=photo)["colorized"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="samples must be at least 1"):
        signatures["colorize_samples"](image=photo, samples=tf.constant(0))
    # Copies are as many images: 2**30 of them would ask for petabytes, and are refused before any is made.
    with pytest.raises(tf.errors.InvalidArgumentError, match="1073741824 samples of an image of 58x38 pixels are "
                                                             "over the limit of 67108864 pixels"):
        signatures["colorize_samples"](image=photo, samples=tf.constant(2**30))

    # The same from a photo's bytes, as PNGs: what `chroma serve`'s page asks for.
    encoded = signatures["colorize_samples_encoded"](image_bytes=tf.constant(png_bytes(photo.numpy())),
                                                     samples=tf.constant(2))["colorized_bytes"]
    decoded = np.stack([tf.io.decode_png(png).numpy() for png in encoded])
    assert decoded.shape == (2, *photo.shape)
    assert np.abs(skimage.color.rgb2lab(decoded[0])[..., 1:] - skimage.color.rgb2lab(decoded[1])[..., 1:]).mean() > 1
    as_jpeg = signatures["colorize_samples_encoded_as"](image_bytes=tf.constant(png_bytes(photo.numpy())),
                                                        samples=tf.constant(2), format=tf.constant("jpeg"),
                                                        quality=tf.constant(80))["colorized_bytes"]
    assert [tf.io.decode_jpeg(jpeg).shape for jpeg in as_jpeg] == [photo.shape] * 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="format must be png or jpeg, got webp"):
        signatures["colorize_samples_encoded_as"](image_bytes=tf.constant(png_bytes(photo.numpy())),
                                                  samples=tf.constant(2), format=tf.constant("webp"),
                                                  quality=tf.constant(80))


def test_a_generator_without_dropout_has_no_samples_signature():
    generator = UNetGenerator(base_filters=4, depth=2, dropout=0.0)  # its one decoder block would drop
    assert not dropout_layers(generator)
    functions = serving_functions(generator, 16)
    assert "colorize_samples" not in functions and "colorize_samples_encoded" not in functions  # all the same


def test_chroma_json_says_what_is_inside(exported):
    metadata = json.loads((exported / "chroma.json").read_text())
    assert metadata["image_size"] == IMAGE_SIZE
    assert metadata["model"] == "MeanColorBaseline"
    assert metadata["signatures"] == ["serving_default", "colorize_encoded", "colorize_encoded_as", "colorize_image",
                                      "colorize_lab"]
    exported_at = datetime.datetime.fromisoformat(metadata["exported"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - exported_at) < datetime.timedelta(hours=1)


def model_card_header(text):
    """The YAML header of a model card, read as a model hub reads it."""
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_every_export_carries_a_model_card(exported):
    card = (exported / "README.md").read_text(encoding="utf-8")
    header = model_card_header(card)
    assert header["license"] == "apache-2.0" and "image-colorization" in header["tags"]
    assert "model-index" not in header  # a bare model file has no scores to show
    assert "# MeanColorBaseline" in card and "## Known limits" in card


def test_a_scored_runs_model_card_shows_its_scores_from_results_json(tmp_path):
    run_dir = tmp_path / "runs" / "nampouri" / "smoke" / "unet_cgan"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run": "unet_cgan", "settings": {"image_size": 32}}))
    protocol = {"train_data": "samples?take=6", "eval_data": "samples?skip=6", "image_size": 32, "scored_at": "last",
                "scored_in": "dropout"}
    rows = [{"model": "baseline0", "ours": {"PSNR (dB)": 19.6}},
            {"model": "U-Net cGAN", "ours": {"PSNR (dB)": 21.25, "L1 ab": 0.0931, "LPIPS": None},
             "paper": {"L1 ab": 0.0917}, "note": "scored with dropout on",
             "run": {"recipe": "nampouri", "key": "unet_cgan", "protocol": protocol, "precision": "float32",
                     "replicas": 1}}]
    code = {"commit": "0123456789abcdef0123456789abcdef01234567", "modified": False}
    reports.write_results(run_dir.parent, "Image Colorization with Conditional GANs — smoke scale", rows,
                          ["PSNR (dB)", "L1 ab", "LPIPS"], "nampouri", {"code": code, "machine": {}})
    unscored = run_dir.parent / "other"  # a run the results do not hold yet
    unscored.mkdir()
    (unscored / "run.json").write_text(json.dumps({"run": "other"}))
    assert scored_result(unscored) is None

    card = model_card("UNetGenerator", 32, scored_result(run_dir))
    header = model_card_header(card)
    (entry,) = header["model-index"]
    assert entry["name"] == "U-Net cGAN"
    (result,) = entry["results"]
    assert result["dataset"] == {"name": "samples?skip=6", "type": "samples"}
    # Its own scores only (not baseline0's), those measured (LPIPS had no weights), keyed as chroma names them.
    assert result["metrics"] == [{"type": "psnr", "name": "PSNR (dB)", "value": 21.25},
                                 {"type": "l1_ab", "name": "L1 ab", "value": 0.0931}]
    assert "nampouri" in header["tags"]
    assert "(chroma recipe `nampouri`, run `unet_cgan`)" in card
    assert "chroma at commit 0123456789abcdef0123456789abcdef01234567" in card
    assert "scored on `samples?skip=6` at 32x32, its last weights in dropout mode" in card


def test_export_replaces_a_saved_model_but_never_other_files(tiny_replaced, tmp_path):
    directory = tiny_replaced[1]
    assert json.loads((directory / "chroma.json").read_text())["model"] == "NetworkGenerator"  # was baseline0's
    assert sorted(p.name for p in directory.parent.iterdir()) == ["model"]  # no staging folder left behind

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "keep.jpg").write_bytes(b"precious")
    with pytest.raises(ValueError, match="not a SavedModel"):
        export_saved_model(tiny_generator(), photos, 16)
    assert (photos / "keep.jpg").read_bytes() == b"precious"


def test_load_generator_unwraps_a_trained_model(tmp_path):
    generator = tiny_generator()
    path = tmp_path / "regression.keras"
    wrapper = RegressionColorizer(generator)
    wrapper({"L": tf.zeros((1, 8, 8, 1))})
    wrapper.save(path)
    loaded_generator = load_generator(path)
    assert isinstance(loaded_generator, NetworkGenerator)
    scaled_l = tf.zeros((1, 8, 8, 1)) + 0.3
    np.testing.assert_allclose(ab_of(loaded_generator, scaled_l), ab_of(generator, scaled_l), atol=1e-6)


def test_cli_export_writes_to_saved_models_by_default(cli_exported):
    folder, printed = cli_exported
    assert "saved_models/base" in printed
    for signature in ("serving_default", "colorize_encoded", "colorize_image", "colorize_lab"):
        assert signature in printed
    assert "(None, 16, 16, 1)" in printed
    assert (folder / "saved_models" / "base" / "saved_model.pb").is_file()


def test_cli_export_errors(tmp_path, capsys):
    tiny_generator().save(tmp_path / "tiny.keras")
    output = tmp_path / "out"

    def export(model="tiny.keras", *flags):
        return cli.main(["export", "--model", str(tmp_path / model), "--image-size", "8", "-o", str(output), *flags])

    assert export("missing.keras") == 2
    assert "chroma: error: model file" in capsys.readouterr().err and not output.exists()

    output.mkdir()
    (output / "old.txt").write_text("old")
    assert export() == 2
    assert "--overwrite" in capsys.readouterr().err
    assert export("tiny.keras", "--overwrite") == 2  # not a SavedModel: kept even then
    assert (output / "old.txt").exists()

    (output / "old.txt").unlink()
    assert export() == 0
    assert export() == 2
    assert export("tiny.keras", "--overwrite") == 0


def test_a_run_folder_exports_the_generator_its_table_scored_at_the_runs_size(tmp_path, capsys):
    run, output = tmp_path / "unet_cgan", tmp_path / "out"
    run.mkdir()

    def export(*flags):
        return cli.main(["export", "--model", str(run), "-o", str(output), *flags])

    assert export() == 2 and "holds no run.json: not a run folder" in capsys.readouterr().err
    (run / "run.json").write_text(json.dumps({"run": "unet_cgan", "settings": {"image_size": 8}}))
    assert export() == 2 and "holds no generator.keras: its run has not finished" in capsys.readouterr().err
    tiny_generator().save(run / "generator.keras")
    assert export("--image-size", "16") == 2
    assert "was trained at 8 px (its run.json), not --image-size 16" in capsys.readouterr().err
    assert not output.exists()  # refused before anything was written
    generator, image_size = scored_generator(run)
    assert isinstance(generator, NetworkGenerator) and image_size == 8


def test_every_model_file_is_loadable_from_a_keras_file():
    """A .keras file names its classes; load_generator can only rebuild those whose module it imports."""
    from chroma.export import MODEL_MODULES

    models_dir = Path(__file__).parent.parent / "chroma" / "models"
    with_classes = {f"chroma.models.{path.stem}" for path in models_dir.glob("*.py")
                    if "register_keras_serializable" in path.read_text()}
    imported_by_generators = {"chroma.models.blocks", "chroma.models.pixel_tcl"}  # unet, pixel_unet import them
    assert with_classes - imported_by_generators <= set(MODEL_MODULES)


class CaptionTint(Generator):
    """Reads captions as Models B and C do ("tokens" made from "caption"): the caption's word ids set a*."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from chroma.models.caption_tokenizer import CaptionTokenizer

        self.tokenizer = CaptionTokenizer(vocabulary=["sky", "red", "grass"])
        self.built = True  # no weights to create; its TF ops cannot run on a symbolic batch

    def batch_inputs(self):
        return {"tokens": BatchInput("caption", self.tokenizer)}

    @property
    def _default_save_signature(self):
        return None  # as CaptionChromaGANGenerator: Keras's default signature would feed L alone

    def call(self, batch, training=False):
        inputs = self.complete(batch)
        a = tf.tanh(tf.cast(tf.reduce_sum(inputs["tokens"], axis=-1), tf.float32) / 4.0)
        a = tf.zeros_like(inputs["L"]) + a[:, None, None, None]
        return {"ab": tf.concat([a, tf.zeros_like(a)], axis=-1)}


def test_caption_models_are_served_with_a_caption(tmp_path):
    """Paper villarenteria's Models B and C: image bytes and a caption string in, the caption's colours out."""
    export_saved_model(CaptionTint(), tmp_path / "tint", image_size=16)
    signatures = tf.saved_model.load(str(tmp_path / "tint")).signatures
    image_bytes = tf.constant([png_bytes(COFFEE)])
    red = signatures["serving_default"](image_bytes=image_bytes, caption=tf.constant(["red"]))["colorized"][0].numpy()
    grass = signatures["serving_default"](image_bytes=image_bytes, caption=tf.constant(["grass"]))["colorized"][0]
    assert red.shape == COFFEE.shape and np.abs(red.astype(int) - grass.numpy()).mean() > 5
    scaled_l = tf.zeros((2, 16, 16, 1))
    ab = signatures["colorize_lab"](scaled_l=scaled_l, caption=tf.constant(["sky", "sky red"]))["scaled_ab"]
    np.testing.assert_allclose(ab[:, 0, 0, 0], np.tanh([2 / 4, 5 / 4]), rtol=1e-5)
