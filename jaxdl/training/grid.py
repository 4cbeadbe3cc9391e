"""Grids of configurations trained together: expansion, member configs and names, group-wise
training, and the grid's summary (ranked rows, `best_config.py`; the HParams tab's values
are `training/hparams.py`'s).

A grid is lr x weight decay x the task's two model hyper-parameters x seeds. Members that share
an architecture form one group (`training/group.py`), trained on one shared data pipeline.

A vmapped group must fit in device memory: before it trains, its train step is compiled (the
program the run then uses) and XLA's memory analysis of it compared with the budget
(`grid.memory_limit_gb`, else the device's memory, `group.memory_budget`). A group that does not
fit is trained in consecutive chunks of the largest member count that does, which gives every
member the numbers it has in the whole group (members never interact); one member that does not
fit alone is refused before anything is trained.
"""

import copy
import itertools
import json
import math
import pathlib
import pprint
import time
from collections.abc import Callable, Iterator

import ml_collections

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.checks import check_range
from jaxdl.data import pipeline
from jaxdl.errors import ConfigError
from jaxdl.training import fit, group, hparams, loop
from jaxdl.utils import distributed, files, runs


def check_config(config: ml_collections.ConfigDict) -> None:
    """grid.memory_limit_gb: GiB a vmapped group's step may use per device (0: the device's)."""
    check_range(config, "grid.memory_limit_gb", 0.0)


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


def group_members(
    config: ml_collections.ConfigDict, epochs: int, **architecture
) -> list[ml_collections.ConfigDict]:
    """The members of one group: `config` with the model values `architecture`, for each
    grid.lr x grid.weight_decay x grid.seeds, trained `epochs` epochs."""
    return [
        member_config(config, epochs, lr=lr, weight_decay=wd, seed=seed, **architecture)
        for lr, wd, seed in itertools.product(
            config.grid.lr, config.grid.weight_decay, config.grid.seeds
        )
    ]


