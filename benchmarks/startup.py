"""Start-up with and without jaxdl's persistent compilation cache: the README's main command.

Each run is `python -m jaxdl.main --config configs/esc50.py --config.data.source=synthetic` (the
README's first command) in a fresh process, with a fresh empty cache folder (cold) or with the
folder an untimed first run filled (warm), cold and warm interleaved. Per run:

- first step: seconds from the process start to the training progress bar's first batch (the
  first train step dispatched: start-up, data, model init and the step's compilation);
- wall: seconds of the whole command (train, validation, test of the best checkpoint);
- XLA compile: seconds inside JAX's backend compilation (loads from the cache included), with the
  number of programs loaded from the cache.

The data cache is built by the untimed first run, so cold and warm differ only in the compilation
cache. The warm folder stays where it was filled: JAX's keys hold the folder's path. Tables and
raw numbers go to `benchmarks/results/startup-<timestamp>.{md,json}`.

    python benchmarks/startup.py [--repeats 2]
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
README_COMMAND = ["--config", "configs/esc50.py", "--config.data.source=synthetic"]

# `python -m jaxdl.main` with JAX's compile events summed and printed to stderr at exit.
_CHILD = """
import atexit, json, sys
import jax
totals = {"compile_s": 0.0, "compiles": 0, "cache_hits": 0}
def duration(name, seconds, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        totals["compile_s"] += seconds
        totals["compiles"] += 1
def event(name, **kwargs):
    if name == "/jax/compilation_cache/cache_hits":
        totals["cache_hits"] += 1
jax.monitoring.register_event_duration_secs_listener(duration)
jax.monitoring.register_event_listener(event)
atexit.register(lambda: print("STARTUP " + json.dumps(totals), file=sys.stderr, flush=True))
from absl import app
from jaxdl import main
sys.argv = ["jaxdl.main", *sys.argv[1:]]
app.run(main.main, flags_parser=main.parse_flags)
"""
# The epoch progress bar once a batch is done: "epoch 1/60:   2%|▏    | 1/40 [".
_FIRST_BATCH = re.compile(r"epoch 1/\d+:[^\r\n]*\| [1-9]\d*/\d+ \[")


def cpu_model() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")),
        "unknown CPU",
    )


def run_once(cache: Path, data: Path, workdir: Path) -> dict:
    """One README command in a fresh process on `cache`; its timings, compile totals and
    headline numbers."""
    env = {**os.environ, "JAXDL_COMPILE_CACHE": str(cache)}
    command = [sys.executable, "-c", _CHILD, *README_COMMAND]
    command += [f"--config.data.cache_dir={data}", f"--workdir={workdir}"]
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first_step, stderr = [], []

    def watch() -> None:  # stderr as it comes: the bar's first batch is timed when it appears
        seen = ""
        while chunk := child.stderr.read(256):
            stderr.append(chunk)
            seen = (seen + chunk)[-4096:]
            if not first_step and _FIRST_BATCH.search(seen):
                first_step.append(time.perf_counter() - start)

    watcher = threading.Thread(target=watch)
    watcher.start()
    stdout = child.stdout.read()
    child.wait()
    wall = time.perf_counter() - start
    watcher.join()
    text = "".join(stderr)
    if child.returncode != 0 or not first_step:
        raise RuntimeError(f"run failed (rc {child.returncode}):\n{text[-3000:]}")
    totals = json.loads(text.rpartition("STARTUP ")[2].splitlines()[0])
    result = json.loads(stdout.splitlines()[-1])
    numbers = {k: v for k, v in result.items() if isinstance(v, float)}
    return {"first_step_s": first_step[0], "wall_s": wall, **totals, "numbers": numbers}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def markdown(started: datetime.datetime, host: dict, runs: list[dict], summary: dict) -> str:
    lines = [
        f"# Start-up with and without the compilation cache, {started:%Y-%m-%d %H:%M}",
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, jax {host['jax']}; 1-min load "
        f"{host['load_before']:.1f} before, {host['load_after']:.1f} after.",
        "",
        "Command: `python -m jaxdl.main " + " ".join(README_COMMAND) + "` (README), each run a "
        "fresh process; cold = empty cache folder, warm = the folder a first untimed run filled; "
        "interleaved.",
        "",
        "| run | cache | first step s | wall s | XLA compile s | programs compiled or loaded | "
        "loaded from cache |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        lines.append(
            f"| {i} | {run['cache']} | {run['first_step_s']:.1f} | {run['wall_s']:.1f} | "
            f"{run['compile_s']:.1f} | {run['compiles']} | {run['cache_hits']} |"
        )
    lines += [
        "",
        "Median (min–max):",
        "",
        "| | cold | warm | saved |",
        "|---|---|---|---|",
    ]
    for key, name in (("first_step_s", "first step s"), ("wall_s", "wall s")):
        cold, warm = summary[key]["cold"], summary[key]["warm"]
        saved = statistics.median(cold) - statistics.median(warm)
        lines.append(f"| {name} | {_spread(cold)} | {_spread(warm)} | {saved:.1f} |")
    cold, warm = summary["compile_s"]["cold"], summary["compile_s"]["warm"]
    saved = statistics.median(cold) - statistics.median(warm)
    lines.append(f"| XLA compile s | {_spread(cold)} | {_spread(warm)} | {saved:.1f} |")
    same = "identical" if summary["same_numbers"] else "NOT identical"
    lines += ["", f"Validation and test metrics of every run: {same}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="cold and warm runs each")
    args = parser.parse_args()
    started = datetime.datetime.now()
    host = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "jax": importlib.metadata.version("jax"),
        "load_before": os.getloadavg()[0],
    }
    runs = []
    with tempfile.TemporaryDirectory(prefix="jaxdl-startup-") as tmp:
        root = Path(tmp)
        warm = root / "warm-xla"
        print("untimed first run: builds the data cache and fills the warm folder", file=sys.stderr)
        run_once(warm, root / "data", root / "runs" / "0")
        for repeat in range(args.repeats):
            for cache in ("cold", "warm"):
                folder = root / f"cold-xla-{repeat}" if cache == "cold" else warm
                workdir = root / "runs" / str(len(runs) + 1)
                run = {"cache": cache, **run_once(folder, root / "data", workdir)}
                runs.append(run)
                print(
                    f"{cache}: first step {run['first_step_s']:.1f} s, wall {run['wall_s']:.1f} "
                    f"s, compile {run['compile_s']:.1f} s",
                    file=sys.stderr,
                )
    host["load_after"] = os.getloadavg()[0]
    summary = {
        key: {c: [r[key] for r in runs if r["cache"] == c] for c in ("cold", "warm")}
        for key in ("first_step_s", "wall_s", "compile_s")
    }
    summary["same_numbers"] = all(r["numbers"] == runs[0]["numbers"] for r in runs)
    text = markdown(started, host, runs, summary)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"startup-{started:%Y%m%d-%H%M%S}"
    stem.with_suffix(".md").write_text(text)
    raw = {"started": started.isoformat(), "args": vars(args), "machine": host, "runs": runs}
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"written: {stem.with_suffix('.md')} and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
