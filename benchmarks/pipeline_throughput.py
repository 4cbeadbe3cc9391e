"""Input pipeline alone vs the model's appetite: is the data ever the bottleneck?

For each task, on its synthetic preset (the official layout, generated and cached): one epoch of
the real grain training pipeline (shuffle, augmentation, model-input transform, batching), with no
model attached, in examples/s; then `--mode=bench`'s train samples/s for the same config, in its own
subprocess. The pipeline keeps up when its rate is above the model's (ratio > 1). The first pass
builds the caches (log-mels, decoded images) and is not timed.

    python benchmarks/pipeline_throughput.py [--tasks esc50 celeba] [--workers 0]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from jaxdl import tasks  # noqa: E402
from jaxdl.data import pipeline  # noqa: E402
from tests.helpers import load_config  # noqa: E402

TASKS = ("esc50", "tiny_imagenet", "cub200", "celeba")


def pipeline_rate(task_name: str, workers: int) -> tuple[float, int]:
    """Examples/s of one augmented training epoch (after a warm-up epoch that fills caches)."""
    config = load_config(task_name, "synthetic")
    config.data.workers = workers
    task = tasks.get(config)
    source = task.load_split(config, "train").source
    batch = config.train.batch_size
    for epoch in (1, 2):
        started = time.perf_counter()
        count = sum(
            len(b["y"])
            for b in pipeline.train_batches(
                source, task, config, epoch, batch, augment=config.augment.enabled
            )
        )
        seconds = time.perf_counter() - started
    return count / seconds, count


def model_rate(task_name: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "jaxdl.main",
        "--config",
        f"configs/{task_name}.py:synthetic",
        "--mode=bench",
        "--config.bench.steps=5",
    ]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])["train_samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--workers", type=int, default=0, help="grain worker processes")
    args = parser.parse_args()
    print("| task | pipeline examples/s | model train samples/s | pipeline ÷ model |")
    print("|---|---|---|---|")
    for name in args.tasks:
        rate, count = pipeline_rate(name, args.workers)
        consumed = model_rate(name)
        print(
            f"| {name} | {rate:.0f} ({count} per epoch) | {consumed:.1f} | "
            f"{rate / consumed:.0f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
