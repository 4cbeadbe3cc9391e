"""Where a jaxdl train or eval step spends its time on this machine, by kind of XLA operation.

Traces `--steps` train steps (or, with `--mode eval`, eval steps) of a task's reference model on
random input with `jax.profiler` (a perfetto trace, plain JSON, so nothing beyond jax is needed),
maps each executed XLA kernel to its HLO instruction in the compiled step, and prints milliseconds
per step for: YNNPACK convolutions, matrix products (dots), and everything else (elementwise and
reductions: BatchNorm, ReLU, pooling, pads), then the slowest kernels.

jaxdl's CPU steps run their convolutions on Eigen (`jaxdl/utils/xla_options.py`), and Eigen's
convolutions leave no event in the trace: their time is the step's untraced wall time, printed
as "untraced" (the median wall time of untraced steps minus the traced kernels).

    python benchmarks/profile_step.py [--task esc50] [--mode train|eval] [--steps 2] [--top 15]
"""

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
import time
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
    kinds = {}
    for name, computation in called.items():
        body = bodies.get(computation, "")
        if "convolution(" in body:
            kinds[name] = "convolutions (YNNPACK)"
        elif " dot(" in body:
            kinds[name] = "matrix products"
        else:
            kinds[name] = "elementwise and reductions (BatchNorm, ReLU, pooling, pads)"
    return kinds


def _median_step_ms(step, state, sums, steps: int) -> tuple[float, tuple]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, sums = step(state, sums)
        jax.block_until_ready(sums)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), (state, sums)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--task", default="esc50", choices=("esc50", "tiny_imagenet", "cub200", "celeba")
    )
    parser.add_argument("--mode", default="train", choices=("train", "eval"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    config = load_config(args.task)
    task = tasks.get(config)
    names = tuple(f"class{i}" for i in range(task.num_classes))
    parts = group.build([config], names)
    batch = jax.device_put(random_batch(task, config, len(names)))
    if args.mode == "train":
        state, sums, compiled = parts.state, {"epoch": parts.zero_sums()[0]}, parts.steps.train

        def step(state, sums):
            return compiled(state, sums, batch)

    else:  # the eval step, as `--mode=bench` times it
        state, sums, compiled = parts.state, parts.zero_sums(train=False)[0], parts.steps.eval

        def step(state, sums):
            return state, compiled(state, sums, batch)

    hlo = compiled.lower(state, sums, batch).compile().as_text()

    _, (state, sums) = _median_step_ms(step, state, sums, 2)  # compile and warm up
    wall_ms, (state, sums) = _median_step_ms(step, state, sums, max(3, args.steps))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                state, sums = step(state, sums)
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
        kind = kinds.get(event["name"]) or (
            "convolutions (Eigen, the traced ones)"
            if event["name"].startswith("convolution")
            else "other"
        )
        kinds[event["name"]] = kind
        per_kind[kind] += ms
        per_kernel[event["name"]] += ms
    traced = sum(per_kind.values())
    per_kind["untraced (Eigen convolutions, runtime)"] = max(0.0, wall_ms - traced)
    print(
        f"{args.task}: batch {config.train.batch_size}, {wall_ms:.0f} ms per {args.mode} step, "
        f"{traced:.0f} ms of traced kernels ({args.steps} steps traced)"
    )
    for kind, ms in per_kind.most_common():
        print(f"  {ms:8.0f} ms  {kind}")
    print(f"slowest {args.top} kernels:")
    for name, ms in per_kernel.most_common(args.top):
        print(f"  {ms:8.0f} ms  {name}  ({kinds.get(name, 'other')})")


if __name__ == "__main__":
    main()
