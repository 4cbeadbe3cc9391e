"""Grids of configurations trained together: expansion, member configs and names, group-wise
training, and the grid's summary (ranked rows, `best_config.py`; the HParams tab's values
are `training/hparams.py`'s).

A grid is lr x weight decay x the task's two model hyper-parameters x seeds. Members that share
an architecture form one group (`training/group.py`), trained on one shared data pipeline.
"""

import itertools
import json
import pathlib
import pprint
import time

import ml_collections

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.errors import ConfigError
from jaxdl.training import fit, group, hparams
from jaxdl.utils import files, runs


def member_config(
    base: ml_collections.ConfigDict, epochs: int, **changes
) -> ml_collections.ConfigDict:
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


def model_axes(config: ml_collections.ConfigDict) -> dict[str, tuple]:
    """The values of the task's two model hyper-parameters in the grid: `grid.model.<key>`, else
    the configured `model.<key>` alone."""
    return {
        k: tuple(config.grid.model[k]) if k in config.grid.model else (config.model[k],)
        for k in tasks.hyperparameter_names(config)
    }


def expand(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """Every member of the grid, architecture-major (members of one group are adjacent)."""
    axes = model_axes(config)
    keys, values = tuple(axes), tuple(axes.values())
    members = []
    for architecture in itertools.product(*values):
        for lr, wd, seed in itertools.product(
            config.grid.lr, config.grid.weight_decay, config.grid.seeds
        ):
            members.append(
                member_config(
                    config,
                    config.grid.epochs,
                    lr=lr,
                    weight_decay=wd,
                    seed=seed,
                    **dict(zip(keys, architecture, strict=True)),
                )
            )
    return members


def architecture(config: ml_collections.ConfigDict) -> tuple:
    """What members of one group share: the values of the model's two hyper-parameters."""
    return tuple(repr(config.model[k]) for k in tasks.hyperparameter_names(config))


def member_name(config: ml_collections.ConfigDict) -> str:
    """e.g. `esc50_channels-32-64-128_kernel_size-3_lr-0.01_wd-0.0001_seed-42`."""
    return f"{config.task}_{runs.hyperparameter_tag(config)}_seed-{config.seed}"


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def _origins(config: ml_collections.ConfigDict, keys: list[str]) -> dict[str, str]:
    """Per key (e.g. `grid.lr`), whether it holds the default of the task's config file or was
    changed (on the command line or by another config file); the bare key for a task without a
    config file of its own."""
    try:
        defaults = config_lib.flatten(config_lib.load_task_config(config.task).to_dict())
    except ConfigError:
        return {key: key for key in keys}
    values, default = config_lib.flatten(config.to_dict()), f"default of configs/{config.task}.py"
    return {
        key: f"{key}, {default}"
        if json.dumps(values[key]) == json.dumps(defaults.get(key, "(absent)"))
        else f"{key}, changed"
        for key in keys
    }


def plan(
    config: ml_collections.ConfigDict,
    members: list[ml_collections.ConfigDict],
    steps_per_epoch: int,
) -> list[str]:
    """What a grid will train, printed before it starts: the member count, every axis with its
    values and where they come from (an override of one axis keeps the others' defaults), the
    groups and the steps they take."""
    axes = {"lr": ("grid.lr", config.grid.lr)}
    axes["weight_decay"] = ("grid.weight_decay", config.grid.weight_decay)
    for name, values in model_axes(config).items():
        axes[name] = (
            f"grid.model.{name}" if name in config.grid.model else f"model.{name}",
            values,
        )
    axes["seeds"] = ("grid.seeds", config.grid.seeds)
    origins = _origins(config, [key for key, _ in axes.values()])
    groups, epochs = len({architecture(m) for m in members}), config.grid.epochs
    lines = [
        f"grid plan: {len(members)} members = "
        + " x ".join(f"{len(values)} {name}" for name, (_, values) in axes.items())
    ]
    lines += [
        f"  {name}: {', '.join(map(_shown, values))}  ({origins[key]})"
        for name, (key, values) in axes.items()
    ]
    lines.append(
        f"  {groups} group(s) (one per architecture) of {len(members) // groups} member(s), "
        f"each {epochs} epochs x {steps_per_epoch:,} steps = {epochs * steps_per_epoch:,} steps"
    )
    lines.append(
        f"  {len(members) * epochs * steps_per_epoch:,} member-steps in all; each group's time "
        "and the time left are printed as it ends"
    )
    kept = [(k, v) for k, v in axes.values() if len(v) > 1 and "default" in origins[k]]
    if kept:
        key, values = kept[0]
        lines.append(
            f"  an axis not set keeps its default above: set it too (e.g. "
            f"--config.{key}='({_shown(values[0])},)') to train fewer members"
        )
    return lines


def train_members(
    base: ml_collections.ConfigDict,
    members: list[ml_collections.ConfigDict],
    log_dir: pathlib.Path,
    checkpoint_dir: pathlib.Path,
    strategy: str,
    data: fit.Data,
) -> list[fit.Result]:
    """Trains `members` group by group (one per architecture) on `data` (`base`'s data and data
    order); a group whose every member diverged is recorded and the next one trained."""
    results = []
    groups: dict[tuple, list] = {}
    for member in members:
        groups.setdefault(architecture(member), []).append(member)
    grid_started = time.perf_counter()
    for number, configs in enumerate(groups.values(), start=1):
        trainer = group.build(
            configs, data.names, strategy, steps_per_epoch=fit.batches_per_epoch(data)
        )
        shared = dict(zip(tasks.hyperparameter_names(base), architecture(configs[0]), strict=True))
        print(
            f"group {number}/{len(groups)}: {len(configs)} member(s), {shared}, {trainer.strategy}"
        )
        named = [
            fit.Member(member_name(c), c, log_dir / member_name(c), checkpoint_dir / member_name(c))
            for c in configs
        ]
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
        left = len(groups) - number
        if left:
            pace = (time.perf_counter() - grid_started) / number
            print(
                f"  group {number}/{len(groups)} took {seconds:.0f} s; about {pace * left:.0f} s "
                f"left for the other {left} group(s) at the pace so far"
            )
    return results


def summary_rows(results: list[fit.Result], config: ml_collections.ConfigDict) -> list[dict]:
    """One row per member, ranked by the best validation metric; diverged members last."""
    metric, mode = config.train.best_metric, config.train.best_mode
    rows = []
    for result in results:
        best = fit.history_records(result)
        rows.append(
            {
                "run": result.member.name,
                **hparams.varied(result.member.config),
                f"val/{metric}": best.get(f"val/{metric}", float("nan")),
                "val/loss": best.get("val/loss", float("nan")),
                "best_epoch": result.best_epoch or "",
                "final/train/loss": result.history[-1]["train/loss"] if result.history else "",
                "seconds": round(result.seconds, 1),
                "notes": "diverged" if result.diverged else "",
            }
        )
    key = f"val/{metric}"
    finished = sorted(
        (r for r in rows if r[key] == r[key]), key=lambda r: r[key], reverse=mode == "max"
    )
    ranked = finished + [r for r in rows if r[key] != r[key]]  # NaN (diverged) last
    return [{"rank": i, **row} for i, row in enumerate(ranked, start=1)]


def write_best_config(
    path: pathlib.Path, best: ml_collections.ConfigDict, base: ml_collections.ConfigDict, note: str
) -> None:
    """A config file `--config PATH` accepts: the best member with the base's epochs and test."""
    config = ml_collections.ConfigDict(best.to_dict())
    config.train.epochs = base.train.epochs
    config.train.evaluate_test = base.train.evaluate_test
    # Every user string (the note holds run names; the config holds paths) is embedded as a
    # Python literal by repr (pformat does so for the values): loading the file runs none of it.
    body = pprint.pformat(config.to_dict(), indent=1, width=100, sort_dicts=True)
    files.write_text_atomic(
        path,
        f"{note!r}\n\nimport ml_collections\n\n\n"
        f"def get_config():\n    return ml_collections.ConfigDict(\n"
        f"{body}\n    )\n",
    )
