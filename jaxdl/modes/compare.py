"""`--mode=compare` (M7): overlay the curves of finished runs and tabulate their final and best values.

`--runs=A,B,...` names runs under `<workdir>/logs/`, `logs/<run>` directories, or globs of either.
The curves come from each run's TensorBoard event files and the labels from the hyper-parameters
that differ between the runs' `config.json`, so a one-factor comparison reads "lr=0.005" against
"lr=0.02" without naming anything by hand.

Outputs, in a new `logs/compare_<task>_<timestamp>/`: `train_loss.png`, `val_loss.png`,
`val_<metric>.png` (one line per run), and `comparison.csv` / `comparison.md` (one row per run).
"""

import dataclasses
import datetime
import glob
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdl import config as config_lib
from jaxdl.analysis import markdown
from jaxdl.errors import ConfigError, DataError
from jaxdl.modes import grid_search
from jaxdl.modes import train as train_mode
from jaxdl.training import fit, group
from jaxdl.utils import events, files, plots, runs

# Keys that do not change what a run learns (paths, logging, other modes' settings): never labels.
_NOT_HYPERPARAMETERS = ("run_name", "data.cache_dir", "data.dir", "data.workers",
                        "train.log_every_steps", "train.evaluate_test", "train.eval_batch_size",
                        "train.checkpoint_every_steps", "train.resume")
_OTHER_MODES = ("lr_finder", "grid", "compare", "analyze", "bench")


def resolve_runs(patterns: Sequence[str], logs_dir: pathlib.Path) -> list[pathlib.Path]:
    """Run directories named by `patterns` (a directory, a run name under `logs_dir`, or a glob of
    either), in order of first appearance, each once."""
    found: dict[pathlib.Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) + sorted(glob.glob(str(logs_dir / pattern)))
        directories = [pathlib.Path(m) for m in matches if pathlib.Path(m).is_dir()]
        if not directories:
            raise ConfigError(f"--runs: {pattern!r} matches no run directory (looked for it as a "
                              f"path and under {logs_dir})")
        found.update(dict.fromkeys(d.resolve() for d in directories))
    return list(found)


def _read_config(log_dir: pathlib.Path) -> dict[str, Any]:
    path = log_dir / "config.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: compare labels runs by their config, which "
                        "--mode=train writes there")
    return config_lib.flatten(json.loads(path.read_text()))


def differing_hyperparameters(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted keys whose value differs between the flattened configs (missing counts as None)."""
    keys = sorted(set().union(*configs))
    return [key for key in keys
            if key not in _NOT_HYPERPARAMETERS and key.split(".")[0] not in _OTHER_MODES
            and len({json.dumps(config.get(key)) for config in configs}) > 1]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """`train.lr` -> `lr`, unless two keys share their last part (then the full dotted key)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key for key, name in zip(keys, last)}


def _labels(log_dirs: Sequence[pathlib.Path], configs: Sequence[dict],
            keys: Sequence[str]) -> list[str]:
    """"lr=0.005, weight_decay=1e-05" per run; the run name where nothing differs or labels clash."""
    short = _short_names(keys)
    labels = [", ".join(f"{short[k]}={json.dumps(c.get(k), separators=(',', ':'))}" for k in keys)
              for c in configs]
    return [label if label and labels.count(label) == 1 else f"{d.name} {label}".strip()
            for d, label in zip(log_dirs, labels)]


def _run_row(log_dir: pathlib.Path, scalars: dict, metric: str, mode: str) -> dict[str, Any]:
    """Final and best values of one run; of equal best values the later epoch, as the best
    checkpoint of `train` is chosen."""
    for tag in ("train/loss", "val/loss", f"val/{metric}"):
        if not scalars.get(tag):
            raise DataError(f"{log_dir}: no '{tag}' scalars in its event files (tags found: "
                            f"{sorted(scalars)}); compare needs runs written by --mode=train")
    epochs, values = zip(*scalars[f"val/{metric}"])
    backwards = values[::-1]
    best = len(values) - 1 - int(np.argmax(backwards) if mode == "max" else np.argmin(backwards))
    val_loss = dict(scalars["val/loss"])
    final_train, final_val = scalars["train/loss"][-1][1], scalars["val/loss"][-1][1]
    return {"run": log_dir.name, "epochs": epochs[-1], "best_epoch": epochs[best],
            f"best_val_{metric}": values[best], "val_loss_at_best": val_loss.get(epochs[best]),
            f"final_val_{metric}": values[-1], "final_train_loss": final_train,
            "final_val_loss": final_val, "train_val_gap": final_val - final_train}


@dataclasses.dataclass(frozen=True)
class _Runs:
    """What compare read and checked, before anything is written."""

    labels: list[str]
    keys: list[str]
    scalars: list[dict]
    rows: list[dict]


