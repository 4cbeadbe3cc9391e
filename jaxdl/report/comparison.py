"""Finished runs side by side: their curves overlaid and their final and best values tabulated.

The curves come from each run's `metrics.jsonl` and the labels from the hyper-parameters that
differ between the runs' `config.json`, so a one-factor comparison reads "lr=0.005" against
"lr=0.02" without naming anything by hand. One run is the baseline (compare's own config with
`compare.run=True`, else the first run named), marked "(baseline)" in its label and named in the
JSON line. Every run is read and checked before anything is written.

Row keys follow the metric key style of every JSON line: `val/<metric>` and `val/loss` at the best
epoch (`best_epoch`, as train reports them), `final/<split>/<metric>` at the last epoch.
"""

import dataclasses
import glob
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxdl import config as config_lib
from jaxdl.analysis import markdown
from jaxdl.errors import ConfigError, DataError
from jaxdl.utils import files, plots, run_metrics

# Keys that do not change what a run learns (paths, logging, other modes' settings): never labels.
_NOT_HYPERPARAMETERS = (
    "run_name",
    "data.cache_dir",
    "data.dir",
    "data.workers",
    "data.prefetch",
    "runtime.compile_cache",
    "train.log_every_steps",
    "train.evaluate_test",
    "train.eval_batch_size",
    "train.checkpoint_every_steps",
    "train.resume",
)
_OTHER_MODES = ("lr_finder", "grid", "compare", "analyze", "bench")


@dataclasses.dataclass(frozen=True)
class Selection:
    """The runs `--runs` names, and the folders its globs matched that are not training runs."""

    runs: list[pathlib.Path]
    skipped: list[pathlib.Path]


def is_training_run(directory: pathlib.Path) -> bool:
    """Whether `directory` logged a training curve (`train/loss` in its metrics.jsonl), as train,
    grid members and compare's variants do; evaluate, analyze, lr_finder, grid and compare
    folders do not."""
    path = directory / run_metrics.METRICS_FILE
    return path.is_file() and '"train/loss"' in path.read_text(errors="replace")


def resolve_runs(patterns: Sequence[str], logs_dir: pathlib.Path) -> Selection:
    """Run directories named by `patterns` (a directory, a run name under `logs_dir`, or a glob of
    either), in order of first appearance, each once. A glob keeps only the training runs it
    matches (the others are `skipped`); a folder named without a glob is kept, and checked by
    `load`."""
    found: dict[pathlib.Path, None] = {}
    skipped: dict[pathlib.Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) + sorted(glob.glob(str(logs_dir / pattern)))
        directories = [pathlib.Path(m).resolve() for m in matches if pathlib.Path(m).is_dir()]
        if not directories:
            raise ConfigError(
                f"--runs: {pattern!r} matches no run directory (looked for it as a "
                f"path and under {logs_dir})"
            )
        if glob.has_magic(pattern):
            others = [d for d in directories if not is_training_run(d)]
            directories = [d for d in directories if d not in others]
            if not directories:
                raise ConfigError(
                    f"--runs: {pattern!r} matches no training run, only "
                    f"{', '.join(d.name for d in others)} (no train/loss in their "
                    f"{run_metrics.METRICS_FILE}); name runs written by --mode=train"
                )
            skipped.update(dict.fromkeys(others))
        found.update(dict.fromkeys(directories))
    return Selection(list(found), [d for d in skipped if d not in found])


def _read_config(log_dir: pathlib.Path) -> dict[str, Any]:
    path = log_dir / "config.json"
    if not path.is_file():
        raise DataError(
            f"{path} is missing: compare labels runs by their config, which "
            "--mode=train writes there"
        )
    return config_lib.flatten(json.loads(path.read_text()))


def differing_hyperparameters(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted keys whose value differs between the flattened configs (missing counts as None)."""
    keys = sorted(set().union(*configs))
    return [
        key
        for key in keys
        if key not in _NOT_HYPERPARAMETERS
        and key.split(".")[0] not in _OTHER_MODES
        and len({json.dumps(config.get(key)) for config in configs}) > 1
    ]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """`train.lr` -> `lr`, unless two keys share their last part (then the full dotted key)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: name if last.count(name) == 1 else key for key, name in zip(keys, last, strict=True)
    }


def labels(
    log_dirs: Sequence[pathlib.Path], configs: Sequence[dict], keys: Sequence[str]
) -> list[str]:
    """ "lr=0.005, weight_decay=1e-05" per run; the run name where nothing differs or labels
    clash."""
    short = _short_names(keys)
    named = [
        ", ".join(f"{short[k]}={json.dumps(c.get(k), separators=(',', ':'))}" for k in keys)
        for c in configs
    ]
    return [
        label if label and named.count(label) == 1 else f"{d.name} {label}".strip()
        for d, label in zip(log_dirs, named, strict=True)
    ]


