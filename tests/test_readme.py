"""The README's Python runs as written, each block in a folder that holds what it names."""

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma import data
from chroma.export import export_saved_model
from chroma.models.baseline0 import MeanColorBaseline

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
SERVE_URL = "http://127.0.0.1:8501"  # where the README's HTTP client calls `chroma serve`


@contextlib.contextmanager
def serving(model):
    """`chroma serve --model model` on a free port while the block runs; its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "chroma.cli", "serve", "--model", str(model), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving"), line
        yield line.split("page ")[1].split("/,")[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def readers_folder(tmp_path_factory):
    """A folder with what the blocks read: saved_models/baseline0 (exported) and photo.jpg."""
    folder = tmp_path_factory.mktemp("reader")
    baseline = MeanColorBaseline()
    baseline.compile()
    for batch in data.make_dataset(data.samples(), 32, batch_size=8):
        baseline.train_step(batch)
    export_saved_model(baseline, folder / "saved_models" / "baseline0", 32)
    Image.fromarray(skimage.data.chelsea()).save(folder / "photo.jpg")
    return folder


def test_the_readme_has_python_to_run():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_each_python_block_runs(block, readers_folder, monkeypatch):
    monkeypatch.chdir(readers_folder)
    names = {}
    source = BLOCKS[block]
    with serving(readers_folder / "saved_models" / "baseline0") if SERVE_URL in source else contextlib.nullcontext(
            SERVE_URL) as url:
        exec(compile(source.replace(SERVE_URL, url), f"{README}, Python block {block + 1}", "exec"), names)  # noqa: S102
    images = {name: value for name, value in names.items() if name in ("colorized", "rgb")}
    assert images, "each block ends with a colorized image"
    for image in images.values():
        assert image.shape[-1] == 3 and tf.reduce_max(image) > 0