def expand(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """Every member of the grid, architecture-major (members of one group are adjacent)."""
    axes = model_axes(config)
    keys, values = tuple(axes), tuple(axes.values())
    return [
        member
        for architecture in itertools.product(*values)
        for member in group_members(
            config, config.grid.epochs, **dict(zip(keys, architecture, strict=True))
        )
    ]


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


def _gib(size: int) -> str:
    return f"{size / group.GIB:.3g} GiB"


def _first_batch(data: fit.Data) -> dict:
    """The first host batch of training, read in this process (no worker pool for one batch):
    its shapes and dtypes are those every train step sees."""
    config = copy.deepcopy(data.config)
    config.data.workers, config.data.prefetch = 0, 1
    batches = pipeline.train_batches(
        data.train, data.task, config, 1, data.batch_size, data.augment
    )
    return next(iter(batches))


def _loop_totals(trainer: group.Group, config: ml_collections.ConfigDict) -> dict:
    """The running totals `fit` passes the train step: the epoch's, and the log interval's when
    logging (so the program measured is the one the run calls)."""
    return {"epoch": trainer.zero_sums(), **fit.interval_totals(trainer, config)}


def step_arguments(trainer: group.Group, data: fit.Data) -> tuple[dict, dict]:
    """(totals, batch): what `fit` passes `trainer`'s train step besides the states."""
    batch = loop.to_device(_first_batch(data), trainer.mesh)
    return _loop_totals(trainer, data.config), batch


def step_bytes(trainer: group.Group, data: fit.Data) -> int | None:
    """Device memory (bytes per device) of `trainer`'s vmapped train step on `data`'s batches."""
    return trainer.train_step_bytes(*step_arguments(trainer, data))


def _chunk_size(members: int, size: int, needed: int, budget: int) -> int:
    """The next member count to try after `size` needed `needed` bytes: the largest count of the
    fewest equal chunks that memory proportional to the member count would fit, below `size`."""
    fits = min(size - 1, int(size * budget / needed))
    return math.ceil(members / math.ceil(members / max(fits, 1)))


def _agreed(value):
    """Process 0's `value` on every process (the rest computed theirs at the same point): the
    processes of a multi-host grid choose the same chunks even if their devices differ."""
    return distributed.from_primary(lambda: value)


def fitting_group(
    configs: list[ml_collections.ConfigDict],
    names: tuple[str, ...],
    strategy: str,
    limit_gb: float,
    label: str,
    measure: Callable[[group.Group], int | None],
    steps_per_epoch: int = 1,
) -> tuple[group.Group, str | None]:
    """The group of the first members of `configs` to train at once, and the line to print when
    they are fewer than all: all of them, unless a vmapped step of all needs more than the memory
    budget (`measure`: a group's bytes per device); then the largest count of equal chunks whose
    step fits, found by compiling it (the program the run then uses).

    Raises ConfigError when one member alone does not fit.
    """
    trainer = group.build(configs, names, strategy, steps_per_epoch=steps_per_epoch)
    if trainer.strategy != "vmap":
        return trainer, None
    budget = distributed.from_primary(lambda: group.memory_budget(limit_gb))
    needed = None if budget is None else _agreed(measure(trainer))
    if needed is None or needed <= budget[0]:
        return trainer, None
    limit, source = budget
    first_needed = needed
    while needed > limit:
        if trainer.size == 1:
            raise ConfigError(
                f"{label}: one member alone needs {_gib(needed)} per device for a vmapped train "
                f"step, more than the {_gib(limit)} budget ({source}): lower train.batch_size or "
                "use more devices (the batch is split over them); if the budget is wrong, set "
                "grid.memory_limit_gb"
            )
        size = _chunk_size(len(configs), trainer.size, needed, limit)
        trainer = group.build(configs[:size], names, strategy, steps_per_epoch=steps_per_epoch)
        needed = _agreed(measure(trainer))
    return trainer, (
        f"  {label}: {len(configs)} members need {_gib(first_needed)} per device in one vmapped "
        f"train step, more than the {_gib(limit)} budget ({source}): trained in "
        f"{math.ceil(len(configs) / trainer.size)} chunks of at most {trainer.size} "
        f"({_gib(needed)} each)"
    )


def _groups_within_memory(
    configs: list[ml_collections.ConfigDict],
    data: fit.Data,
    strategy: str,
    limit_gb: float,
    label: str,
) -> Iterator[tuple[list[ml_collections.ConfigDict], group.Group]]:
    """(members, group) to train one after another: `configs` as one group, or consecutive chunks
    of the `fitting_group` size; chunks of that size share its compiled program, a smaller last
    one is checked on its own."""
    steps_per_epoch = fit.batches_per_epoch(data)

    def fitting(rest):
        trainer, note = fitting_group(
            rest,
            data.names,
            strategy,
            limit_gb,
            label,
            lambda g: step_bytes(g, data),
            steps_per_epoch,
        )
        if note:
            print(note, flush=True)
        return trainer

    trainer, done = fitting(configs), 0
    while done < len(configs):
        chunk = configs[done : done + trainer.size]
        yield chunk, trainer
        done += len(chunk)
        rest = configs[done:]
        if len(rest) >= trainer.size:
            trainer = trainer.with_members(rest[: trainer.size], steps_per_epoch)
        elif rest:
            trainer = fitting(rest)


def _train_group(
    configs: list[ml_collections.ConfigDict],
    trainer: group.Group,
    data: fit.Data,
    log_dir: pathlib.Path,
    checkpoint_dir: pathlib.Path,
    label: str,
) -> list[fit.Result]:
    """Trains one group (or chunk) of members; if every one of them diverged, records that."""
    named = [
        fit.Member(member_name(c), c, log_dir / member_name(c), checkpoint_dir / member_name(c))
        for c in configs
    ]
    started = time.perf_counter()
    try:
        results = fit.fit(named, data, trainer)
    except fit.NonFiniteLoss as err:  # every member of the group diverged: record, go on
        print(f"  {label}: every member diverged")
        results = [fit.Result(m, [], None, str(err)) for m in named]
    for result in results:
        result.seconds = (time.perf_counter() - started) / len(configs)
    return results


def train_members(
    base: ml_collections.ConfigDict,
    members: list[ml_collections.ConfigDict],
    log_dir: pathlib.Path,
    checkpoint_dir: pathlib.Path,
    strategy: str,
    data: fit.Data,
) -> list[fit.Result]:
    """Trains `members` group by group (one per architecture) on `data` (`base`'s data and data
    order), a vmapped group in chunks when it does not fit in memory at once; a group or chunk
    whose every member diverged is recorded and the next one trained."""
    results = []
    groups: dict[tuple, list] = {}
    for member in members:
        groups.setdefault(architecture(member), []).append(member)
    grid_started = time.perf_counter()
    for number, configs in enumerate(groups.values(), start=1):
        label = f"group {number}/{len(groups)}"
        shared = dict(zip(tasks.hyperparameter_names(base), architecture(configs[0]), strict=True))
        print(
            f"{label}: {len(configs)} member(s), {shared}, {group.resolve_strategy(strategy)}",
            flush=True,
        )
        started = time.perf_counter()
        chunks = _groups_within_memory(configs, data, strategy, base.grid.memory_limit_gb, label)
        for chunk, trainer in chunks:
            results += _train_group(chunk, trainer, data, log_dir, checkpoint_dir, label)
        seconds = time.perf_counter() - started
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
