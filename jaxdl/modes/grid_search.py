"""`--mode=grid_search` (M5; M8 with a narrower grid): lr x weight decay x the task's two model
hyper-parameters x seeds, `grid.epochs` each, all fed by one data pipeline.

Members that share an architecture form one group, trained together (`training/group.py`:
stepped one after another through one compiled step on CPU, vmapped on accelerators); each
architecture is its own group. Every member gets its own TensorBoard run under
`logs/<grid>/<member>/` (so curves overlay when TensorBoard points at `logs/<grid>/`), hparams the
HParams tab displays with their metric values, and its own best checkpoint under
`checkpoints/<grid>/<member>/`. The grid writes `summary.csv` and `summary.md` ranked by the best
validation metric, `best_config.py`, a config file `train` accepts as is, and `config.json`,
the grid's own resolved config (`--mode=report` rebuilds the grid's command from it). Data order
and augmentation come from the grid's `seed`; `grid.seeds` vary initialisation and dropout, so a
member whose seed equals `seed` reproduces `train` run alone with its configuration.
Rerunning the same command resumes an interrupted grid: finished members are not retrained.
"""

import itertools
import pathlib
import pprint
import time

import jax
import ml_collections

from jaxdl import config as config_lib
from jaxdl.analysis import markdown
from jaxdl.errors import ConfigError, JaxdlError
from jaxdl.models import MODELS
from jaxdl.modes import train as train_mode
from jaxdl.training import fit, group
from jaxdl.utils import files, runs
from jaxdl.utils.logging import RunLogger


