"""Where a jaxdl train step spends its time on this machine, by kind of XLA operation.

Traces `--steps` train steps of a task's reference model on random input with `jax.profiler`
(a perfetto trace, plain JSON, so nothing beyond jax is needed), maps each executed XLA kernel to
its HLO instruction in the compiled step, and prints milliseconds per step for: XLA's forward
convolutions, XLA's input gradients, jaxdl's kernel gradients (`jaxdl/models/conv.py`: the
stacked slices and their GEMMs), and everything else (elementwise and reductions: BatchNorm,
ReLU, pooling, pads), then the slowest kernels.

    python benchmarks/profile_step.py [--task esc50] [--steps 2] [--top 15]
"""

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from jaxdl import tasks  # noqa: E402
from jaxdl.training import group  # noqa: E402
from tests.helpers import load_config  # noqa: E402

HOST_EVENTS = ("ThunkExecutor", "$", "Slinky")  # runtime and Python frames, not kernels


def random_batch(task, config, num_classes: int) -> dict:
    rng = np.random.default_rng(0)
    batch = config.train.batch_size
    labels = (
        rng.integers(0, num_classes, batch)
        if task.objective_kind == "multiclass"
        else rng.integers(0, 2, (batch, num_classes))
    )
    return {
        "x": rng.standard_normal((batch, *task.input_shape(config)), np.float32),
        "y": labels.astype(np.int32),
        "mask": np.ones(batch, np.float32),
    }


def kernel_kinds(hlo: str) -> dict[str, str]:
    """HLO instruction name -> kind, from the compiled module's text."""
    called = dict(re.findall(r"^\s*(?:ROOT )?%([\w.\-]+) = [^\n]*?calls=%([\w.\-]+)", hlo, re.M))
    bodies = dict(re.findall(r"^%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S))
    op_names = dict(
        re.findall(r"^\s*(?:ROOT )?%([\w.\-]+) = [^\n]*?metadata=\{op_name=\"([^\"]+)\"", hlo, re.M)
    )
    kinds = {}
    for name in set(called) | set(op_names):
        body, op_name = bodies.get(called.get(name, ""), ""), op_names.get(name, "")
        if (
            "while/body" in op_name
            or "while/body" in body
            or name.startswith(("concatenate", "dynamic-slice"))
        ):
            kinds[name] = "kernel gradients (jaxdl: stacked slices + GEMMs)"
        elif "convolution(" in body or name.startswith("convolution"):
            conv = body.split("convolution(", 1)[-1][:600]
            kinds[name] = (
                "input gradients (XLA convolutions)"
                if "transpose(jvp" in conv
                else "forward convolutions and XLA kernel gradients"
            )
        else:
            kinds[name] = "elementwise and reductions (BatchNorm, ReLU, pooling, pads)"
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--task", default="esc50", choices=("esc50", "tiny_imagenet", "cub200", "celeba")
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    config = load_config(args.task)
    task = tasks.get(config)
    names = tuple(f"class{i}" for i in range(task.num_classes))
    parts = group.build([config], names)
    batch = jax.device_put(random_batch(task, config, len(names)))
    state, sums = parts.state, {"epoch": parts.zero_sums()[0]}
    hlo = parts.steps.train.lower(state, sums, batch).compile().as_text()
    for _ in range(2):  # compile and warm up
        state, sums = parts.steps.train(state, sums, batch)
        jax.block_until_ready(sums)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                state, sums = parts.steps.train(state, sums, batch)
                jax.block_until_ready(sums)
        (trace,) = Path(trace_dir).rglob("*perfetto_trace.json.gz")
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    kinds = kernel_kinds(hlo)
    per_kind, per_kernel = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("ph") != "X" or "dur" not in event or event["name"].startswith(HOST_EVENTS):
            continue
        ms = event["dur"] / 1e3 / args.steps
        per_kind[kinds.get(event["name"], "other")] += ms
        per_kernel[event["name"]] += ms
    print(
        f"{args.task}: batch {config.train.batch_size}, {sum(per_kind.values()):.0f} ms of "
        f"kernels per train step ({args.steps} steps traced)"
    )
    for kind, ms in per_kind.most_common():
        print(f"  {ms:8.0f} ms  {kind}")
    print(f"slowest {args.top} kernels:")
    for name, ms in per_kernel.most_common(args.top):
        print(f"  {ms:8.0f} ms  {name}  ({kinds.get(name, 'other')})")


if __name__ == "__main__":
    main()
