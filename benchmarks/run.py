"""jaxdl vs PyTorch throughput, in one session, interleaved, as one markdown table.

For each repeat: the GEMM ceiling, then per model jaxdl's `--mode=bench` and the torch twin,
each in its own subprocess (isolated thread pools and allocators) and one after the other, so
that machine noise over the session hits both frameworks alike. Each subprocess prints one JSON
line last; a failing one is reported (its error text) and the run goes on. Per framework the
table shows the median over repeats, the jax÷torch ratio, and each side's share of the
machine's GEMM ceiling (best over repeats): samples/s × FLOPs per sample ÷ ceiling, where a
training sample costs 3 × forward FLOPs.
Table and raw JSON go to `benchmarks/results/<timestamp>.{md,json}`.

    python benchmarks/run.py [--models esc50] [--repeats 2] [--steps 10]
                             [--torch-allocator system|mimalloc]

jaxdl's command line runs under mimalloc on Linux (`jaxdl/utils/allocator.py`); the torch twin
runs with glibc's malloc, as the reference projects did, unless `--torch-allocator=mimalloc`
preloads the same library for it (each side's allocator is in the title line).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from torch_models import forward_flops

from jaxdl.utils import allocator

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward (≈ 2 × forward) per training sample


def run_json(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict:
    """Runs `cmd` from the repo root (in `env`, else this environment) and parses its last stdout
    line as JSON; on any failure returns `{"error": ...}` with the tail of its output instead of
    raising."""
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(cmd)}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}"}


def bench_jax(model: str, steps: int, timeout: float) -> dict:
    """jaxdl's bench mode, the model's steps only (no grid group, no input pipeline: the torch
    twin has neither); an older jaxdl without these keys is run without them, and one without
    `--config.bench.steps` with its own default step count."""
    cmd = [sys.executable, "-m", "jaxdl.main", "--config", f"configs/{model}.py", "--mode=bench"]
    steps_flag = f"--config.bench.steps={steps}"
    result = run_json(
        cmd + [steps_flag, "--config.bench.grid=False", "--config.bench.pipeline=False"], timeout
    )
    if "bench.grid" in result.get("error", ""):
        result = run_json(cmd + [steps_flag], timeout)
    error = result.get("error", "")
    if "KeyError" in error and ("'bench'" in error or "'steps'" in error):
        result = run_json(cmd, timeout)
        result["note"] = "config has no bench.steps: jaxdl's default step count"
    return result


def torch_environment(allocator_name: str) -> dict[str, str] | None:
    """The torch twin's environment: this one (glibc's malloc) for "system", or with jaxdl's
    mimalloc preloaded and purging off, as `python -m jaxdl.main` runs, for "mimalloc"."""
    if allocator_name == "system":
        return None
    library = allocator.mimalloc_library()
    if library is None:
        sys.exit("--torch-allocator=mimalloc: the cmeel-mimalloc wheel is not installed here")
    return allocator.mimalloc_environment(library, dict(os.environ))


def bench_torch(
    model: str, steps: int, warmup: int, threads: int, timeout: float, env: dict | None
) -> dict:
    script = str(BENCH_DIR / "torch_bench.py")
    return run_json(
        [
            sys.executable,
            script,
            "--model",
            model,
            "--json",
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--threads",
            str(threads),
        ],
        timeout,
        env,
    )


def measured(result_fn: Callable[..., dict], *args) -> dict:
    """`result_fn(*args)` plus how contended the machine was: the 1-min load average before,
    and the cores the subprocess actually got (its CPU time ÷ wall time; 2.0 = the whole
    2-core machine). A busy neighbour halves throughput, and this is how a reader can tell."""
    load = os.getloadavg()[0]
    cpu_before, wall_before = _children_cpu_s(), time.perf_counter()
    result = result_fn(*args)
    wall = time.perf_counter() - wall_before
    cores = (_children_cpu_s() - cpu_before) / wall
    return {**result, "load_1m_before": load, "wall_s": wall, "cores_used": cores}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gemm(threads: int, timeout: float) -> dict:
    script = str(BENCH_DIR / "gemm_ceiling.py")
    return run_json([sys.executable, script, "--json", "--threads", str(threads)], timeout)


def machine() -> dict:
    """What the numbers were measured on (a table without its machine is meaningless)."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    versions = {}
    for package in ("jax", "jaxlib", "flax", "torch", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), **versions}


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def _best(runs: list[dict], key: str) -> float | None:
    return max((r[key] for r in runs if key in r), default=None)


def _fmt(value: float | int | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}×"


def _share(samples_per_s: float | None, flops: float, ceiling_gflops: float | None) -> str:
    if samples_per_s is None or not ceiling_gflops:
        return "—"
    return f"{100 * samples_per_s * flops / (ceiling_gflops * 1e9):.1f} %"


