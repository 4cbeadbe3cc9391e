"""Input pipeline alone vs the model's appetite: can the host feed the step?

For each task, on its synthetic preset (the official layout, generated and cached): the real grain
training pipeline (shuffle, augmentation, model-input transform, batching) with no model
attached, at each `--workers` count, read as a run reads it (one `EpochFeed` over several epochs,
so one worker pool). Per setting: steady batches/s and samples/s after `--warmup` batches
(median and range over `--repeats`), ms per batch, and the seconds to the first batch (the pool's
start-up). Beside it, the model's appetite: `--mode=bench`'s train samples/s on this machine (its
own subprocess) and what a 1–3 ms accelerator step would take. Headroom = pipeline samples/s ÷
appetite: below 1 the step waits for its input.

    python benchmarks/pipeline_throughput.py [--tasks esc50 celeba] [--workers 0 2] [--no-model]

Tables and raw numbers go to `benchmarks/results/pipeline-<timestamp>.{md,json}`. How to read
them: docs/input-pipeline.md.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from absl import flags

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

from jaxdl import config as config_lib  # noqa: E402
from jaxdl import tasks  # noqa: E402
from jaxdl.data import pipeline  # noqa: E402

TASKS = ("esc50", "tiny_imagenet", "celeba", "cub200")
ACCELERATOR_STEP_MS = (1.0, 3.0)  # issue 16's estimate of a compiled train step on a current GPU


def cpu_model() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Model name")), "?")
    return f"{model}, {pipeline.host_cpus()} CPUs available"


def pipeline_rates(task_name: str, workers: int, args: argparse.Namespace) -> dict:
    """Median and range of the steady rate over `args.repeats` feeds, and the first-batch wait."""
    config = config_lib.load_task_config(task_name, "synthetic")
    config.data.workers = workers
    task = tasks.get(config)
    source = task.load_split(config, "train").source  # builds the caches on a first run
    runs = [
        pipeline.throughput(
            source,
            task,
            config,
            config.train.batch_size,
            config.augment.enabled,
            args.batches,
            args.warmup,
        )
        for _ in range(args.repeats)
    ]
    rates = [r.batches_per_s for r in runs]
    return {
        "task": task_name,
        "batch_size": config.train.batch_size,
        "workers": runs[0].loading.workers,
        "prefetch": runs[0].loading.prefetch,
        "batches_per_s": statistics.median(rates),
        "batches_per_s_range": [min(rates), max(rates)],
        "samples_per_s": statistics.median(rates) * config.train.batch_size,
        "ms_per_batch": 1000 / statistics.median(rates),
        "first_batch_s": statistics.median(r.first_batch_s for r in runs),
    }


def model_rate(task_name: str) -> float | None:
    """`--mode=bench`'s train samples/s on this machine (None when the bench fails)."""
    cmd = [sys.executable, "-m", "jaxdl.main", "--config", f"{task_name}:synthetic"]
    cmd += ["--mode=bench", "--config.bench.steps=5"]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode:
        print(f"{task_name} bench failed: {out.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["train_samples_per_s"]


def _headroom(samples_per_s: float, appetite: float | None) -> str:
    return "–" if appetite is None else f"{samples_per_s / appetite:.2g}×"


def table(rows: list[dict], appetites: dict) -> str:
    lines = [
        "| task | batch | workers | prefetch | batches/s (range) | samples/s | ms/batch | "
        "first batch s | CPU step samples/s | headroom on CPU | 1–3 ms step samples/s | "
        "headroom at 1–3 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cpu = appetites.get(row["task"])
        fast, slow = (row["batch_size"] * 1000 / ms for ms in ACCELERATOR_STEP_MS)
        low, high = row["batches_per_s_range"]
        lines.append(
            f"| {row['task']} | {row['batch_size']} | {row['workers']} | {row['prefetch']} | "
            f"{row['batches_per_s']:.1f} ({low:.1f}–{high:.1f}) | {row['samples_per_s']:.0f} | "
            f"{row['ms_per_batch']:.1f} | {row['first_batch_s']:.1f} | "
            f"{'–' if cpu is None else f'{cpu:.0f}'} | {_headroom(row['samples_per_s'], cpu)} | "
            f"{slow:.0f}–{fast:.0f} | {row['samples_per_s'] / fast:.2g}–"
            f"{row['samples_per_s'] / slow:.2g}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="counts to time")
    parser.add_argument("--batches", type=int, default=24, help="timed batches per repeat")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first (>= 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-model", action="store_true", help="skip the --mode=bench runs")
    args = parser.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags; argparse parsed ours
    started = datetime.datetime.now()
    machine = cpu_model()
    print(f"{machine}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, appetites = [], {}
    for name in args.tasks:
        for workers in args.workers:
            rows.append(pipeline_rates(name, workers, args))
            print(json.dumps(rows[-1]), flush=True)
        if not args.no_model:
            appetites[name] = model_rate(name)
    text = table(rows, appetites)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"pipeline-{started:%Y%m%d-%H%M%S}"
    header = (
        f"# Input pipeline throughput, {started:%Y-%m-%d %H:%M}\n\n{machine}; load average "
        f"{os.getloadavg()[0]:.1f} at the end; {args.batches} timed batches after "
        f"{args.warmup}, {args.repeats} repeats; synthetic presets.\n\n"
    )
    stem.with_suffix(".md").write_text(header + text + "\n")
    raw = {"machine": machine, "args": vars(args), "rows": rows, "cpu_step": appetites}
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"written: {stem}.md, {stem}.json")


if __name__ == "__main__":
    main()