def _curve_keys(metric: str) -> tuple[str, str, str]:
    return "train/loss", "val/loss", f"val/{metric}"


def _run_row(log_dir: pathlib.Path, history: list[dict], metric: str, mode: str) -> dict[str, Any]:
    """Final and best values of one run; of equal best values the later epoch, as the best
    checkpoint of `train` is chosen."""
    for key in _curve_keys(metric):
        if not run_metrics.curve(history, key):
            found = sorted(set().union(*history)) if history else "no epoch"
            raise DataError(
                f"{log_dir}: no '{key}' in its {run_metrics.METRICS_FILE} (found: "
                f"{found}); compare needs runs written by --mode=train"
            )
    epochs, values = zip(*run_metrics.curve(history, f"val/{metric}"), strict=True)
    backwards = values[::-1]
    best = len(values) - 1 - int(np.argmax(backwards) if mode == "max" else np.argmin(backwards))
    val_loss = dict(run_metrics.curve(history, "val/loss"))
    final_train = run_metrics.curve(history, "train/loss")[-1][1]
    final_val = run_metrics.curve(history, "val/loss")[-1][1]
    return {
        "run": log_dir.name,
        "epochs": epochs[-1],
        "best_epoch": epochs[best],
        f"val/{metric}": values[best],  # first of the val/ keys: `compared_metric` reads it
        "val/loss": val_loss.get(epochs[best]),
        f"final/val/{metric}": values[-1],
        "final/train/loss": final_train,
        "final/val/loss": final_val,
        "train_val_gap": final_val - final_train,
    }


def compared_metric(columns: Sequence[str]) -> str:
    """The metric a comparison table ranks by (`accuracy`), from its columns (comparison.csv)."""
    return next(c for c in columns if c.startswith("val/"))[len("val/") :]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What was read and checked, before anything is written: per run its label, history and
    table row; `keys` are the hyper-parameters that differ; `baseline` the baseline's run name."""

    metric: str
    labels: list[str]
    keys: list[str]
    histories: list[list[dict]]
    rows: list[dict]
    baseline: str | None


def load(
    log_dirs: Sequence[pathlib.Path],
    metric: str,
    mode: str,
    baseline: pathlib.Path | None,
) -> Comparison:
    """Reads and checks the runs in `log_dirs`. `metric` is the bare metric name (e.g.
    `accuracy`, compared as `val/<metric>`); `mode` says whether its best is the max or the min;
    `baseline` is the run the others are compared against (None: no baseline among them)."""
    if not log_dirs:
        raise ConfigError("compare needs at least one run (--runs=NAME,GLOB,...)")
    configs = [_read_config(d) for d in log_dirs]
    keys = differing_hyperparameters(configs)
    names = [
        f"{label} (baseline)" if d == baseline else label
        for d, label in zip(log_dirs, labels(log_dirs, configs, keys), strict=True)
    ]
    histories = [run_metrics.read_history(d) for d in log_dirs]
    rows = [
        {"label": label, **{k: c.get(k) for k in keys}, **_run_row(d, h, metric, mode)}
        for d, c, h, label in zip(log_dirs, configs, histories, names, strict=True)
    ]
    marked = baseline.name if baseline in log_dirs else None
    return Comparison(metric, names, keys, histories, rows, marked)


def write(comparison: Comparison, out_dir: pathlib.Path) -> dict:
    """One overlay per curve (`train_loss.png`, `val_loss.png`, `val_<metric>.png`) and the table
    (`comparison.csv`, `comparison.md`) in `out_dir`; returns compare's JSON dict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metric, figures = comparison.metric, {}
    for key in _curve_keys(metric):
        path = out_dir / f"{key.replace('/', '_')}.png"
        curves = {
            label: run_metrics.curve(history, key)
            for label, history in zip(comparison.labels, comparison.histories, strict=True)
        }
        plots.plot_curves(
            curves,
            path,
            title=f"{key}, {len(comparison.rows)} runs",
            xlabel="epoch",
            ylabel=key.split("/")[1],
        )
        figures[key] = str(path)
    fixed = ("run", "label", *comparison.keys)
    columns = [*fixed, *[c for c in comparison.rows[0] if c not in fixed]]
    files.write_csv_atomic(out_dir / "comparison.csv", comparison.rows, columns)
    table = markdown.rows_table(comparison.rows, columns)
    files.write_text_atomic(out_dir / "comparison.md", table)
    return {
        "mode": "compare",
        "dir": str(out_dir),
        "metric": metric,
        "baseline": comparison.baseline,
        "differing_keys": comparison.keys,
        "runs": comparison.rows,
        "outputs": {
            "figures": figures,
            "csv": str(out_dir / "comparison.csv"),
            "markdown": str(out_dir / "comparison.md"),
        },
    }
