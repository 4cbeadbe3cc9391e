"""Exact command lines rebuilt from a run's `config.json`: the task's config file plus one
`--config.KEY=VALUE` for every key whose value differs from that file's defaults and can change
what the mode does. Left out: `data.cache_dir` (caches are keyed by their content, so where they
live changes no number, and a temporary folder means nothing to a reader), and the sections of
other modes (a train run started from a grid's `best_config.py` carries that grid's `grid.*`).
`data.dir` stays: the run read its data there.

Values are written as `ml_collections.config_flags` parses them back (tuples as `(8,16,16)`,
one-element tuples with their comma, strings bare at the top level), and each argument is
shell-quoted, so the printed line reproduces the run's config exactly. A key the run lacks but the
current defaults have (added to the code since the run) cannot be set back by a flag and is left
to its default.
"""

import json
import pathlib
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from jaxdl import config as config_lib
from jaxdl.utils import runs

# The part of `runs.MODE_SECTIONS` each mode reads; every other mode reads none of them.
_READS = {
    "analyze": ("analyze.", "grid.model."),  # parameter counts of the grid's architectures
    "lr_finder": ("lr_finder.",),
    "grid_search": ("grid.",),
    "compare": ("compare.", "grid.strategy"),  # compare.run trains its variants as a grid does
    "bench": ("bench.",),
    "report": ("",),  # suggests the commands of modes not run yet from its own config
}
_NEVER_NEEDED = ("data.cache_dir",)


def reads(mode: str, key: str) -> bool:
    """Whether `key` (e.g. `grid.lr`) can change what `mode` does."""
    if key in _NEVER_NEEDED:
        return False
    if key.split(".")[0] not in runs.MODE_SECTIONS:
        return True
    return any(key.startswith(prefix) for prefix in _READS.get(mode, ()))


def task_defaults(task: str) -> dict:
    """The defaults of `configs/<task>.py` as a JSON-shaped dict (lists, like a config.json)."""
    return json_shaped(config_lib.load_task_config(task))


def json_shaped(config: ml_collections.ConfigDict | Mapping) -> dict:
    """A config as it reads back from config.json (tuples become lists), for comparing values."""
    tree = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    return json.loads(json.dumps(tree))


def flag_value(value: Any, nested: bool = False) -> str:
    """`value` as `--config.KEY=` accepts it."""
    if isinstance(value, (list, tuple)):
        items = ",".join(flag_value(v, nested=True) for v in value)
        return f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, str):
        return repr(value) if nested else value
    return repr(value)  # bool, int, float, None


def overrides(config: Mapping, defaults: Mapping) -> list[str]:
    """`--config.KEY=VALUE` for each key of `config` that differs from (or is not in) `defaults`,
    sorted by key. Both are JSON-shaped dicts (see `json_shaped`)."""
    run, base = config_lib.flatten(config), config_lib.flatten(defaults)
    return [
        f"--config.{key}={flag_value(value)}"
        for key, value in sorted(run.items())
        if key not in base or base[key] != value
    ]


def command(
    task: str,
    mode: str,
    workdir: pathlib.Path,
    flags: Sequence[str] = (),
    config_overrides: Sequence[str] = (),
) -> str:
    """`python -m jaxdl.main --config <task> --mode=MODE [--workdir] [flags] [overrides]`, each
    argument shell-quoted; `--workdir` only when it is not `.`; of the `overrides`
    (`--config.KEY=VALUE`), those whose key the mode `reads`. The task name finds the task's
    config file in a checkout and in an installed jaxdl alike."""
    workdir_flag = [] if pathlib.Path(workdir) == pathlib.Path(".") else [f"--workdir={workdir}"]
    config_overrides = [
        o for o in config_overrides if reads(mode, o.partition("=")[0].removeprefix("--config."))
    ]
    arguments = [
        "python",
        "-m",
        "jaxdl.main",
        "--config",
        task,
        f"--mode={mode}",
        *workdir_flag,
        *flags,
        *config_overrides,
    ]
    return " ".join(shlex.quote(a) for a in arguments)
