"""Where training runs (a tf.distribute strategy) and at what precision."""

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf

from chroma.runtime import PRECISIONS, STRATEGIES


def make_strategy(name="default", tpu_address=None):
    """The tf.distribute strategy a run builds its models and optimizers under.

    - default: one device (the GPU if there is one, else the CPU).
    - mirrored: every local GPU (or the CPU), gradients all-reduced each step.
    - multiworker: synchronous data parallelism across machines; each worker
      reads its role from the TF_CONFIG environment variable (see README,
      "Training on several machines").
    - tpu: a Cloud TPU at `tpu_address` ("local" on a TPU VM, or grpc://IP:8470
      / the TPU's name); data must then come from TFRecords on gs://
      (check_tpu_data).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return MultiWorkerMirroredStrategy()
    if name == "tpu":
        if not tpu_address:
            raise ValueError("--strategy tpu needs --tpu ADDRESS ('local' on a TPU VM)")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def check_tpu_data(specs):
    """Refuses training data (data specs) that a TPU cannot read, before connecting to it takes minutes.

    A TPU's input pipeline runs on its hosts, which see neither this
    machine's disk nor its Python (images decoded by Pillow): they read
    TFRecords from Cloud Storage, which `chroma data build` writes.
    """
    unreadable = [spec for spec in specs if not spec.startswith("gs://")]
    if unreadable:
        raise ValueError(
            f"--strategy tpu trains on TFRecords on gs:// only (a TPU's hosts cannot read local files), got "
            f"{', '.join(dict.fromkeys(unreadable))}; write them once with `chroma data build SPEC -o gs://bucket/"
            "folder` and train on that folder")


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's MultiWorkerMirroredStrategy with the `reduce` Keras's fit expects of it.

    Under more than one worker, Keras 3's fit reduces (1) its first
    distributed batch, a dict, to build the model, and (2) every step's logs,
    scalars, along axis 0. TensorFlow's reduce takes a single value, and an
    axis the value has (keras-team/keras#20329, tensorflow/tensorflow#72388):
    this one takes nested values, as MirroredStrategy's does, and reduces a
    scalar across replicas only, the one thing axis 0 of a scalar can mean.
    """

    def reduce(self, reduce_op, value, axis=None):
        reduce_one = super().reduce

        def reduce_each(one):
            scalar = self.experimental_local_results(one)[0].shape.rank == 0
            return reduce_one(reduce_op, one, None if scalar else axis)

        return tf.nest.map_structure(reduce_each, value)


def is_chief(strategy=None):
    """Whether this process writes the run's files: the one process of a single-machine strategy, or a
    multi-worker cluster's chief (the "chief" task, else worker 0). None: the current strategy."""
    return (strategy or tf.distribute.get_strategy()).extended.should_checkpoint


def worker_count(strategy=None):
    """The processes training together: a multi-worker cluster's workers, else one. None: the current strategy."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)


def wait_for_workers(strategy=None):
    """Returns once every worker has called it (a collective sum over all replicas); at once on one machine.

    What a multi-worker run's other workers wait at for the chief's results (chroma.reproduce).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if worker_count(strategy) > 1:
        strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(1))), axis=None)


@contextmanager
def write_dir(out_dir, strategy):
    """Where this process writes what `out_dir` should hold: out_dir itself for the chief, a temporary
    directory, removed on exit, for the other workers.

    Every worker must still write: saving a checkpoint or weights reads
    variables, which can take a collective step all workers join (TensorFlow's
    multi-worker guide, "Model saving and loading").
    """
    if is_chief(strategy):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        yield Path(out_dir)
        return
    temporary = tempfile.mkdtemp(prefix="chroma-worker-")
    try:
        yield Path(temporary)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


# CPU features (Linux /proc/cpuinfo flags) with native bfloat16 arithmetic: bfloat16 is about twice as fast as
# float32 there, and 5-10x slower on CPUs without them (AVX2 only), which emulate it.
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags, as Linux lists them; empty where it does not (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def choose_precision(requested="auto", strategy=None, gpus=None, flags=None):
    """(policy, why): `requested` itself, or for "auto" what the hardware computes fastest.

    auto: mixed_float16 on a GPU (tensor cores; losses scaled, optimizer_for),
    mixed_bfloat16 on a TPU or a CPU with native bfloat16 (AVX-512-BF16 or
    AMX), float32 on any other CPU. gpus and flags: the detected GPUs and CPU
    flags, read from this machine when None (tests fake them).
    """
    if requested != "auto":
        if requested not in PRECISIONS:
            raise ValueError(f"unknown precision {requested!r}; choose from auto, {', '.join(PRECISIONS)}")
        return requested, "as asked"
    if isinstance(strategy or tf.distribute.get_strategy(), tf.distribute.TPUStrategy):
        return "mixed_bfloat16", "auto: a TPU computes in bfloat16"
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    if gpus:
        return "mixed_float16", f"auto: {len(gpus)} GPU(s), whose tensor cores compute in float16"
    flags = cpu_flags() if flags is None else flags
    native = [flag for flag in NATIVE_BFLOAT16_FLAGS if flag in flags]
    if native:
        return "mixed_bfloat16", f"auto: this CPU computes bfloat16 natively ({', '.join(native)})"
    return "float32", f"auto: this CPU has no native bfloat16 ({' or '.join(NATIVE_BFLOAT16_FLAGS)}), which it would emulate"


def set_precision(policy="float32"):
    """Sets Keras's global dtype policy; call before building models.

    mixed_bfloat16 suits CPUs with AMX/AVX-512 and TPUs; mixed_float16 suits
    GPUs and needs loss scaling (see `optimizer_for`). chroma's models keep
    their outputs, and so every loss, in float32.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; choose from {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_dtype_policy(policy)


def optimizer_for(optimizer):
    """Wraps `optimizer` in dynamic loss scaling when the policy is mixed_float16.

    float16 gradients underflow without it; bfloat16 has float32's range and needs none.
    """
    if keras.mixed_precision.dtype_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
