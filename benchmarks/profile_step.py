"""Where a train step's time goes on a CPU: TensorFlow's profiler around a few steps, op time summed by op type.

    .venv/bin/python benchmarks/profile_step.py                       # pix2pix, float32, 256x256, batch 2, 2 steps
    .venv/bin/python benchmarks/profile_step.py --precision mixed_bfloat16 --benchmark wgan_gp --steps 1
    .venv/bin/python benchmarks/profile_step.py --by scope             # by network: generator, adam, ...

The model and its input are train_step.py's (the recipe's build and compile at
paper settings, a constant batch); one unprofiled step traces it first. The
profiler's trace (an XSpace protobuf) is read with TensorFlow's private
tensorflow.tsl.profiler.protobuf module: every op kernel that ran on
TensorFlow's op threads (tf_Compute) is summed by its op type, or by the first
name scope of its op inside the step function: a network's layers
(u_net_generator_1, patch_discriminator_1, ...), its gradients
(gradient_tape), an optimizer's updates (adam, adam_1: in the order the
recipe creates them, G's first). A kernel's time includes the intra-op worker
threads it waits for, and two kernels may run at once, so the total can exceed
the steps' wall-clock: the shares are what to read. oneDNN's kernels show as
_MklNative*; a transposed convolution (the U-Net's decoder) runs as
Conv2DBackpropInput in the forward pass too.
"""

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from chroma.training.hardware import PRECISIONS, set_precision  # noqa: E402

from step_throughput import STEP_BENCHMARKS, compiled_model, constant_batches, paper_run  # noqa: E402

OP_THREADS = "tf_Compute"  # TensorFlow's inter-op threads, where an executor runs a graph's kernels
PICOSECONDS = 1e12


def profiled_steps(name, precision, image_size, batch_size, steps, log_dir):
    """Trains benchmark `name` for one untimed step, then `steps` profiled ones; their wall-clock seconds."""
    run, settings = paper_run(STEP_BENCHMARKS[name], image_size, batch_size)
    set_precision(precision)
    model = compiled_model(run, settings, total_steps=1 + steps, jit=False)
    batches = constant_batches(run, settings, model)
    model.fit(batches, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)  # traces the step, unprofiled
    tf.profiler.experimental.start(str(log_dir))
    started = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started
    tf.profiler.experimental.stop()
    return seconds


def name_scope(op_name):
    """The first name scope inside the step function: "StatefulPartitionedCall/adam/Mul_1" -> "adam"."""
    parts = op_name.split("/")
    return parts[1] if len(parts) > 2 else "(no scope)"


def op_seconds(log_dir, by="type"):
    """{op type, or name scope: (seconds, kernel runs)} over the CPU op threads of the profile under log_dir."""
    trace, = Path(log_dir).rglob("*.xplane.pb")
    space = xplane_pb2.XSpace.FromString(trace.read_bytes())
    totals = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith(OP_THREADS):
                continue
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                if not metadata.display_name:  # the executor's own events; an op kernel's is its op type
                    continue
                key = metadata.display_name if by == "type" else name_scope(metadata.name)
                totals[key][0] += event.duration_ps
                totals[key][1] += 1
    return {key: (picoseconds / PICOSECONDS, runs) for key, (picoseconds, runs) in totals.items()}


def op_table(seconds_by, heading, top):
    """Markdown: the `top` groups (op types or name scopes, `heading`) by time, then the rest together."""
    total = sum(seconds for seconds, _ in seconds_by.values())
    ranked = sorted(seconds_by.items(), key=lambda item: item[1][0], reverse=True)
    lines = [f"| {heading} | seconds | share | kernel runs |", "|---|---:|---:|---:|"]
    for key, (seconds, runs) in ranked[:top]:
        lines.append(f"| {key} | {seconds:.3f} | {100 * seconds / total:.1f}% | {runs} |")
    rest = ranked[top:]
    if rest:
        rest_seconds = sum(seconds for _, (seconds, _) in rest)
        lines.append(f"| {len(rest)} others | {rest_seconds:.3f} | {100 * rest_seconds / total:.1f}% | "
                     f"{sum(runs for _, (_, runs) in rest)} |")
    lines.append(f"| **all ops** | {total:.3f} | 100% | {sum(runs for _, runs in seconds_by.values())} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", choices=STEP_BENCHMARKS, default="pix2pix")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--image-size", type=int, help="default: the paper's")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps")
    parser.add_argument("--by", choices=("type", "scope"), default="type",
                        help="sum op time by op type, or by name scope (generator, discriminator, adam, ...)")
    parser.add_argument("--top", type=int, default=12, help="rows listed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chroma-profile-") as log_dir:
        seconds = profiled_steps(args.benchmark, args.precision, args.image_size, args.batch_size, args.steps,
                                 log_dir)
        seconds_by = op_seconds(log_dir, args.by)
    print(f"{args.benchmark} [{args.precision}], batch {args.batch_size}: {args.steps} profiled steps in "
          f"{seconds:.2f} s wall-clock\n")
    print(op_table(seconds_by, "op type" if args.by == "type" else "name scope", args.top))


if __name__ == "__main__":
    main()
