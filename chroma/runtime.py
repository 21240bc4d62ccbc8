"""What a run executes on, as one value (Runtime), and the names the command line offers for it.

No TensorFlow here, so `chroma --help` lists the choices at once; chroma.training.hardware makes the strategy and
chooses the precision.
"""

from typing import NamedTuple

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class Runtime(NamedTuple):
    """strategy: a tf.distribute.Strategy (None: TensorFlow's default, one device). precision: one of PRECISIONS,
    or "auto" for the hardware's (chroma.training.hardware.choose_precision). jit: compile the train and test
    steps with XLA."""

    strategy: object = None
    precision: str = "float32"
    jit: bool = False
