"""Where a result comes from: the code that produced it and the machine it ran on, as results.json records them.

Without this a number cannot be compared with another: the same recipe on another commit, another CPU or another
precision is another experiment.
"""

import os
import subprocess
from pathlib import Path

import chroma
from chroma.training.hardware import cpu_flags

# The CPU features that decide TensorFlow's CPU speed: AVX2 and AVX-512 for float32 kernels, AVX-512-BF16 and
# AMX for native bfloat16 (choose_precision picks mixed_bfloat16 only with one of the last three).
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# The folders whose uncommitted changes make a result's commit not the whole story (runs/ and docs do not).
CODE_FOLDERS = ("chroma", "experiments")


def code_version():
    """{"commit": git's HEAD, "modified": whether chroma's code differs from it} in a git checkout of chroma;
    {"version": the package's version} where there is none (an installed wheel)."""
    checkout = Path(chroma.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no",
                                  "--", *CODE_FOLDERS], capture_output=True, text=True, timeout=30,
                                 check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"version": chroma.__version__}
    return {"commit": commit, "modified": bool(changes)}


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name as Linux reports it, or "unknown" elsewhere."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"


def gpu_names():
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


def machine():
    """{"cpu", "cores", "cpu_flags" (those of RELEVANT_FLAGS it has), "gpus", "tensorflow"}."""
    import tensorflow as tf

    flags = cpu_flags()
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "cpu_flags": [flag for flag in RELEVANT_FLAGS if flag in flags], "gpus": gpu_names(),
            "tensorflow": tf.__version__}


def provenance():
    """{"code": code_version(), "machine": machine()}: what results.json records of every command's results."""
    return {"code": code_version(), "machine": machine()}
