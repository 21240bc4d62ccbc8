"""A .keras file from outside is data: loading one never runs a SavedModel the file names."""

import json
import zipfile

import keras
import pytest
import tensorflow as tf
from PIL import Image

from chroma import cli
from chroma.data import samples
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.network_generator import NetworkGenerator
from chroma.models.segmentation_prior import PASCAL_VOC_CLASSES, SegmentationPrior

pytestmark = pytest.mark.xdist_group("model_files")


class Segmenter(tf.Module):
    """A 21-class 'segmenter' SavedModel; with `marker`, calling it writes that file, as an attacker's would."""

    def __init__(self, marker=None):
        super().__init__()
        self.marker = marker

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def __call__(self, images):
        if self.marker is not None:
            tf.io.write_file(self.marker, "ran")
        return tf.zeros((*tf.unstack(tf.shape(images)[:3]), PASCAL_VOC_CLASSES))


def with_source(keras_file, source, tmp_path):
    """A copy of `keras_file` whose segmentation prior's config names `source`, as a hostile file would."""
    hostile = tmp_path / "hostile.keras"
    with zipfile.ZipFile(keras_file) as original, zipfile.ZipFile(hostile, "w") as copy:
        for item in original.infolist():
            content = original.read(item)
            if item.filename == "config.json":
                content = content.replace(b'"source": "random"', json.dumps({"source": source})[1:-1].encode())
                assert source.encode() in content
            copy.writestr(item, content)
    return hostile


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(a generator .keras file whose segmentation prior names a SavedModel that writes `marker` when run,
    a benign segmenter SavedModel, the marker's path, a folder holding one photo)."""
    root = tmp_path_factory.mktemp("model_files")
    marker = root / "written_by_the_model_file"
    tf.saved_model.save(Segmenter(str(marker)), str(root / "hostile_segmenter"))
    tf.saved_model.save(Segmenter(), str(root / "trusted_segmenter"))
    generator = NetworkGenerator(keras.Sequential([
        keras.Input((None, None, 1)), SegmentationPrior(), keras.layers.Conv2D(2, 1, activation="tanh")]))
    generator({"L": tf.zeros((1, 8, 8, 1))})
    generator.save(root / "generator.keras")
    (root / "photos").mkdir()
    Image.fromarray(samples().records[0].load(max_side=32)).save(root / "photos" / "photo.png")
    hostile = with_source(root / "generator.keras", str(root / "hostile_segmenter"), root)
    return hostile, root / "trusted_segmenter", marker, root / "photos"


def test_a_model_file_naming_a_savedmodel_is_refused_by_every_command_and_runs_nothing(files, tmp_path, capsys):
    hostile, _, marker, photos = files
    for command in (["colorize", str(photos), "--model", str(hostile), "--image-size", "8", "-o", str(tmp_path / "c")],
                    ["export", "--model", str(hostile), "--image-size", "8", "-o", str(tmp_path / "e")],
                    ["evaluate", "--model", str(hostile), "--image-size", "8", "--data", str(photos)]):
        assert cli.main(command) == 2, command
        refusal = capsys.readouterr().err
        assert "segmentation prior names a SavedModel to load and run" in refusal, command
        assert "pass --asset deeplabv3=PATH" in refusal
    assert not marker.exists()
    assert not (tmp_path / "c").exists() and not (tmp_path / "e").exists()
    # Paper bruvik's Inception embedding takes its TF-Hub SavedModel the same way.
    with pytest.raises(ValueError, match="Inception embedding names a SavedModel.*pass --asset inception=PATH"):
        InceptionEmbedding.from_config({"source": str(hostile), "weights": None, "probabilities": False})


def test_the_savedmodel_a_model_file_runs_is_the_one_the_user_passes(files, tmp_path, capsys):
    hostile, trusted, marker, photos = files
    assert cli.main(["colorize", str(photos), "--model", str(hostile), "--image-size", "8", "-o", str(tmp_path),
                     "--asset", f"deeplabv3={trusted}"]) == 0
    assert (tmp_path / "photo.png").is_file() and not marker.exists()
