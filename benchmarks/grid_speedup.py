"""Grid search speed on synthetic ESC-50, as one markdown table.

(a) One `--mode=grid_search` process against the same members run one by one, each as its own
    `python -m jaxdl.main` train process (what the reference did: a subprocess per run, paying
    start-up, data loading and compilation every time). Wall time of each, and the speed-up
    (target: at least 2x).
(b) Groups of 1, 2, 4, 8 members (same architecture, different learning rates), trained in this
    one process with `grid.strategy` sequential and vmap: seconds per member-epoch, for the first
    epoch (compilation included) and for the later ones.

The data cache is built before anything is timed. Tables and raw numbers go to
`benchmarks/results/grid_speedup-<timestamp>.{md,json}`.

    python benchmarks/grid_speedup.py [--quick] [--epochs 2] [--sizes 1 2 4 8]

`--quick` is a smoke run (10 classes, a narrow model, groups of 1 and 2), not a measurement.
On a 2-core CPU the full run takes tens of minutes, mostly (b)'s vmapped groups: XLA:CPU turns
per-member convolutions into slow grouped ones (docs/xla-cpu-traps.md).
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import ml_collections

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

from jaxdl import tasks  # noqa: E402
from jaxdl.training import grid  # noqa: E402
from jaxdl.training.data import training_data  # noqa: E402

# Config overrides as dotted keys, applied in this process and passed as --config.KEY=VALUE to
# the subprocesses. Full: the synthetic preset (50 classes, 300 train / 100 val clips of 1 s), the
# reference model and batch; a reduced reference grid (lr x weight decay x kernel size).
FULL = {
    "grid.lr": (5e-3, 1e-2),
    "grid.weight_decay": (1e-5, 1e-4),
    "grid.seeds": (42,),
    "grid.model.channels": ((32, 64, 128),),
    "grid.model.kernel_size": (3, 5),
}
QUICK = {
    "data.synthetic.num_classes": 10,
    "data.synthetic.clips_per_class_per_fold": 4,
    "model.channels": (8, 16, 16),
    "model.kernel_size": 3,
    "train.batch_size": 16,
    "grid.lr": (1e-2, 3e-3),
    "grid.weight_decay": (1e-4,),
    "grid.seeds": (42,),
    "grid.model.channels": ((8, 16, 16),),
    "grid.model.kernel_size": (3, 1),
}


def _flag_value(value) -> str:
    """A config value as the command line writes it: tuples without spaces."""
    if isinstance(value, (tuple, list)):
        inner = ",".join(_flag_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return str(value)


def load_config(overrides: dict) -> ml_collections.ConfigDict:
    """`configs/esc50.py:synthetic` with `overrides`, as the command line would build it."""
    spec = importlib.util.spec_from_file_location("esc50", REPO_ROOT / "configs" / "esc50.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("synthetic")
    for key, value in overrides.items():
        *path, name = key.split(".")
        section = config
        for part in path:
            section = section[part]
        section[name] = value
    return config


def jaxdl_command(mode: str, workdir: Path, overrides: dict) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxdl.main",
        "--config",
        "configs/esc50.py:synthetic",
        f"--mode={mode}",
        f"--workdir={workdir}",
        *(f"--config.{key}={_flag_value(value)}" for key, value in overrides.items()),
    ]


def timed_run(command: list[str]) -> float:
    """Wall seconds of `command` (from the repo root); raises with its output tail if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def member_overrides(member: ml_collections.ConfigDict, base: dict, epochs: int) -> dict:
    """A grid member as a `train` command line: its lr, weight decay, seed and model."""
    return {
        **base,
        "seed": member.seed,
        "train.lr": member.train.lr,
        "train.weight_decay": member.train.weight_decay,
        **{f"model.{key}": member.model[key] for key in tasks.hyperparameter_names(member)},
        "train.epochs": epochs,
        "train.evaluate_test": False,
    }


def grid_against_processes(base: dict, epochs: int, workdir: Path) -> dict:
    """(a): one grid_search process against one train process per member."""
    overrides = {**base, "grid.epochs": epochs, "grid.strategy": "auto"}
    members = grid.expand(load_config(overrides))
    print(f"(a) grid_search: {len(members)} members x {epochs} epochs", file=sys.stderr, flush=True)
    grid_s = timed_run(jaxdl_command("grid_search", workdir / "grid", overrides))
    separate = []
    for number, member in enumerate(members, start=1):
        print(f"(a) train process {number}/{len(members)}", file=sys.stderr, flush=True)
        separate.append(
            timed_run(
                jaxdl_command("train", workdir / "separate", member_overrides(member, base, epochs))
            )
        )
    return {
        "members": len(members),
        "epochs": epochs,
        "grid_s": grid_s,
        "separate_s": separate,
        "speedup": sum(separate) / grid_s,
    }


