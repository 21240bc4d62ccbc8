"""TFLite export: the .tflite models colour as the SavedModel's colorize_lab does; what cannot convert is refused."""

import warnings

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from chroma import cli
from chroma.color import rgb_to_scaled_lab, scaled_lab_to_rgb
from chroma.models.generator import BatchInput, Generator
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.koalarization import KoalarizationGenerator
from chroma.models.unet import UNetGenerator
from chroma.recipes import load_experiment, select_runs
from chroma.tflite_export import DYNAMIC_RANGE_FILE, FLOAT_FILE, export_tflite
from helpers import ab_of, spread_colours, tiny_generator, trainable_count

IMAGE_SIZE = 64  # paper nampouri's smoke size; the ResNet-18 U-Net needs a multiple of 32
# Bounds on the difference from colorize_lab over the photos, per file: the largest in scaled ab (ab / 110), and the
# largest and the 99th percentile in uint8 RGB (colorize_lab's ab joined to the photo's L, rounded). Measured with
# TF 2.21 on 2 CPU cores, U-Net / ResNet-18 U-Net: float32 7e-7 / 1.4e-6 in ab, at most 1 level in RGB (rounding);
# dynamic range 0.030 / 0.040 in ab (3.3 / 4.4 of ab's units of 110), 99th percentile 4 / 5 levels, largest 27 / 33
# (a channel near black in a saturated colour, where sRGB's curve is steepest). float32's ab bound is the issue's
# 1e-3; the dynamic-range bounds have about 2x margin.
AB_BOUNDS = {FLOAT_FILE: 1e-3, DYNAMIC_RANGE_FILE: 0.1}
RGB_BOUNDS = {FLOAT_FILE: (1, 1), DYNAMIC_RANGE_FILE: (64, 10)}  # (largest, 99th percentile)
pytestmark = pytest.mark.xdist_group("tflite")  # each model is converted once, on one worker


def photos(names=("astronaut", "coffee", "chelsea")):
    """Bundled photos resized to the model's size as a phone app would: uint8 RGB (N, S, S, 3)."""
    resized = [tf.image.resize(getattr(skimage.data, name)(), (IMAGE_SIZE, IMAGE_SIZE), antialias=True)
               for name in names]
    return tf.cast(tf.round(tf.stack(resized)), tf.uint8).numpy()


def signature_runner(path):
    """The .tflite file's serving_default signature, run by TensorFlow's TFLite interpreter."""
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter is deprecated for ai_edge_litert's (the same interpreter); it
        # still runs, and the test needs no package beyond TensorFlow.
        warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner()


def nampouri_generator(run):
    """Paper nampouri's generator as its recipe builds it at smoke scale, colours spread (helpers.spread_colours)."""
    keras.utils.set_random_seed(0)
    nampouri = load_experiment("nampouri")
    (recipe_run,) = select_runs(nampouri, [run])
    generator = recipe_run.build(nampouri.SCALES["smoke"]._replace(image_size=IMAGE_SIZE)).generator
    spread_colours(generator, rgb_to_scaled_lab(photos())[0])
    return generator


@pytest.fixture(scope="module", params=["unet_cgan", pytest.param("resnet_cgan", marks=pytest.mark.slow(
    "converts a ResNet-18 U-Net twice, the costliest conversion here; unet_cgan's check the same in the fast tier"))])
def exported(request, tmp_path_factory):
    """(generator, its .tflite files by name): each model converted once for the tests below."""
    generator = nampouri_generator(request.param)
    paths = export_tflite(generator, tmp_path_factory.mktemp(request.param), IMAGE_SIZE)
    return generator, {path.name: path for path in paths}


@pytest.mark.parametrize("name", [FLOAT_FILE, DYNAMIC_RANGE_FILE])
def test_tflite_colours_as_colorize_lab(exported, name):
    generator, paths = exported
    run = signature_runner(paths[name])
    ab_differences, rgb_differences = [], []
    for image in photos():
        scaled_l, _ = rgb_to_scaled_lab(image[None])
        # colorize_lab's computation (chroma.export.serving_functions: the generator at training=False, in
        # float32), called directly: tracing every serving function costs 7-12 s a model, and gives the same ab.
        expected_ab = ab_of(generator, scaled_l)
        assert np.std(expected_ab) > 0.2  # colours that show: a comparison with gray would prove little
        expected_rgb = tf.cast(tf.round(scaled_lab_to_rgb(scaled_l, expected_ab) * 255.0), tf.uint8).numpy()
        outputs = run(image=image[None])
        ab_differences.append(np.abs(outputs["scaled_ab"] - expected_ab.numpy()).ravel())
        rgb_differences.append(np.abs(outputs["colorized"].astype(int) - expected_rgb).ravel())
    ab_largest = np.concatenate(ab_differences).max()
    rgb_largest, rgb_p99 = np.quantile(np.concatenate(rgb_differences), [1.0, 0.99])
    print(f"{type(generator).__name__} {name}: difference from colorize_lab at most {ab_largest:.2e} in scaled ab; "
          f"in uint8 RGB at most {rgb_largest:.0f}, 99th percentile {rgb_p99:.0f}")
    assert ab_largest < AB_BOUNDS[name]
    largest_bound, p99_bound = RGB_BOUNDS[name]
    assert rgb_largest <= largest_bound and rgb_p99 <= p99_bound


