"""`chroma colorize`: folders in, colorized copies out at the same paths and sizes, bad files skipped."""

import io

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

import chroma.colorize
from chroma import cli
from chroma.colorize import output_path
from chroma.data import MAX_PIXELS, load_rgb
from chroma.export import export_saved_model
from helpers import tiny_generator, tiny_unet_with_dropout

IMAGE_SIZE = 16
pytestmark = pytest.mark.xdist_group("colorize")  # the SavedModel: exported once, on one worker


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return tiny_generator()


@pytest.fixture(scope="module")
def saved_model(generator, tmp_path_factory):
    return export_saved_model(generator, tmp_path_factory.mktemp("models") / "tiny", IMAGE_SIZE)


@pytest.fixture(scope="module")
def unet_with_dropout(tmp_path_factory):
    """A tiny U-Net with dropout as .keras and SavedModel, random weights scaled up so its colours show in uint8."""
    generator = tiny_unet_with_dropout()
    folder = tmp_path_factory.mktemp("unet")
    generator.save(folder / "unet.keras")
    return folder / "unet.keras", export_saved_model(generator, folder / "saved_model", IMAGE_SIZE)


@pytest.fixture
def cat_photo(tmp_path):
    path = tmp_path / "photos" / "chelsea.png"
    path.parent.mkdir()
    Image.fromarray(skimage.data.chelsea()[::6, ::6]).save(path)  # 50x76
    return path


def colorize(*arguments):
    return cli.main(["colorize", *map(str, arguments)])


