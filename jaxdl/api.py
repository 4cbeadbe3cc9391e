"""The Python API: what `python -m jaxdl.main` does, from a notebook or a script.

    import jaxdl

    config = jaxdl.load_config("esc50", "synthetic", train={"epochs": 1, "lr": 0.01})
    result = jaxdl.run("train", config, workdir="runs")
    result["val/accuracy"], result["best_epoch"], result["checkpoint"]

A config is checked as the command line checks it (unknown keys with the closest existing one,
types, ranges) and a mode returns the dict the command line prints as its last line. See
docs/python-api.md.
"""

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import flags, logging

from jaxdl import config as config_lib
from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, run_mode

__all__ = ["load_config", "run"]


def _leaves(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested overrides ({"train": {"lr": 0.01}}) as the dotted keys `--config.KEY` names."""
    leaves = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            leaves |= _leaves(value, f"{prefix}{key}.")
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """`config.<key> = value` with the type the default has (ints widen to floats, lists become
    tuples, as ConfigDict allows); ConfigError naming the key otherwise."""
    *sections, leaf = key.split(".")
    section = config
    for name in sections:
        section = section[name]
    default = section[leaf]
    if isinstance(default, ml_collections.ConfigDict):
        raise ConfigError(
            f"{key}={value!r} is invalid: {key} is a section; expected a dict of the keys to "
            f"change in it (such as {next(iter(default))!r})"
        )
    try:
        section[leaf] = value
    except TypeError as err:
        raise ConfigError(
            f"{key}={value!r} is invalid: expected {type(default).__name__}, the type of its "
            f"default {default!r}"
        ) from err


def load_config(
    task_or_path: str | os.PathLike, preset: str | None = None, **overrides: Any
) -> ml_collections.ConfigDict:
    """A task's config (`"esc50"`, or `"esc50:synthetic"` as `--config` takes it) or a config file's
    (a path, e.g. a grid's best_config.py), with `overrides` given as nested dicts of its sections:
    `train={"lr": 0.01}` is `--config.train.lr=0.01`, `seed=0` is `--config.seed=0`.

    Checked before it is returned, as the command line checks it: an unknown key is a ConfigError
    naming the closest existing one, a value of the wrong type or out of range a ConfigError
    naming the key and what is expected. The config is locked, as the command line's is: a key
    mistyped later in the notebook (`config.train.learning_rate = …`) fails at once.
    """
    if preset is None and isinstance(task_or_path, str):
        task_or_path, _, preset = task_or_path.partition(":")
    config = config_lib.load_config_file(task_or_path, preset or None)
    leaves = _leaves(overrides)
    config_lib.check_override_keys(config, leaves)
    for key, value in leaves.items():
        _override(config, key, value)
    config.lock()
    config_lib.validate(config)
    return config


def _mode_args(mode_args: Mapping[str, Any]) -> ModeArgs:
    """The command line's non-config flags (--checkpoint, --split, --torch_checkpoint, --runs)."""
    names = [field.name for field in dataclasses.fields(ModeArgs)]
    unknown = sorted(set(mode_args) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown argument(s) {unknown} of jaxdl.run; the arguments a mode takes are {names} "
            "(the flags --checkpoint, --split, --torch_checkpoint and --runs)"
        )
    values = dict(mode_args)
    if "runs" in values:  # one name or glob, or several
        runs = values["runs"]
        values["runs"] = (runs,) if isinstance(runs, str) else tuple(runs)
    for name in ("checkpoint", "torch_checkpoint"):
        if values.get(name) is not None:
            values[name] = os.fspath(values[name])
    return ModeArgs(**values)


def run(
    mode: str,
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike = ".",
    **mode_args: Any,
) -> dict:
    """Runs `mode` ("train", "evaluate", "bench", …) on `config` with logs/ and checkpoints/ under
    `workdir`, as `python -m jaxdl.main --mode=MODE` does; `mode_args` are the mode's flags
    (`checkpoint=` and `split=` for evaluate, `runs=` for compare, `torch_checkpoint=`).

    The config is validated as the command line's is, whether it came from `load_config` or was
    changed since: a value out of range or a key its task does not have is a ConfigError before
    any compute. Returns the mode's headline figures, the dict the command line prints as its last
    line (paths as strings), ready for `json.dumps`. A multi-process job uses the command line.
    """
    args = _mode_args(mode_args)
    # grain reads absl flags, which no command line has parsed in a notebook
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # as the command line: Orbax and TFDS are chatty
    try:
        result = run_mode(mode, config, pathlib.Path(workdir).expanduser(), args)
    finally:
        logging.set_verbosity(verbosity)
    return json.loads(json.dumps(result, default=str))