def test_tflite_contract_and_sizes(exported):
    _, paths = exported
    for path in paths.values():
        run = signature_runner(path)
        inputs, outputs = run.get_input_details(), run.get_output_details()
        assert {name: (tuple(spec["shape"]), spec["dtype"]) for name, spec in inputs.items()} == {
            "image": ((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)}
        assert {name: (tuple(spec["shape"]), spec["dtype"]) for name, spec in outputs.items()} == {
            "colorized": ((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
            "scaled_ab": ((1, IMAGE_SIZE, IMAGE_SIZE, 2), np.float32),
        }
    # The weights are in the files (not left as variables), int8 in the quantised one.
    float_size, quantised_size = paths[FLOAT_FILE].stat().st_size, paths[DYNAMIC_RANGE_FILE].stat().st_size
    assert float_size > 0.95 * 4 * trainable_count(exported[0])  # batch norm's gamma and beta fold into convolutions
    assert quantised_size < 0.3 * float_size


class Captioned(Generator):
    """The least of paper villarenteria's Models B and C: token ids made from a "caption" string."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from chroma.models.caption_tokenizer import CaptionTokenizer

        self.tokenizer = CaptionTokenizer(vocabulary=["sky"])
        self.built = True

    def batch_inputs(self):
        return {"tokens": BatchInput("caption", self.tokenizer)}


class Classifier(tf.Module):
    """The smallest TF2 SavedModel hub.load takes for InceptionEmbedding: RGB images -> 3 logits."""

    def __init__(self):
        self.weights = tf.Variable(tf.ones((3, 3)))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=(1, 2)) @ self.weights


def hub_generator(directory):
    """Deep Koalarization with its Inception embedding from a local SavedModel, loaded by hub.load (no network)."""
    tf.saved_model.save(Classifier(), str(directory))
    return KoalarizationGenerator(embedding=InceptionEmbedding(source=str(directory), probabilities=False))


@pytest.mark.parametrize("model, reason", [
    (lambda tmp_path: Captioned(), r"Captioned reads caption \(a string per image\).*TensorFlow string ops"),
    (hub_generator, r"KoalarizationGenerator holds a frozen TF-Hub network \(InceptionEmbedding from '.*hub'\)"),
    (lambda tmp_path: UNetGenerator(base_filters=2, depth=2, dropout_at_inference=True),
     r"UNetGenerator keeps its dropout on at inference"),
])
def test_what_cannot_convert_is_refused_before_converting(model, reason, tmp_path):
    generator = model(tmp_path / "hub")
    with pytest.raises(ValueError, match=f"cannot export to TFLite: {reason}"):
        export_tflite(generator, tmp_path / "out", 16)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow("exports a SavedModel and converts it twice; test_cli_export_tflite_refusal_writes_nothing takes "
                  "--tflite through the CLI, and unet_cgan's conversions stay in the fast tier")
def test_cli_export_tflite_writes_both_files_beside_the_saved_model(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    tiny_generator().save(tmp_path / "tiny.keras")
    output = tmp_path / "tiny"
    assert cli.main(["export", "--model", str(tmp_path / "tiny.keras"), "--image-size", "32", "--tflite",
                     "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert (output / "saved_model.pb").is_file()
    for name in (FLOAT_FILE, DYNAMIC_RANGE_FILE):
        assert f"wrote {output / name} (0.0 MB)" in printed  # 114 parameters
        colorized = signature_runner(output / name)(image=photos()[:1, :32, :32])["colorized"]
        assert colorized.shape == (1, 32, 32, 3) and colorized.dtype == np.uint8


def test_cli_export_tflite_refusal_writes_nothing(tmp_path, capsys):
    UNetGenerator(base_filters=2, depth=2, dropout_at_inference=True).save(tmp_path / "noisy.keras")
    status = cli.main(["export", "--model", str(tmp_path / "noisy.keras"), "--image-size", "16", "--tflite",
                       "-o", str(tmp_path / "noisy")])
    assert status == 2
    assert "chroma: error: cannot export to TFLite: UNetGenerator keeps its dropout on" in capsys.readouterr().err
    assert not (tmp_path / "noisy").exists()