def _load_runs(log_dirs: Sequence[pathlib.Path], metric: str, mode: str) -> _Runs:
    if not log_dirs:
        raise ConfigError("compare needs at least one run (--runs=NAME,GLOB,...)")
    configs = [_read_config(d) for d in log_dirs]
    keys = differing_hyperparameters(configs)
    labels = _labels(log_dirs, configs, keys)
    scalars = [events.read_scalars(d) for d in log_dirs]
    rows = [{"label": label, **{k: c.get(k) for k in keys}, **_run_row(d, s, metric, mode)}
            for d, c, s, label in zip(log_dirs, configs, scalars, labels)]
    return _Runs(labels, keys, scalars, rows)


def _write_comparison(runs: _Runs, metric: str, out_dir: pathlib.Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    for tag, ylabel in (("train/loss", "loss"), ("val/loss", "loss"), (f"val/{metric}", metric)):
        path = out_dir / f"{tag.replace('/', '_')}.png"
        plots.plot_curves({label: s[tag] for label, s in zip(runs.labels, runs.scalars)}, path,
                          title=f"{tag}, {len(runs.rows)} runs", xlabel="epoch", ylabel=ylabel)
        figures[tag] = str(path)
    fixed = ("run", "label", *runs.keys)
    columns = [*fixed, *[c for c in runs.rows[0] if c not in fixed]]
    files.write_csv_atomic(out_dir / "comparison.csv", runs.rows, columns)
    files.write_text_atomic(out_dir / "comparison.md", markdown.rows_table(runs.rows, columns))
    return {"mode": "compare", "dir": str(out_dir), "metric": metric, "differing_keys": runs.keys,
            "runs": runs.rows, "outputs": {"figures": figures, "csv": str(out_dir / "comparison.csv"),
                                           "markdown": str(out_dir / "comparison.md")}}


def compare_runs(log_dirs: list[pathlib.Path], metric: str, out_dir: pathlib.Path,
                 mode: str = "max") -> dict:
    """Overlays and a table for the runs in `log_dirs`, written into `out_dir`.

    `metric` is the bare metric name (`config.train.best_metric`, e.g. `accuracy`, read from the
    `val/<metric>` tag); `mode` says whether its best value is the max or the min. Every run is
    read and checked before `out_dir` is touched. Returns the mode's JSON dict: one row per run,
    the differing keys and the output paths.
    """
    return _write_comparison(_load_runs(log_dirs, metric, mode), metric, out_dir)


def one_factor_variants(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """The baseline (this config) and one variant per value of `compare.lr`, `compare.weight_decay`
    and `compare.model.<key>`, each changing that one factor, trained `compare.epochs` epochs."""
    epochs = config.compare.epochs or config.train.epochs
    changes = [{}] + [{"lr": v} for v in config.compare.lr]
    changes += [{"weight_decay": v} for v in config.compare.weight_decay]
    changes += [{key: v} for key in config.compare.model for v in config.compare.model[key]]
    variants = {}
    for change in changes:  # a value equal to the baseline's is the baseline: trained once
        variant = grid_search.member_config(config, epochs, **change)
        variants.setdefault(grid_search.member_name(variant), variant)
    return list(variants.values())


def _train_and_compare(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    """`compare.run=True`: trains the one-factor variants (grid machinery: variants sharing an
    architecture train together), then compares them; resumable and locked like a grid."""
    variants = one_factor_variants(config)
    data = train_mode.training_data(config, jax.device_count())
    with runs.open_run(workdir / "logs", config, "compare") as (log_dir, resumed):
        return _compare_variants(config, workdir, variants, data, log_dir, resumed)


def _compare_variants(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                      variants: list[ml_collections.ConfigDict], data: fit.Data,
                      log_dir: pathlib.Path, resumed: bool) -> dict:
    files.write_json_atomic(log_dir / "config.json", config.to_dict())
    print(f"compare {log_dir.name}{' (resumed)' if resumed else ''}: baseline + "
          f"{len(variants) - 1} one-factor variants x {variants[0].train.epochs} epochs")
    results = grid_search.train_members(config, variants, log_dir,
                                        workdir / "checkpoints" / log_dir.name,
                                        group.resolve_strategy(config.grid.strategy), data)
    trained = [r.member.log_dir for r in results if r.history]
    result = compare_runs(trained, config.train.best_metric, log_dir, config.train.best_mode)
    runs.write_status(log_dir, config, "finished")
    print((log_dir / "comparison.md").read_text(), end="")
    return result


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    if config.compare.run:
        return _train_and_compare(config, workdir)
    if not args.runs:
        raise ConfigError("--mode=compare needs --runs=NAME,GLOB,... (runs under "
                          f"{workdir / 'logs'} or their directories)")
    metric = config.train.best_metric
    loaded = _load_runs(resolve_runs(args.runs, workdir / "logs"), metric, config.train.best_mode)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = files.unique_dir(workdir / "logs", config.run_name or f"compare_{config.task}_{stamp}")
    result = _write_comparison(loaded, metric, out_dir)
    print(f"compared {len(loaded.rows)} runs on val/{metric} (differing: "
          f"{', '.join(result['differing_keys']) or 'nothing'}) -> {out_dir}")
    print((out_dir / "comparison.md").read_text(), end="")
    return result
