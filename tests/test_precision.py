"""`--precision auto`: the dtype policy the hardware computes fastest, chosen from faked GPUs and CPU flags."""

import json

import pytest
import tensorflow as tf

from chroma import cli
from chroma.recipes import load_experiment, select_runs
from chroma.training import Runtime, train
from chroma.training.hardware import choose_precision, cpu_flags
from test_runs import RECIPE

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f"})


def test_a_gpu_gets_float16_with_loss_scaling_whatever_the_cpu():
    policy, why = choose_precision("auto", gpus=["/physical_device:GPU:0"], flags=frozenset({"avx512_bf16"}))
    assert policy == "mixed_float16" and "1 GPU" in why


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_a_cpu_with_native_bfloat16_gets_mixed_bfloat16(flag):
    policy, why = choose_precision("auto", gpus=[], flags=AVX2_ONLY | {flag})
    assert policy == "mixed_bfloat16" and flag in why


def test_a_cpu_that_would_emulate_bfloat16_stays_float32():
    policy, why = choose_precision("auto", gpus=[], flags=AVX2_ONLY)
    assert policy == "float32" and "no native bfloat16" in why
    assert choose_precision("auto", gpus=[], flags=frozenset())[0] == "float32"  # flags unknown (macOS)


def test_a_tpu_gets_bfloat16(monkeypatch):
    class FakeTPUStrategy:
        pass

    monkeypatch.setattr(tf.distribute, "TPUStrategy", FakeTPUStrategy)
    policy, why = choose_precision("auto", FakeTPUStrategy(), gpus=["/physical_device:GPU:0"], flags=AVX2_ONLY)
    assert policy == "mixed_bfloat16" and "TPU" in why


def test_an_explicit_precision_is_kept_and_a_misspelt_one_refused():
    assert choose_precision("float32", gpus=["gpu"], flags=frozenset({"amx_bf16"})) == ("float32", "as asked")
    with pytest.raises(ValueError, match="choose from auto, float32, mixed_bfloat16, mixed_float16"):
        choose_precision("bfloat16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse avx2 avx512_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_a_run_says_which_precision_auto_chose_and_records_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("chroma.training.hardware.cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    recipe = load_experiment(str(RECIPE))
    (run,) = select_runs(recipe, ["gan"])
    # Chosen, said and recorded before the first step: no epoch is trained (a constant rate, as a cosine
    # schedule needs steps to span).
    train(run._replace(compile_args=recipe.constant_recipe), recipe.SCALES["smoke"]._replace(epochs=0), tmp_path,
          Runtime(precision="auto"), verbose=0)
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["precision"] == "float32"
    assert "no native bfloat16" in written["precision_reason"]
    assert f"{run.name}: precision float32 (auto: this CPU has no native bfloat16" in capsys.readouterr().err


def test_auto_is_the_command_lines_default():
    args = cli.build_parser().parse_args(["reproduce", "nampouri"])
    assert args.precision == "auto"
