"""What a benchmark ran on: the lines printed before any figure, without which no figure can be compared."""

import os

import tensorflow as tf

from chroma.provenance import RELEVANT_FLAGS, cpu_model, gpu_names
from chroma.training.hardware import choose_precision, cpu_flags


def onednn_state():
    """Whether TensorFlow's CPU kernels use oneDNN: on by default for x86 Linux builds, off with
    TF_ENABLE_ONEDNN_OPTS=0. get_build_info() does not say; TensorFlow's own port check does (private API)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return "unknown"
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    return f"{'on' if _pywrap_util_port.IsMklEnabled() else 'off'} (TF_ENABLE_ONEDNN_OPTS={setting})"


def machine_lines():
    """The machine, TensorFlow's build, and the precision chroma's auto choice gives here."""
    flags = cpu_flags()
    present = [flag for flag in RELEVANT_FLAGS if flag in flags]
    absent = [flag for flag in RELEVANT_FLAGS if flag not in flags]
    build = tf.sysconfig.get_build_info()
    cuda = (f"CUDA {build.get('cuda_version')}, cuDNN {build.get('cudnn_version')}"
            if tf.test.is_built_with_cuda() else "no")
    precision, why = choose_precision("auto")
    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} cores",
        f"CPU flags present: {' '.join(present) or 'none'}; absent: {' '.join(absent) or 'none'}",
        f"TensorFlow {tf.__version__}: oneDNN {onednn_state()}; built with CUDA: {cuda}",
        f"GPUs: {', '.join(gpu_names()) or 'none'}",
        f"precision auto: {precision} ({why})",
    ]
