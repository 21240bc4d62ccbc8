"""Where training runs (a tf.distribute strategy) and at what precision."""

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def make_strategy(name="default", tpu_address=None):
    """The tf.distribute strategy a run builds its models and optimizers under.

    - default: one device (the GPU if there is one, else the CPU).
    - mirrored: every local GPU (or the CPU), gradients all-reduced each step.
    - multiworker: synchronous data parallelism across machines; each worker
      reads its role from the TF_CONFIG environment variable.
    - tpu: a Cloud TPU at `tpu_address` ("local" on a TPU VM, or grpc://IP:8470
      / the TPU's name); data must then come from TFRecords on gs://.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        if not tpu_address:
            raise ValueError("--strategy tpu needs --tpu ADDRESS ('local' on a TPU VM)")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


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
