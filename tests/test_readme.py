"""The README's code runs as written."""

from pathlib import Path

import tensorflow as tf

README = Path(__file__).parent.parent / "README.md"


def test_the_notebook_example_trains_and_colorizes_a_photo():
    """The "In a notebook" code, as a reader would paste it."""
    code = README.read_text().split("**In a notebook**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    names = {}
    exec(compile(code, str(README), "exec"), names)  # noqa: S102 - the documentation's own code
    assert names["colorized"].shape == (1, 64, 64, 3)
    assert names["ab"].dtype == tf.float32