def model_keys(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """The task model's two hyper-parameters (e.g. channels, kernel_size)."""
    return MODELS[config.model.name][1]


def member_config(base: ml_collections.ConfigDict, epochs: int, **changes) -> ml_collections.ConfigDict:
    """`base` with `changes` (lr, weight_decay, seed, or a model key), trained `epochs` epochs.

    The member is validated as a whole config, so a grid value that makes no valid model
    (branch channels not summing to 192, groups not dividing a width) is rejected by name.
    """
    member = ml_collections.ConfigDict(base.to_dict())
    for key, value in changes.items():
        if key in ("lr", "weight_decay"):
            member.train[key] = value
        elif key == "seed":
            member.seed = value
        else:
            member.model[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    member.train.epochs = epochs
    member.train.evaluate_test = False
    member.run_name = ""
    try:
        config_lib.validate(member)
    except ConfigError as err:
        raise ConfigError(f"grid member {changes}: {err}") from err
    return member


def expand(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """Every member of the grid, architecture-major (members of one group are adjacent)."""
    keys = model_keys(config)
    values = [tuple(config.grid.model[k]) if k in config.grid.model else (config.model[k],)
              for k in keys]
    members = []
    for architecture in itertools.product(*values):
        for lr, wd, seed in itertools.product(config.grid.lr, config.grid.weight_decay,
                                              config.grid.seeds):
            members.append(member_config(config, config.grid.epochs, lr=lr, weight_decay=wd,
                                         seed=seed, **dict(zip(keys, architecture))))
    return members


def _architecture(config: ml_collections.ConfigDict) -> tuple:
    return tuple(repr(config.model[k]) for k in model_keys(config))


def member_name(config: ml_collections.ConfigDict) -> str:
    return f"{config.task}_{runs.hyperparameter_tag(config)}_seed{config.seed}"


def hyperparameters(config: ml_collections.ConfigDict) -> dict:
    """What varies in a grid, as HParams-tab values."""
    values = {"lr": config.train.lr, "weight_decay": config.train.weight_decay, "seed": config.seed}
    for key in model_keys(config):
        value = config.model[key]
        values[key] = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return values


def train_members(base: ml_collections.ConfigDict, members: list[ml_collections.ConfigDict],
                  log_dir: pathlib.Path, checkpoint_dir: pathlib.Path, strategy: str,
                  data: fit.Data | None = None) -> list[fit.Result]:
    """Trains `members` group by group (one per architecture) on `base`'s data and data order
    (`data`, loaded here unless given)."""
    if data is None:
        data = train_mode.training_data(base, jax.device_count())
    results = []
    groups: dict[tuple, list] = {}
    for member in members:
        groups.setdefault(_architecture(member), []).append(member)
    for number, configs in enumerate(groups.values(), start=1):
        trainer = group.build(configs, data.names, strategy)
        print(f"group {number}/{len(groups)}: {len(configs)} member(s), "
              f"{dict(zip(model_keys(base), _architecture(configs[0])))}, {trainer.strategy}")
        named = [fit.Member(member_name(c), c, log_dir / member_name(c),
                            checkpoint_dir / member_name(c)) for c in configs]
        started = time.perf_counter()
        try:
            group_results = fit.fit(named, data, trainer)
        except fit.NonFiniteLoss as err:  # every member of the group diverged: record, go on
            print(f"  group {number}: every member diverged")
            group_results = [fit.Result(m, [], None, str(err)) for m in named]
        seconds = time.perf_counter() - started
        for result in group_results:
            result.seconds = seconds / len(configs)
        results.extend(group_results)
    return results


def _summary_rows(results: list[fit.Result], config: ml_collections.ConfigDict) -> list[dict]:
    metric, mode = config.train.best_metric, config.train.best_mode
    rows = []
    for result in results:
        best = fit.history_records(result)
        rows.append({"run": result.member.name, **hyperparameters(result.member.config),
                     f"best_val_{metric}": best.get(f"val/{metric}", float("nan")),
                     "val_loss": best.get("val/loss", float("nan")),
                     "best_epoch": result.best_epoch or "",
                     "final_train_loss": result.history[-1]["train/loss"] if result.history else "",
                     "seconds": round(result.seconds, 1),
                     "notes": "diverged" if result.diverged else ""})
    key = f"best_val_{metric}"
    finished = sorted((r for r in rows if r[key] == r[key]), key=lambda r: r[key],
                      reverse=mode == "max")
    ranked = finished + [r for r in rows if r[key] != r[key]]  # NaN (diverged) last
    return [{"rank": i, **row} for i, row in enumerate(ranked, start=1)]


def write_best_config(path: pathlib.Path, best: ml_collections.ConfigDict,
                      base: ml_collections.ConfigDict, note: str) -> None:
    """A config file `--config PATH` accepts: the best member with the base's epochs and test."""
    config = ml_collections.ConfigDict(best.to_dict())
    config.train.epochs = base.train.epochs
    config.train.evaluate_test = base.train.evaluate_test
    # Every user string (the note holds run names; the config holds paths) is embedded as a
    # Python literal by repr (pformat does so for the values): loading the file runs no text of theirs.
    body = pprint.pformat(config.to_dict(), indent=1, width=100, sort_dicts=True)
    files.write_text_atomic(path, f"{note!r}\n\nimport ml_collections\n\n\n"
                                  f"def get_config():\n    return ml_collections.ConfigDict(\n"
                                  f"{body}\n    )\n")


def _log_hparams(results: list[fit.Result], config: ml_collections.ConfigDict) -> None:
    metric = config.train.best_metric
    for result in results:
        best = fit.history_records(result)
        if not best:
            continue
        with RunLogger(result.member.log_dir, result.member.config.to_dict()) as logger:
            logger.hparams(hyperparameters(result.member.config),
                           {f"hparam/best_val_{metric}": best[f"val/{metric}"],
                            "hparam/best_val_loss": best["val/loss"],
                            "hparam/best_epoch": float(result.best_epoch)})


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    """Loads and checks the data, then trains the grid in its run directory, locked meanwhile."""
    del args
    members = expand(config)
    data = train_mode.training_data(config, jax.device_count())
    with runs.open_run(workdir / "logs", config, "grid_search") as (log_dir, resumed):
        return _run_grid(config, workdir, members, data, log_dir, resumed)


def _run_grid(config: ml_collections.ConfigDict, workdir: pathlib.Path,
              members: list[ml_collections.ConfigDict], data: fit.Data, log_dir: pathlib.Path,
              resumed: bool) -> dict:
    checkpoint_dir = workdir / "checkpoints" / log_dir.name
    files.write_json_atomic(log_dir / "config.json", config.to_dict())  # the grid's own config
    strategy = group.resolve_strategy(config.grid.strategy)
    print(f"grid {log_dir.name}{' (resumed)' if resumed else ''}: {len(members)} members x "
          f"{config.grid.epochs} epochs, strategy {strategy}\n  logs: {log_dir}")
    started = time.perf_counter()
    results = train_members(config, members, log_dir, checkpoint_dir, strategy, data)
    seconds = time.perf_counter() - started
    _log_hparams(results, config)

    rows = _summary_rows(results, config)
    files.write_csv_atomic(log_dir / "summary.csv", rows, list(rows[0]))
    files.write_text_atomic(log_dir / "summary.md", markdown.rows_table(rows, list(rows[0])))
    metric = config.train.best_metric
    top = rows[0]
    if top["notes"]:
        runs.write_status(log_dir, config, "failed")
        raise JaxdlError(f"every member of grid {log_dir.name} diverged; see {log_dir}/summary.md")
    best = next(r for r in results if r.member.name == top["run"]).member.config
    write_best_config(log_dir / "best_config.py", best, config,
                      f"Best of grid {log_dir.name}: {top['run']}, val {metric} "
                      f"{top[f'best_val_{metric}']:.4f} at epoch {top['best_epoch']}.")
    runs.write_status(log_dir, config, "finished")
    print(markdown.rows_table(rows[:10], list(rows[0])))
    return {"mode": "grid_search", "run": log_dir.name, "members": len(members),
            "groups": len({_architecture(m) for m in members}), "strategy": strategy,
            "seconds": seconds, "best_run": top["run"], f"best_val_{metric}": top[f"best_val_{metric}"],
            "best_val_loss": top["val_loss"], "best_config": str(log_dir / "best_config.py"),
            "summary": str(log_dir / "summary.md")}
