"""Export a colorizer as a TensorFlow SavedModel that serves photos of any size.

A generator sees scaled L at one square size (the size it was trained at).
Served photos keep their own size: the generator colours a resized copy, its
ab is upsampled back and joined to the photo's full-resolution L, so every
detail and the exact lightness of the input survive (the colour is smooth
anyway). The SavedModel holds only TensorFlow ops: serving it needs
TensorFlow, not chroma.

Signatures (inputs -> outputs):
  serving_default: image_bytes, (N,) strings of JPEG/PNG/GIF/BMP/WebP bytes, photos of one size ->
    colorized, uint8 RGB (N, H, W, 3); decoded by decode_photo to the pixels training and `chroma colorize`
    decode from the file (transparency on white, a JPEG turned upright as its EXIF orientation says)
  colorize_encoded: image_bytes, (N,) strings as above, of any sizes -> colorized_bytes, (N,) PNG strings
  colorize_encoded_as: image_bytes as above, format, (N,) strings "png" or "jpeg", and quality, (N,) int32 1 to
    100 (used for jpeg only) -> colorized_bytes, (N,) strings, each in its photo's format
  colorize_image: image, uint8 RGB (H, W, 3) -> colorized, uint8 RGB (H, W, 3)
  colorize_lab: scaled_l (B, S, S, 1) float32 -> scaled_ab (B, S, S, 2) float32
  only for a generator with dropout, N different colorizations of one photo:
    colorize_samples: image, uint8 RGB (H, W, 3), and samples, int32 N >= 1 -> colorized, uint8 RGB (N, H, W, 3)
    colorize_samples_encoded: image_bytes, one string, and samples -> colorized_bytes, (N,) PNG strings
    colorize_samples_encoded_as: image_bytes, samples, format and quality, one each -> colorized_bytes, (N,)
      strings in that format
The batched signatures follow TensorFlow Serving's REST conventions: its row
format ({"instances": [{"b64": ...}]}) stacks photos on axis 0, and an output
named *_bytes comes back as {"b64": ...}.
A generator that reads captions (paper villarenteria's Models B and C) also
takes `caption`, a string per photo (per image for colorize_lab), in every signature:
whatever a generator declares it makes its inputs from beside L
(chroma.models.generator.BatchInput) is a string input of each.
Every image signature refuses an image of more pixels than the limit fixed at
export (samples copies count as images); those that take bytes refuse them
before decoding, from chroma.data.photo_header's reading of the bytes, and
refuse every format but JPEG, PNG, GIF, BMP and WebP.
The *_encoded_as signatures refuse a format other than png or jpeg and a quality
outside 1 to 100, naming what they take.
"""

import contextlib
import datetime
import functools
import importlib
import json
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from chroma.color import rgb_to_scaled_lab, scaled_lab_to_rgb
from chroma.limits import MAX_PIXELS
from chroma.data.decode import checked_size, decode_photo, display_size
from chroma.data.pipeline import preprocess
from chroma.model_card import CARD_FILE, model_card
from chroma.models.blocks import SwitchableDropout
from chroma.models.generator import Generator
from chroma.models.loading import assets_provided
from chroma.training.colorization_model import ColorizationModel

# Modules whose import registers chroma's Keras classes, so that .keras files
# holding them load. A new model file is added here.
MODEL_MODULES = (
    "chroma.models.attention_unet",
    "chroma.models.baseline0",
    "chroma.models.caption_chromagan",
    "chroma.models.caption_conditioning",
    "chroma.models.caption_tokenizer",
    "chroma.models.chromagan",
    "chroma.models.chromagan_critic",
    "chroma.models.dcgan_critic",
    "chroma.models.iizuka",
    "chroma.models.inception_embedding",
    "chroma.models.koalarization",
    "chroma.models.network_generator",
    "chroma.models.patchgan",
    "chroma.models.pixel_unet",
    "chroma.models.resnet_cnn",
    "chroma.models.resnet_unet",
    "chroma.models.segmentation_prior",
    "chroma.models.unet",
    "chroma.models.vgg_oracle",
    "chroma.training",  # ConditionalGAN, RegressionColorizer: trained wrappers of a generator
)

