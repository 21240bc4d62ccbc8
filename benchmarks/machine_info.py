"""What a benchmark ran on: the lines printed before any figure, without which no figure can be compared."""

import os
from pathlib import Path

import tensorflow as tf

from chroma.training.hardware import choose_precision, cpu_flags

# The CPU features that decide TensorFlow's CPU speed: AVX2 and AVX-512 for float32 kernels, AVX-512-BF16 and
# AMX for native bfloat16 (choose_precision picks mixed_bfloat16 only with one of the last three).
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name as Linux reports it, or "unknown" elsewhere."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"


def onednn_state():
    """Whether TensorFlow's CPU kernels use oneDNN: on by default for x86 Linux builds, off with
    TF_ENABLE_ONEDNN_OPTS=0. get_build_info() does not say; TensorFlow's own port check does (private API)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return "unknown"
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    return f"{'on' if _pywrap_util_port.IsMklEnabled() else 'off'} (TF_ENABLE_ONEDNN_OPTS={setting})"


def gpu_names():
    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


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