def group_sizes(base: dict, epochs: int, sizes: list[int], workdir: Path) -> list[dict]:
    """(b): one group of n members per size and strategy, in this process."""
    rows = []
    for size in sizes:
        # One architecture (the grid's first kernel size); members differ in learning rate.
        overrides = {
            **base,
            "grid.epochs": epochs,
            "grid.weight_decay": (1e-4,),
            "grid.model.kernel_size": base["grid.model.kernel_size"][:1],
            "grid.lr": tuple(1e-2 * 0.8**i for i in range(size)),
        }
        config = load_config(overrides)
        members = grid.expand(config)
        for strategy in ("sequential", "vmap"):
            print(f"(b) {size} member(s), {strategy}", file=sys.stderr, flush=True)
            out = workdir / f"{strategy}-{size}"
            results = grid.train_members(
                config,
                members,
                out / "logs",
                out / "ckpt",
                strategy,
                training_data(config, jax.device_count()),
            )
            seconds = [record["seconds"] for record in results[0].history]  # the group's epochs
            rows.append(
                {
                    "members": size,
                    "strategy": strategy,
                    "epoch_s": seconds,
                    "first_member_epoch_s": seconds[0] / size,
                    "later_member_epoch_s": (
                        sum(seconds[1:]) / len(seconds[1:]) / size if len(seconds) > 1 else None
                    ),
                }
            )
    return rows


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(started: datetime.datetime, host: dict, a: dict, b: list[dict], quick: bool) -> str:
    note = " (quick smoke run, not a measurement)" if quick else ""
    lines = [
        f"# Grid search speed-up, {started:%Y-%m-%d %H:%M}{note}",
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, jax {host['jax']} on "
        f"{host['backend']} ({host['devices']} device(s)); 1-min load {host['load_1m']:.1f} "
        "at the start.",
        "",
        "## (a) one grid_search process vs one train process per member",
        "",
        "| | members x epochs | wall s | s per member |",
        "|---|---|---|---|",
        f"| `--mode=grid_search` (one process) | {a['members']} x {a['epochs']} | "
        f"{a['grid_s']:.1f} | {a['grid_s'] / a['members']:.1f} |",
        f"| one `--mode=train` process per member | {a['members']} x {a['epochs']} | "
        f"{sum(a['separate_s']):.1f} | {sum(a['separate_s']) / a['members']:.1f} |",
        "",
        f"Speed-up: **{a['speedup']:.2f}x** (target >= 2x).",
        "",
        "## (b) seconds per member-epoch by group size (one process)",
        "",
        "First epoch includes compilation; later = mean of the other epochs.",
        "",
        "| members | sequential first | sequential later | vmap first | vmap later | "
        "vmap later / sequential later |",
        "|---|---|---|---|---|---|",
    ]
    by_size = {}
    for row in b:
        by_size.setdefault(row["members"], {})[row["strategy"]] = row
    for size, pair in by_size.items():
        seq, vm = pair["sequential"], pair["vmap"]
        ratio = (
            vm["later_member_epoch_s"] / seq["later_member_epoch_s"]
            if vm["later_member_epoch_s"] and seq["later_member_epoch_s"]
            else None
        )
        lines.append(
            f"| {size} | {_fmt(seq['first_member_epoch_s'])} | "
            f"{_fmt(seq['later_member_epoch_s'])} | {_fmt(vm['first_member_epoch_s'])} | "
            f"{_fmt(vm['later_member_epoch_s'])} | {_fmt(ratio)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, not a measurement")
    parser.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="epochs per member (at least 2 for the 'later' columns)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="group sizes for (b); default 1 2 4 8 (quick: 1 2)",
    )
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    sizes = args.sizes or ([1, 2] if args.quick else [1, 2, 4, 8])
    started = datetime.datetime.now()
    host = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "load_1m": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="grid_speedup-") as tmp:
        workdir = Path(tmp)
        base = {**base, "data.cache_dir": str(workdir / "cache")}
        config = load_config(base)
        for split in ("train", "val"):  # the cache is built once, untimed
            tasks.get(config).load_split(config, split)
        a = grid_against_processes(base, args.epochs, workdir / "a")
        b = group_sizes(base, args.epochs, sizes, workdir / "b")
    text = markdown(started, host, a, b, args.quick)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"grid_speedup-{started:%Y%m%d-%H%M%S}"
    stem.with_suffix(".md").write_text(text)
    raw = {
        "started": started.isoformat(),
        "args": vars(args),
        "machine": host,
        "overrides": {k: v for k, v in base.items() if k != "data.cache_dir"},
        "grid_vs_processes": a,
        "group_sizes": b,
    }
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"written: {stem.with_suffix('.md')} and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