def jpeg_tables(image, quality):
    """The quantization tables Pillow writes for `image` at `quality`: a JPEG file's record of its quality."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as written:
        return written.quantization


def image_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_folder_is_colorized_at_the_same_paths_and_sizes(image_folder, saved_model, tmp_path, capsys):
    nested = image_folder / "dogs" / "puppies"
    nested.mkdir()
    Image.fromarray(np.full((23, 1, 3), (200, 40, 10), np.uint8)).save(nested / "one_pixel_wide.png")
    (image_folder / "cats" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    output = tmp_path / "colorized"

    assert colorize(image_folder, "--model", saved_model, "-o", output) == 0

    written = [
        "cats/a.jpg", "cats/b.PNG", "dogs/c.jpeg", "dogs/gray.png", "dogs/puppies/one_pixel_wide.png", "loose.png",
    ]
    assert image_files(output) == written
    for name in written:
        with Image.open(image_folder / name) as original, Image.open(output / name) as result:
            assert result.size == original.size
            assert result.format == original.format
            assert result.mode == "RGB"
    # JPEG outputs are written at quality 95 (README): their quantization tables are Pillow's for quality 95.
    for name in ("cats/a.jpg", "dogs/c.jpeg"):
        with Image.open(output / name) as result:
            tables, pixels = result.quantization, result.convert("RGB")
        assert tables == jpeg_tables(pixels, 95), name
    assert jpeg_tables(pixels, 95) not in (jpeg_tables(pixels, 90), jpeg_tables(pixels, 50))  # the check can fail
    captured = capsys.readouterr()
    assert "colorized 6, skipped 1" in captured.out
    assert "[6/7]" in captured.out  # one line per file when stdout is not a terminal
    skip_lines = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skip_lines) == 1 and "broken.jpg" in skip_lines[0]


def test_colorized_pixels_are_the_models(image_folder, generator, saved_model, tmp_path):
    output = tmp_path / "colorized"
    assert colorize(image_folder / "loose.png", "--model", saved_model, "-o", output) == 0
    colorized = np.asarray(Image.open(output / "loose.png"))
    signature = tf.saved_model.load(str(saved_model)).signatures["colorize_image"]
    expected = signature(image=tf.constant(load_rgb(str(image_folder / "loose.png"))))["colorized"].numpy()
    np.testing.assert_array_equal(colorized, expected)

    # A .keras file runs the same functions in memory: the same pixels.
    generator.save(tmp_path / "tiny.keras")
    from_keras = tmp_path / "from_keras"
    assert colorize(image_folder / "loose.png", "--model", tmp_path / "tiny.keras", "--image-size", IMAGE_SIZE,
                    "-o", from_keras) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(from_keras / "loose.png")), colorized)


def encoded_photos(folder):
    """One photo in every encoding serving takes, transparent where the format allows, written to `folder`; the names.

    A 64x64 astronaut, fully transparent in its top quarter, opaque in its bottom one, and with an alpha rising
    from 3 to 255 left to right in between.
    """
    photo = skimage.data.astronaut()[::8, ::8]
    alpha = np.concatenate([
        np.zeros((16, 64), np.uint8), np.tile(np.arange(3, 256, 4, dtype=np.uint8), (32, 1)),
        np.full((16, 64), 255, np.uint8),
    ])
    rgba = Image.fromarray(np.dstack([photo, alpha]))
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    palette = Image.fromarray(photo).quantize(32)
    flipped = Image.fromarray(photo[:, ::-1])
    low_byte = np.arange(0, 256, 4, dtype=np.uint16)  # 16-bit levels between the 8-bit ones, to round or cut
    rgba.save(folder / "rgba.png")
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(folder / "gray_alpha.png")
    rgba.quantize(32, method=Image.Quantize.FASTOCTREE).save(folder / "palette_alpha.png")  # tRNS: 32 alphas
    palette.save(folder / "palette_4_bit.png", bits=4)  # TensorFlow's opaque alpha for 4 bits is 15, not 255
    Image.fromarray(gray > 100).save(folder / "one_bit.png")
    Image.fromarray(gray.astype(np.uint16) * 256 + low_byte).save(folder / "gray_16_bit.png")
    # Pillow cannot write 16-bit colour; TensorFlow can.
    rgba_16_bit = np.dstack([photo, alpha]).astype(np.uint16) * 256 + low_byte[:, None]
    (folder / "rgba_16_bit.png").write_bytes(tf.io.encode_png(rgba_16_bit).numpy())
    Image.fromarray(photo).save(folder / "photo.jpg", quality=90)
    palette.save(folder / "animated_transparent.gif", transparency=0, save_all=True, append_images=[flipped])
    Image.fromarray(photo).save(folder / "photo.bmp")
    rgba.save(folder / "rgba.webp", quality=80)
    rgba.save(folder / "animated_rgba.webp", save_all=True, append_images=[flipped.convert("RGBA")], lossless=True)
    return sorted(path.name for path in folder.iterdir())


def test_colorize_and_serving_give_the_same_colours_for_every_encoding(saved_model, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = encoded_photos(photos)
    colorized = {}
    save = chroma.colorize.save

    def keep_and_save(rgb, path):
        colorized[path.name] = rgb
        save(rgb, path)

    monkeypatch.setattr(chroma.colorize, "save", keep_and_save)
    assert colorize(photos, "--model", saved_model, "-o", tmp_path / "colorized") == 0
    assert sorted(colorized) == names

    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    for name in names:
        served = serve(image_bytes=tf.constant([(photos / name).read_bytes()]))["colorized"][0].numpy()
        np.testing.assert_array_equal(served, colorized[name], err_msg=name)
    # Transparent pixels are white, but a GIF's black: TensorFlow's GIF decoder paints them so.
    assert (load_rgb(str(photos / "rgba.png"))[:16] == 255).all()
    with Image.open(photos / "animated_transparent.gif") as gif:
        transparent = np.asarray(gif) == gif.info["transparency"]
    assert transparent.any() and (load_rgb(str(photos / "animated_transparent.gif"))[transparent] == 0).all()


def test_awkward_files_are_converted_or_skipped(bad_image_folder, saved_model, tmp_path, capsys):
    output = tmp_path / "colorized"
    assert colorize(bad_image_folder.root, "--model", saved_model, "-o", output) == 0
    # Colorizing keeps full size, so huge.jpg (144 Mpixels) is refused rather than shrunk;
    # a 1x1 image is fine to colorize.
    expected = (set(bad_image_folder.converted) - {"huge.jpg"}) | {"tiny.png"}
    assert set(image_files(output)) == expected
    for name in expected:
        with Image.open(output / name) as result:
            decoded = load_rgb(str(bad_image_folder.root / name), max_side=MAX_PIXELS, min_side=1)
            assert result.size[::-1] == decoded.shape[:2]
    skipped = (set(bad_image_folder.unusable) - {"tiny.png"}) | {"huge.jpg"}
    captured = capsys.readouterr()
    assert f"colorized {len(expected)}, skipped {len(skipped)}" in captured.out
    skip_lines = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert sorted(line.split(":")[0].rsplit("/", 1)[1] for line in skip_lines) == sorted(skipped)


def test_nothing_colorized_or_no_model_is_an_error(tmp_path, saved_model, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a PNG")
    assert colorize(broken, "--model", saved_model, "-o", tmp_path / "out") == 2
    assert "chroma: error: none of the 1 images could be colorized" in capsys.readouterr().err

    text_only = tmp_path / "text_only"
    text_only.mkdir()
    (text_only / "notes.txt").write_text("hello")
    assert colorize(text_only, "--model", saved_model, "-o", tmp_path / "out") == 2
    assert "no image files" in capsys.readouterr().err

    assert colorize(broken, "--model", tmp_path / "missing", "-o", tmp_path / "out") == 2
    assert "missing does not exist" in capsys.readouterr().err
    assert colorize(broken, "--model", broken, "-o", tmp_path / "out") == 2
    assert "not a SavedModel" in capsys.readouterr().err
    assert colorize(tmp_path / "no_such_photo.jpg", "--model", saved_model, "-o", tmp_path / "out") == 2
    assert "does not exist" in capsys.readouterr().err


def test_inputs_are_never_overwritten(image_folder, saved_model, tmp_path, capsys):
    before = {name: (image_folder / name).read_bytes() for name in image_files(image_folder)}
    assert colorize(image_folder, "--model", saved_model, "-o", image_folder) == 2
    assert colorize(image_folder, "--model", saved_model, "-o", image_folder / "cats") == 2
    assert colorize(image_folder / "cats" / "a.jpg", "--model", saved_model, "-o", image_folder / "cats") == 2
    assert "choose another -o" in capsys.readouterr().err
    assert {name: (image_folder / name).read_bytes() for name in image_files(image_folder)} == before

    # Two inputs with the same relative path: the second would overwrite the first's output.
    other = tmp_path / "other"
    other.mkdir()
    (other / "loose.png").write_bytes(before["loose.png"])
    output = tmp_path / "colorized"
    assert colorize(image_folder / "loose.png", other, "--model", saved_model, "-o", output) == 0
    captured = capsys.readouterr()
    assert "colorized 1, skipped 1" in captured.out
    assert "earlier output" in captured.err


def test_formats_pillow_cannot_write_become_png(tmp_path, monkeypatch):
    assert output_path("a/b.webp", tmp_path) == (tmp_path / "a" / "b.webp", "")
    monkeypatch.delitem(Image.SAVE, "WEBP")
    path, note = output_path("a/b.webp", tmp_path)
    assert path == tmp_path / "a" / "b.png"
    assert "saved as PNG" in note


@pytest.mark.slow("exports a U-Net with dropout and traces it again from its .keras file; fast tier: test_export.py's "
                  "samples test and test_serve.py's predict test draw samples, the test below checks --samples")
def test_samples_are_different_colorizations_of_each_photo(unet_with_dropout, cat_photo, tmp_path, capsys):
    keras_file, saved_model = unet_with_dropout
    photo = load_rgb(str(cat_photo))
    for model in (saved_model, keras_file):
        output = tmp_path / model.name
        assert colorize(cat_photo, "--model", model, "--image-size", IMAGE_SIZE, "-o", output, "--samples", 3) == 0
        names = ["chelsea_sample1.png", "chelsea_sample2.png", "chelsea_sample3.png"]
        assert image_files(output) == names
        samples = [np.asarray(Image.open(output / name)) for name in names]
        assert all(sample.shape == photo.shape for sample in samples)
        for first, second in ((0, 1), (0, 2), (1, 2)):
            assert np.abs(samples[first].astype(int) - samples[second]).mean() > 1.0
        printed = capsys.readouterr().out
        assert f"-> {output / names[0]}, {output / names[1]}, {output / names[2]}" in printed
        assert "colorized 1, skipped 0" in printed

    # Without --samples, dropout is off: one colorization, the same every time.
    for output in (tmp_path / "once", tmp_path / "twice"):
        assert colorize(cat_photo, "--model", saved_model, "-o", output) == 0
        assert image_files(output) == ["chelsea.png"]
    once, twice = (np.asarray(Image.open(tmp_path / run / "chelsea.png")) for run in ("once", "twice"))
    np.testing.assert_array_equal(once, twice)


def test_samples_need_a_generator_with_dropout_and_a_positive_count(saved_model, generator, cat_photo, tmp_path,
                                                                  capsys):
    output = tmp_path / "colorized"
    for count in ("0", "-2"):  # refused before the model is read, whatever it is
        assert colorize(cat_photo, "--model", saved_model, "-o", output, "--samples", count) == 2
        assert f"--samples must be at least 1, got {count}" in capsys.readouterr().err

    assert colorize(cat_photo, "--model", saved_model, "-o", output, "--samples", 2) == 2
    error = capsys.readouterr().err
    assert "--samples needs a generator with dropout" in error and "no colorize_samples signature" in error

    generator.save(tmp_path / "tiny.keras")
    assert colorize(cat_photo, "--model", tmp_path / "tiny.keras", "-o", output, "--samples", 2) == 2
    assert "its generator has no dropout, so every sample would be the same" in capsys.readouterr().err
    assert not output.exists()
