"""tfds: data specs: a TensorFlow Datasets dataset prepared here with TFDS's own builder, read like any source."""

import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from chroma import cli
from chroma.data import count_elements
from chroma.data.specs import captions_of, dataset_from_spec, resolve
from chroma.models.caption_tokenizer import build_vocabulary

tfds = pytest.importorskip("tensorflow_datasets")
pytestmark = pytest.mark.xdist_group("tfds")  # the prepared dataset and TFDS's reader: once, on one worker

# (name, image, label, captions): two classes, one photo without captions, one gray.
PHOTOS = [
    ("chelsea", skimage.data.chelsea()[::4, ::4], "cat", ["a ginger cat", "a cat on a mat"]),
    ("coffee", skimage.data.coffee()[::4, ::4], "cup", ["a cup of coffee"]),
    ("astronaut", skimage.data.astronaut()[::8, ::8], "cat", []),
    ("camera", np.stack([skimage.data.camera()[::8, ::8]] * 3, axis=-1), "cup", ["a man with a camera"]),
]


class ChromaTestPhotos(tfds.core.GeneratorBasedBuilder):
    """Four bundled photos as a TFDS dataset with COCO Captions' features: image, filename, captions, a label."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "image/filename": tfds.features.Text(),
            "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
            "label": tfds.features.ClassLabel(names=["cat", "cup"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for name, image, label, captions in PHOTOS:
            yield name, {"image": image, "image/filename": f"{name}.png", "captions": {"text": captions},
                         "label": label}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfds")
    ChromaTestPhotos(data_dir=str(folder)).download_and_prepare()
    return folder


def spec(data_dir, split="train"):
    return f"tfds:chroma_test_photos?split={split}&data_dir={data_dir}"


def test_a_tfds_split_reads_images_captions_labels_and_names(data_dir):
    source = resolve(spec(data_dir))
    assert count_elements(source) == 4 and count_elements(source, batch_size=3) == 2
    examples = list(dataset_from_spec(spec(data_dir), 32, batch_size=4).unbatch().as_numpy_iterator())
    by_name = {example["name"].decode(): example for example in examples}
    assert sorted(by_name) == ["astronaut.png", "camera.png", "chelsea.png", "coffee.png"]
    for name, _, label, captions in PHOTOS:
        example = by_name[f"{name}.png"]
        assert example["L"].shape == (32, 32, 1) and example["ab"].shape == (32, 32, 2)
        assert example["caption"].decode() == (captions[0] if captions else "")
        assert example["label"] == ["cat", "cup"].index(label)
    assert np.abs(by_name["camera.png"]["ab"]).max() < 0.01 < np.abs(by_name["coffee.png"]["ab"]).max()


def test_tfds_splits_slice_drop_gray_and_give_captions(data_dir):
    assert count_elements(resolve(spec(data_dir, "train[:2]"))) == 2
    assert len(list(dataset_from_spec(spec(data_dir, "train[:2]"), 16, batch_size=1))) == 2
    kept = dataset_from_spec(spec(data_dir), 16, batch_size=1, drop_gray=True)
    assert sorted(batch["name"][0].numpy().decode() for batch in kept) == ["astronaut.png", "chelsea.png",
                                                                            "coffee.png"]
    assert {"ginger", "coffee", "camera"} <= set(build_vocabulary(captions_of(resolve(spec(data_dir))))
                                                 .get_vocabulary())


def test_shuffled_repeated_tfds_data_trains_through_the_engine_data(data_dir):
    shuffled = dataset_from_spec(spec(data_dir), 16, batch_size=2, shuffle=True, repeat=True, flip=True, seed=3)
    names = [name.decode() for batch in shuffled.take(4) for name in batch["name"].numpy()]
    assert sorted(names[:4]) == sorted(names[4:]) == ["astronaut.png", "camera.png", "chelsea.png", "coffee.png"]


def test_baseline0_fits_on_a_tfds_spec_from_the_command_line(data_dir, tmp_path, capsys):
    assert cli.main(["baseline0", "--data", spec(data_dir), "--image-size", "16", "--batch-size", "2",
                     "--output", str(tmp_path / "baseline0.keras")]) == 0
    assert (tmp_path / "baseline0.keras").is_file()
    assert "baseline0" in capsys.readouterr().out


@pytest.mark.slow("starts TensorFlow in a fresh process; the reads above, in this process, use the same prepared files")
def test_a_fresh_process_reads_the_prepared_files_without_the_builder_code(data_dir):
    """What a TPU user has: a dataset prepared elsewhere, in a folder or a bucket, and no builder class."""
    script = f"""
from chroma.data import count_elements
from chroma.data.specs import resolve
print(count_elements(resolve({spec(data_dir)!r})))
"""
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.strip().splitlines()[-1] == "4"


def test_what_is_not_prepared_is_an_error_naming_the_folder_never_a_download(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for missing in (f"tfds:mnist?data_dir={empty}", f"tfds:no_such_dataset?data_dir={empty}"):
        with pytest.raises(ValueError, match=f"is not prepared in {empty}: chroma never downloads"):
            resolve(missing)
    assert not any(empty.iterdir())  # nothing was fetched into it
    with pytest.raises(ValueError, match="no split 'test'; it has \\['train'\\]"):
        resolve(spec(data_dir, "test"))
    with pytest.raises(ValueError, match="unknown option 'take'.*use split, data_dir"):
        resolve(f"tfds:chroma_test_photos?take=2&data_dir={data_dir}")
    assert tf.io.gfile.exists(str(data_dir / "chroma_test_photos" / "1.0.0" / "dataset_info.json"))
