"""Export a colorizer as TensorFlow Lite models, for phones and other small devices.

Each .tflite file holds one signature, serving_default, at the size the
generator was trained at (S):

  image: uint8 RGB (1, S, S, 3), the photo already resized to S x S ->
    colorized: uint8 RGB (1, S, S, 3), the photo's L with the generator's colours
    scaled_ab: float32 (1, S, S, 2), the colours alone, as the SavedModel's colorize_lab returns them

The Lab conversions (chroma.color) run inside the model, so a phone app feeds
the camera's pixels and shows the pixels it gets back. scaled_ab is there for
an app that wants the photo's full resolution: upsample it and join it to the
full-size photo's L, as the SavedModel's image signatures do (chroma.export).

Two files: model.tflite (float32 weights) and model_dynamic_range.tflite,
TFLite's dynamic-range quantisation (tf.lite.Optimize.DEFAULT, no
representative dataset): int8 weights, about a quarter of the size, and
activations quantised as they come by the operators that support it.
Input and outputs are the same in both.
"""

import tempfile
from pathlib import Path

import tensorflow as tf

from chroma.color import rgb_to_scaled_lab, scaled_lab_to_rgb
from chroma.export import dropout_layers, graph_function
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.segmentation_prior import SegmentationPrior

FLOAT_FILE = "model.tflite"
DYNAMIC_RANGE_FILE = "model_dynamic_range.tflite"


def hub_networks(model):
    """The layers inside `model`, however deeply nested, that run a SavedModel loaded with hub.load.

    InceptionEmbedding and SegmentationPrior keep what hub.load returned in
    `module`, and only for a TF-Hub / SavedModel source (their "keras" and
    "random" sources are Keras layers).
    """
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, (InceptionEmbedding, SegmentationPrior)) and hasattr(layer, "module"):
            found.append(layer)
        found += hub_networks(layer)
    return found


def tflite_refusal(generator):
    """Why `generator` cannot become a TFLite model of TFLite's built-in ops, or None if it can.

    Each reason is one the converter would otherwise report only after
    tracing and converting the whole network, or not at all.
    """
    name = type(generator).__name__
    strings = sorted({feature.source for feature in generator.batch_inputs().values()} - {"L"})
    if strings:
        # Measured on CaptionTokenizer with TF 2.21's converter: it fails on RaggedTensorToTensor,
        # StaticRegexReplace, StringLower and StringSplitV2, which only the TF Select (Flex) runtime has.
        return (f"{name} reads {', '.join(strings)} (a string per image), which it tokenises with TensorFlow string "
                "ops that TFLite's built-in ops lack; export it as a SavedModel, which takes the caption")
    hubs = hub_networks(generator)
    if hubs:
        # Measured with TF 2.21: the hub network's variables live in the loaded SavedModel, not among the
        # generator's Keras variables that save_for_conversion tracks, so saving the function fails (an
        # AssertionError about an 'untracked' resource).
        sources = ", ".join(f"{type(layer).__name__} from {layer.source!r}" for layer in hubs)
        return (f"{name} holds a frozen TF-Hub network ({sources}): a SavedModel loaded with hub.load, whose "
                "weights are not the generator's Keras variables that TFLite conversion freezes; export it "
                "as a SavedModel")
    if any(layer.at_inference for layer in dropout_layers(generator)):
        # Measured with TF 2.21: the masks' StatelessRandomGetKeyCounter and StatelessRandomUniformV2 are TF
        # Select ops too.
        return (f"{name} keeps its dropout on at inference (dropout_at_inference), and dropout's random masks "
                "are TensorFlow ops that TFLite's built-in ops lack; export it as a SavedModel")
    return None


def save_for_conversion(generator, image_size, directory):
    """Writes the TFLite model's computation, uint8 RGB (1, S, S, 3) -> colorized and scaled_ab, as the
    serving_default signature of a SavedModel in `directory`, for TFLiteConverter.from_saved_model.

    TFLiteConverter.from_concrete_functions writes such a SavedModel itself, on each conversion; written once,
    it serves both files (a ResNet-18 U-Net: 8.6 s for both instead of 13.7 s on 2 CPU cores).
    """

    @graph_function(input_signature=[tf.TensorSpec((1, image_size, image_size, 3), tf.uint8, name="image")])
    def colorize(image):
        scaled_l, _ = rgb_to_scaled_lab(image)
        # As chroma.export's colorize_lab: training=False, and the cast undoes a mixed-precision policy.
        scaled_ab = tf.cast(generator({"L": scaled_l}, training=False)["ab"], tf.float32)
        rgb = scaled_lab_to_rgb(scaled_l, scaled_ab)
        return {"colorized": tf.cast(tf.round(rgb * 255.0), tf.uint8), "scaled_ab": scaled_ab}

    module = tf.Module()
    # The converter freezes the tf.Variables the SavedModel tracks into constants. Tracking the Keras 3
    # generator, or its Keras variables, TF 2.21's converter leaves them as resource variables (VAR_HANDLE,
    # READ_VARIABLE) that nothing initialises, and the model returns garbage; the tf.Variables under them
    # (`.value`) are frozen.
    module.variables_to_freeze = [variable.value for variable in generator.variables]
    tf.saved_model.save(module, str(directory), signatures={"serving_default": colorize.get_concrete_function()})


def export_tflite(generator, directory, image_size):
    """Writes `generator` (scaled L -> scaled ab, trained at image_size) as model.tflite and
    model_dynamic_range.tflite in `directory`; returns their paths.

    A generator that cannot convert is refused with a ValueError saying why,
    before anything is converted or written.
    """
    refusal = tflite_refusal(generator)
    if refusal:
        raise ValueError(f"cannot export to TFLite: {refusal}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as saved_model:
        save_for_conversion(generator, image_size, saved_model)
        for name, quantize in ((FLOAT_FILE, False), (DYNAMIC_RANGE_FILE, True)):
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
            if quantize:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative dataset: dynamic range
            path = directory / name
            path.write_bytes(converter.convert())
            paths.append(path)
    return paths
