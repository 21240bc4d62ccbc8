"""The README's Python runs as written, each block in a folder that holds what it names."""

import contextlib
import re
import shutil
from pathlib import Path

import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma.serve import ModelServer
from helpers import baseline0_exported, serving_in_a_thread

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
SERVE_URL = "http://127.0.0.1:8501"  # where the README's HTTP client calls `chroma serve`
# With test_export.py: the session's baseline0 and its SavedModel are made once, on one worker.
pytestmark = pytest.mark.xdist_group("baseline0")


@pytest.fixture(scope="module")
def readers_folder(tmp_path_factory):
    """A folder with what the blocks read: saved_models/baseline0 (exported) and photo.jpg."""
    folder = tmp_path_factory.mktemp("reader")
    shutil.copytree(baseline0_exported(tmp_path_factory)[1], folder / "saved_models" / "baseline0")
    Image.fromarray(skimage.data.chelsea()).save(folder / "photo.jpg")
    return folder


def test_the_readme_has_python_to_run():
    assert len(BLOCKS) >= 2


def in_its_tier(block):
    """A block that trains (the README's sizes, as written: 8 steps of a U-Net GAN) runs in the slow tier."""
    if ".fit(" not in BLOCKS[block]:
        return block
    return pytest.param(block, marks=pytest.mark.slow(
        "trains the README's U-Net GAN for 8 steps at the sizes it shows; test_training.py trains ConditionalGAN "
        "in the fast tier"))


@pytest.mark.parametrize("block", [in_its_tier(block) for block in range(len(BLOCKS))])
def test_each_python_block_runs(block, readers_folder, monkeypatch):
    monkeypatch.chdir(readers_folder)
    names = {}
    source = BLOCKS[block]
    server = ModelServer(readers_folder / "saved_models" / "baseline0") if SERVE_URL in source else None
    with serving_in_a_thread(server) if server else contextlib.nullcontext(SERVE_URL) as url:
        exec(compile(source.replace(SERVE_URL, url), f"{README}, Python block {block + 1}", "exec"), names)  # noqa: S102
    images = {name: value for name, value in names.items() if name in ("colorized", "rgb")}
    assert images, "each block ends with a colorized image"
    for image in images.values():
        assert image.shape[-1] == 3 and tf.reduce_max(image) > 0
