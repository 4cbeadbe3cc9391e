"""Run directories: explicit unique names (task, mode, key hyper-parameters, timestamp), and the
status file that lets the same command find and resume its unfinished run."""

import datetime
import hashlib
import json
import pathlib

import ml_collections

from jaxdl.utils import distributed, files

_SKIPPED_MODEL_KEYS = ("name", "init")


def _format(value) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(_format(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def hyperparameter_tag(config: ml_collections.ConfigDict) -> str:
    """e.g. `channels32-64-128_kernel_size5_lr0.02_wd1e-05`."""
    parts = [f"{k}{_format(v)}" for k, v in config.model.items() if k not in _SKIPPED_MODEL_KEYS]
    parts += [f"lr{_format(config.train.lr)}", f"wd{_format(config.train.weight_decay)}"]
    return "_".join(parts)


def run_name(config: ml_collections.ConfigDict, mode: str) -> str:
    """`config.run_name` if set, else `<task>_<mode>_<hparams>_<YYYYmmdd-HHMMSS>`."""
    if config.run_name:
        return config.run_name
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.task}_{mode}_{hyperparameter_tag(config)}_{stamp}"


STATUS_FILE = "run_status.json"


def fingerprint(config: ml_collections.ConfigDict) -> str:
    """Identifies "the same command": a hash of the whole resolved config."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_status(log_dir: pathlib.Path, config: ml_collections.ConfigDict, status: str) -> None:
    """`running` while a run may be resumed, then `finished` (or `failed`)."""
    files.write_json_atomic(log_dir / STATUS_FILE,
                            {"status": status, "fingerprint": fingerprint(config)})


def _unfinished_with(parent: pathlib.Path, print_: str) -> list[pathlib.Path]:
    found = []
    for status_file in parent.glob(f"*/{STATUS_FILE}"):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable: never resume into it
        if status.get("status") == "running" and status.get("fingerprint") == print_:
            found.append(status_file.parent)
    return sorted(found, key=lambda d: (d / STATUS_FILE).stat().st_mtime)


def open_run(parent: pathlib.Path, config: ml_collections.ConfigDict,
             mode: str) -> tuple[pathlib.Path, bool]:
    """The run directory: the latest unfinished run of the same config (resume), else a new one.

    Returns (directory, resumed). `train.resume=False` always starts a new run.
    """
    parent = pathlib.Path(parent)
    if config.train.resume:
        # One choice for every process of a multi-host run: the primary's.
        unfinished = distributed.from_primary(
            lambda: [str(d) for d in _unfinished_with(parent, fingerprint(config))])
        if unfinished:
            return pathlib.Path(unfinished[-1]), True
    log_dir = files.unique_dir(parent, run_name(config, mode))
    write_status(log_dir, config, "running")
    return log_dir, False