def summarize(models: list[str], runs: dict, gemms: list[dict], flops: dict) -> tuple[str, dict]:
    """Markdown table (medians over repeats) and the same figures as a dict."""
    ceiling = _best(gemms, "ceiling_gflops")  # the machine's best: noise only ever lowers it
    header = (
        "| model | params jax / torch | batch jax / torch | fwd GFLOP/sample "
        "| train samples/s jax | torch | jax÷torch "
        "| eval samples/s jax | torch | jax÷torch "
        "| train share of ceiling jax / torch | eval share jax / torch |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows, summary, errors = [], {}, []
    for model in models:
        jax_runs, torch_runs = runs[model]["jax"], runs[model]["torch"]
        errors += [
            f"{model} {fw}: {r['error']}"
            for fw in ("jax", "torch")
            for r in runs[model][fw]
            if "error" in r
        ]
        med = {
            fw: {
                k: _median(rs, k)
                for k in ("params", "batch_size", "train_samples_per_s", "eval_samples_per_s")
            }
            for fw, rs in (("jax", jax_runs), ("torch", torch_runs))
        }
        summary[model] = med
        j, t = med["jax"], med["torch"]
        params = f"{_fmt(j['params'], ',.0f')} / {_fmt(t['params'], ',.0f')}"
        if None not in (j["params"], t["params"]) and j["params"] != t["params"]:
            params += " **MISMATCH**"
        train_flops = TRAIN_FLOPS_PER_FORWARD * flops[model]
        rows.append(
            f"| {model} | {params}"
            f" | {_fmt(j['batch_size'], '.0f')} / {_fmt(t['batch_size'], '.0f')}"
            f" | {flops[model] / 1e9:.3f}"
            f" | {_fmt(j['train_samples_per_s'], '.2f')} | {_fmt(t['train_samples_per_s'], '.2f')}"
            f" | {_ratio(j['train_samples_per_s'], t['train_samples_per_s'])}"
            f" | {_fmt(j['eval_samples_per_s'], '.2f')} | {_fmt(t['eval_samples_per_s'], '.2f')}"
            f" | {_ratio(j['eval_samples_per_s'], t['eval_samples_per_s'])}"
            f" | {_share(j['train_samples_per_s'], train_flops, ceiling)}"
            f" / {_share(t['train_samples_per_s'], train_flops, ceiling)}"
            f" | {_share(j['eval_samples_per_s'], flops[model], ceiling)}"
            f" / {_share(t['eval_samples_per_s'], flops[model], ceiling)} |"
        )
    gemm_line = (
        f"GEMM ceiling (float32 2048², best of {len(gemms)} repeats): "
        f"{_fmt(ceiling, '.1f')} GFLOP/s (numpy {_fmt(_best(gemms, 'numpy_gflops'), '.1f')}, "
        f"torch {_fmt(_best(gemms, 'torch_gflops'), '.1f')})"
    )
    timed = gemms + [r for m in models for fw in ("jax", "torch") for r in runs[m][fw]]
    loads = [r["load_1m_before"] for r in timed]
    cores = [r["cores_used"] for r in timed]
    load_line = (
        f"Contention: 1-min load average before each subprocess "
        f"{min(loads):.2f}–{max(loads):.2f}; cores each subprocess got "
        "(CPU ÷ wall time, start-up included) "
        f"{min(cores):.2f}–{max(cores):.2f} of {os.cpu_count()}"
    )
    text = "\n".join([gemm_line, load_line, "", header, *rows])
    if errors:
        text += "\n\nErrors:\n\n" + "\n\n".join(f"```\n{e}\n```" for e in errors)
    return text, {"gemm_ceiling_gflops": ceiling, "models": summary}


def _jax_allocators(runs: dict) -> str:
    """The allocators jaxdl's bench subprocesses reported (`"allocator"` in their JSON)."""
    found = {r.get("allocator", "unrecorded") for m in runs.values() for r in m["jax"]}
    return "/".join(sorted(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["esc50"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per bench")
    parser.add_argument("--warmup", type=int, default=3, help="untimed torch steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    parser.add_argument(
        "--torch-allocator",
        choices=("system", "mimalloc"),
        default="system",
        help="the torch twin's malloc: glibc's (as the reference ran) or jaxdl's mimalloc",
    )
    args = parser.parse_args()
    torch_env = torch_environment(args.torch_allocator)

    started = datetime.datetime.now()
    flops = {model: forward_flops(model) for model in args.models}
    runs = {model: {"jax": [], "torch": []} for model in args.models}
    gemms = []
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats}: gemm", file=sys.stderr, flush=True)
        gemms.append(measured(gemm, args.threads, args.timeout))
        for model in args.models:
            print(f"  {model}: jax", file=sys.stderr, flush=True)
            runs[model]["jax"].append(measured(bench_jax, model, args.steps, args.timeout))
            print(f"  {model}: torch", file=sys.stderr, flush=True)
            runs[model]["torch"].append(
                measured(
                    bench_torch,
                    model,
                    args.steps,
                    args.warmup,
                    args.threads,
                    args.timeout,
                    torch_env,
                )
            )

    host = machine()
    table, summary = summarize(args.models, runs, gemms, flops)
    title = (
        f"# jaxdl vs torch, {started:%Y-%m-%d %H:%M}\n\n"
        f"Machine: {host['cpu']}, {host['cores']} cores; torch threads {args.threads}; "
        f"{args.repeats} repeats × {args.steps} timed steps (medians); malloc: jaxdl "
        f"{_jax_allocators(runs)}, torch {args.torch_allocator}; versions: "
        + ", ".join(f"{k} {host[k]}" for k in ("jax", "flax", "torch", "numpy"))
        + "\n\n"
    )
    markdown = title + table + "\n"
    print(markdown)

    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"{started:%Y%m%d-%H%M%S}"
    stem.with_suffix(".md").write_text(markdown)
    raw = {
        "started": started.isoformat(),
        "args": vars(args),
        "machine": host,
        "forward_flops_per_sample": flops,
        "gemm": gemms,
        "runs": runs,
        "summary": summary,
    }
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"written: {stem.with_suffix('.md')} and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