METADATA_FILE = "chroma.json"
# In a run folder: the generator its results table scored (chroma.reproduce.score_run), and the run's settings.
SCORED_GENERATOR = "generator.keras"
RUN_FILE = "run.json"
# zlib's fastest level: a 12-megapixel PNG in 0.4 s instead of the default level's 2 s, 30% larger (7.1 MB
# against 5.5 MB for a photo), measured on 2 CPU cores.
PNG_COMPRESSION = 1
OUTPUT_FORMATS = ("png", "jpeg")  # the values of the *_encoded_as signatures' `format`


def encode_png(rgb):
    return tf.io.encode_png(rgb, compression=PNG_COMPRESSION)


def encode_as(rgb, output_format, quality):
    """uint8 RGB (H, W, 3) -> its bytes in output_format: "png", or "jpeg" of quality (1 to 100)."""
    return tf.cond(
        output_format == "jpeg",
        # tf.io.encode_jpeg takes its quality as a constant, fixed when traced; this op takes a tensor.
        lambda: tf.raw_ops.EncodeJpegVariableQuality(images=rgb, quality=quality),
        lambda: encode_png(rgb),
    )


def checked_encoding(output_format, quality, photos):
    """(output_format, quality), once there is one of each per photo (`photos` of them), every format is png or
    jpeg and every quality 1 to 100; else an InvalidArgument error that names the allowed values. Nothing that
    depends on the result runs before the checks."""
    known_format = tf.reduce_any(output_format[..., None] == tf.constant(OUTPUT_FORMATS), axis=-1)
    # Joined rather than formatted: the error message would show tf.strings.format's quotes escaped.
    formats = tf.strings.reduce_join(output_format, separator=", ")
    checks = [
        tf.debugging.Assert((tf.size(output_format) == photos) & (tf.size(quality) == photos), [
            tf.strings.format("give one format and one quality per photo: {} photos, {} formats, {} qualities",
                              (photos, tf.size(output_format), tf.size(quality)))]),
        tf.debugging.Assert(tf.reduce_all(known_format),
                            [f"format must be {' or '.join(OUTPUT_FORMATS)}, got " + formats]),
        tf.debugging.Assert(tf.reduce_all((quality >= 1) & (quality <= 100)), [
            tf.strings.format("quality must be 1 to 100 (used for jpeg only), got {}", quality)]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(output_format), tf.identity(quality)


def dropout_layers(model):
    """Every SwitchableDropout inside `model` that drops something (rate > 0), however deeply nested."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, SwitchableDropout) and layer.rate > 0:
            found.append(layer)
        found += dropout_layers(layer)
    return found


@contextlib.contextmanager
def dropout_on(layers):
    """Inside the block, `layers` (SwitchableDropout) drop even at inference; after it they are as before."""
    before = [layer.at_inference for layer in layers]
    for layer in layers:
        layer.at_inference = True
    try:
        yield
    finally:
        for layer, at_inference in zip(layers, before):
            layer.at_inference = at_inference


# tf.function for the exported signatures (here and in chroma.tflite_export): their code uses TensorFlow's own
# control flow (tf.map_fn, tf.cond), so AutoGraph would only rewrite it, which took half of an export's time.
graph_function = functools.partial(tf.function, autograph=False)


def serving_functions(generator, image_size, max_pixels=MAX_PIXELS):
    """The signatures as concrete functions, name -> function, for `generator` trained at image_size.

    An image of more than max_pixels pixels is refused with an InvalidArgument
    error before it is decoded (its header gives the size) or converted.

    Called in memory they behave as the exported signatures do: keyword
    inputs, a dict of outputs. The colorize_samples signatures are there only
    when the generator has dropout: without it every sample would be the same. What a
    generator makes its inputs from beside L (its batch_inputs' sources: a
    "caption" for paper villarenteria's Models B and C) is an input of each
    signature too, a string per image.
    """
    features = sorted({feature.source for feature in generator.batch_inputs().values()} - {"L"})
    image_features = [tf.TensorSpec((), tf.string, name=name) for name in features]
    batch_features = [tf.TensorSpec((None,), tf.string, name=name) for name in features]

    def predict_ab(scaled_l, values):
        # training=False: batch norm uses its moving statistics, dropout is off (but see colorize_samples).
        # The cast undoes a mixed-precision policy's float16 / bfloat16 outputs.
        outputs = generator({"L": scaled_l, **dict(zip(features, values))}, training=False)
        return tf.cast(outputs["ab"], tf.float32)

    def colorize_rgb(image, values, copies=1):
        """uint8 RGB (H, W, 3) and its features -> `copies` colorizations of it, uint8 (copies, H, W, 3)."""
        height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.int64))
        image = checked_size(image, height, width, max_pixels)
        # The copies of colorize_samples are as many images: together they are bounded as one is.
        copies_fit = tf.debugging.Assert(
            tf.cast(copies, tf.int64) * height * width <= max_pixels,
            [tf.strings.format("{} samples of an image of {}x{} pixels are over the limit of {} pixels set at "
                               "export (chroma export --max-pixels)", (copies, width, height, max_pixels))])
        with tf.control_dependencies([copies_fit]):
            image = tf.identity(image)
        full_l, _ = rgb_to_scaled_lab(image)
        # The generator sees the image resized exactly as in training (chroma.data.preprocess).
        small_l, _ = preprocess(image, image_size)
        small_ab = predict_ab(tf.repeat(small_l[None], copies, axis=0),
                              [tf.repeat(value[None], copies, axis=0) for value in values])
        ab = tf.image.resize(small_ab, tf.shape(image)[:2], method="bilinear")
        rgb = scaled_lab_to_rgb(tf.repeat(full_l[None], copies, axis=0), ab)
        return tf.cast(tf.round(rgb * 255.0), tf.uint8)

    def colorize_bytes(image_bytes, values, copies=1):
        return colorize_rgb(decode_photo(image_bytes, max_pixels), values, copies)

    # One photo's bytes and features -> its colorization, uint8 (H, W, 3). A function of its own, which
    # serving_default and colorize_encoded_as call: traced and saved once, not once per signature.
    colorize_photo = graph_function(lambda photo, *features: colorize_bytes(photo, features)[0],
                                    input_signature=[tf.TensorSpec((), tf.string), *image_features])

    def each_photo(function, inputs, output_dtype):
        """function(*one photo's inputs) for each photo of a batch (inputs: (N, ...) tensors), one at a time
        (bounded memory)."""
        return tf.map_fn(lambda photo: function(*photo), inputs, fn_output_signature=output_dtype,
                         parallel_iterations=1)

    @graph_function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes"), *batch_features])
    def serving_default(image_bytes, *values):
        # One array answers for all the photos, so they must share a size; the check reads only headers.
        sizes = tf.map_fn(lambda photo: tf.stack(display_size(photo)), image_bytes, fn_output_signature=tf.int64)
        same_size = tf.debugging.Assert(
            tf.reduce_all(sizes == sizes[:1]),
            [tf.strings.format("the photos of one serving_default call differ in size (height, width: {}); send "
                               "them one per call, or call colorize_encoded, which takes any sizes", sizes)],
        )
        with tf.control_dependencies([same_size]):
            colorized = each_photo(colorize_photo, (image_bytes, *values), tf.TensorSpec((None, None, 3), tf.uint8))
        return {"colorized": colorized}

    # `format` and `quality` come one per photo, as image_bytes: TensorFlow Serving's REST row format stacks every
    # input on axis 0, so each instance is then whole ({"image_bytes": {"b64": ...}, "format": "jpeg",
    # "quality": 90}), where a scalar input would allow only the columnar format.
    @graph_function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="image_bytes"), tf.TensorSpec((None,), tf.string, name="format"),
            tf.TensorSpec((None,), tf.int32, name="quality"), *batch_features,
        ]
    )
    def colorize_encoded_as(image_bytes, output_format, quality, *values):
        output_format, quality = checked_encoding(output_format, quality, tf.size(image_bytes))

        def encode(photo, photo_format, photo_quality, *features):
            return encode_as(colorize_photo(photo, *features), photo_format, photo_quality)

        return {"colorized_bytes": each_photo(encode, (image_bytes, output_format, quality, *values), tf.string)}

    @graph_function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes"), *batch_features])
    def colorize_encoded(image_bytes, *values):
        # colorize_encoded_as in PNG (which takes a quality and ignores it): one graph traced and saved, not two.
        photos = tf.shape(image_bytes)
        return colorize_encoded_as(image_bytes, tf.fill(photos, "png"), tf.fill(photos, 100), *values)

    @graph_function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8, name="image"), *image_features])
    def colorize_image(image, *values):
        return {"colorized": colorize_rgb(image, values)[0]}

    @graph_function(input_signature=[tf.TensorSpec((None, image_size, image_size, 1), tf.float32, name="scaled_l"),
                                     *batch_features])
    def colorize_lab(scaled_l, *values):
        return {"scaled_ab": predict_ab(scaled_l, values)}

    functions = {"serving_default": serving_default, "colorize_encoded": colorize_encoded,
                 "colorize_encoded_as": colorize_encoded_as, "colorize_image": colorize_image,
                 "colorize_lab": colorize_lab}
    dropouts = dropout_layers(generator)
    if dropouts:

        @graph_function(
            input_signature=[
                tf.TensorSpec((None, None, 3), tf.uint8, name="image"), tf.TensorSpec((), tf.int32, name="samples"),
                *image_features,
            ]
        )
        def colorize_samples(image, samples, *values):
            # Paper agosti, figure 4 (after pix2pix): dropout kept on at test time is the noise z of G(x, z),
            # so N copies of one image get N colorizations. Only dropout is switched on, and only while this
            # function is traced: batch norm keeps its moving statistics (training=True would normalise with
            # the copies' own statistics and update the saved averages), and the other signatures stay
            # deterministic. Each copy in the batch draws its own dropout mask.
            tf.debugging.assert_positive(samples, message="samples must be at least 1")
            with dropout_on(dropouts):
                return {"colorized": colorize_rgb(image, values, samples)}

        @graph_function(
            input_signature=[
                tf.TensorSpec((), tf.string, name="image_bytes"), tf.TensorSpec((), tf.int32, name="samples"),
                tf.TensorSpec((), tf.string, name="format"), tf.TensorSpec((), tf.int32, name="quality"),
                *image_features,
            ]
        )
        def colorize_samples_encoded_as(image_bytes, samples, output_format, quality, *values):
            output_format, quality = checked_encoding(output_format, quality, 1)
            tf.debugging.assert_positive(samples, message="samples must be at least 1")
            with dropout_on(dropouts):
                colorized = colorize_bytes(image_bytes, values, samples)
            encode = lambda rgb: encode_as(rgb, output_format, quality)  # noqa: E731
            return {"colorized_bytes": tf.map_fn(encode, colorized, fn_output_signature=tf.string)}

        @graph_function(
            input_signature=[
                tf.TensorSpec((), tf.string, name="image_bytes"), tf.TensorSpec((), tf.int32, name="samples"),
                *image_features,
            ]
        )
        def colorize_samples_encoded(image_bytes, samples, *values):
            # As colorize_encoded: colorize_samples_encoded_as in PNG.
            return colorize_samples_encoded_as(image_bytes, samples, tf.constant("png"), tf.constant(100), *values)

        functions["colorize_samples"] = colorize_samples
        functions["colorize_samples_encoded"] = colorize_samples_encoded
        functions["colorize_samples_encoded_as"] = colorize_samples_encoded_as
    # Concrete functions take their inputs by keyword, as the saved signatures do.
    return {name: function.get_concrete_function() for name, function in functions.items()}


def export_saved_model(generator, directory, image_size, max_pixels=MAX_PIXELS, result=None):
    """Writes `generator` (scaled L -> scaled ab, trained at image_size) as a SavedModel in `directory`.

    Its image signatures refuse images of more than max_pixels pixels. Its
    model card, README.md (chroma.model_card), shows `result`'s scores:
    chroma.model_card.scored_result's pair for a scored run, None for none.

    An earlier SavedModel there is replaced; a non-empty folder that is not
    one is refused rather than deleted. The model is written beside and moved
    into place at the end, so a failed export leaves no half-written folder.
    Also writes chroma.json (image size, model class, export time).
    """
    directory = Path(directory)
    replaceable = directory.is_dir() and (is_saved_model(directory) or not any(directory.iterdir()))
    if directory.exists() and not replaceable:
        raise ValueError(f"{directory} exists and is not a SavedModel or an empty folder; not replacing it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        module = tf.Module()
        module.generator = generator  # tracked, so its variables are saved
        # Dropout's random seed state (colorize_samples draws its masks from it) is a Keras variable that
        # TensorFlow's object graph does not reach through the layers; listing every variable saves it.
        module.generator_variables = generator.variables
        functions = serving_functions(generator, image_size, max_pixels)
        tf.saved_model.save(module, str(staging), signatures=functions)
        metadata = {
            "image_size": image_size,
            "max_pixels": max_pixels,
            "model": type(generator).__name__,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "signatures": list(functions),
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        (staging / CARD_FILE).write_text(model_card(metadata["model"], image_size, result), encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def load_generator(path, assets=None):
    """A .keras file -> its Generator. A trained wrapper (a ColorizationModel: ConditionalGAN, RegressionColorizer)
    gives the generator it holds. assets: see load_keras_model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras model file")
    model = load_keras_model(path, assets)
    if isinstance(model, ColorizationModel):
        model = model.generator
    if not isinstance(model, Generator):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a chroma generator or a model trained around one")
    return model


def scored_generator(run_dir, assets=None):
    """(generator, image size) of a run folder: the generator its table scored, at the size its run.json names.
    assets: see load_keras_model."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {RUN_FILE}: not a run folder 'chroma reproduce' or 'chroma "
                                "train' wrote")
    if not (run_dir / SCORED_GENERATOR).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {SCORED_GENERATOR}: its run has not finished and been scored "
                                "(rerun its command to resume it)")
    try:
        image_size = json.loads((run_dir / RUN_FILE).read_text())["settings"]["image_size"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{run_dir / RUN_FILE} does not name the run's image size: {error}") from None
    return load_generator(run_dir / SCORED_GENERATOR, assets), int(image_size)


def load_keras_model(path, assets=None):
    """A .keras file of chroma's models, as saved (uncompiled), with Keras's safe mode on. assets: {name: path}
    of the pretrained SavedModels its layers run (--asset NAME=PATH), which the file itself may not name
    (chroma.models.loading)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
    with assets_provided(assets):
        return keras.saving.load_model(path, compile=False, safe_mode=True)


def describe_signatures(directory):
    """One line per signature of the SavedModel in `directory`, loaded back: 'name: inputs -> outputs'."""

    def specs(named):
        return ", ".join(
            f"{name} {spec.dtype.name} {spec.shape if spec.shape.rank else 'scalar'}" for name, spec in named.items()
        )

    loaded = tf.saved_model.load(str(directory))
    return [
        f"{name}: {specs(function.structured_input_signature[1])} -> {specs(function.structured_outputs)}"
        for name, function in loaded.signatures.items()
    ]
