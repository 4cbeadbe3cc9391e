"""Run directories: explicit unique names (task, mode, key hyper-parameters, timestamp), the
status file that lets the same command find and resume its unfinished run, and the OS lock that
keeps a second process off a run in progress."""

import contextlib
import datetime
import hashlib
import json
import pathlib
from collections.abc import Collection, Iterator
from typing import Any

import ml_collections

from jaxdl import config as config_lib
from jaxdl.utils import distributed, files, locks

_SKIPPED_MODEL_KEYS = ("name", "init", "dtype")


def _format(value) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(_format(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def hyperparameter_tag(config: ml_collections.ConfigDict, leave_out: Collection[str] = ()) -> str:
    """e.g. `channels-32-64-128_kernel_size-5_lr-0.02_wd-1e-05`: each model key, `lr` and `wd`
    (weight decay) but those in `leave_out`, a hyphen, then the value (a tuple's items joined by
    hyphens): a key never holds a hyphen, so the first one ends it."""
    values = {k: v for k, v in config.model.items() if k not in _SKIPPED_MODEL_KEYS}
    values.update(lr=config.train.lr, wd=config.train.weight_decay)
    return "_".join(f"{k}-{_format(v)}" for k, v in values.items() if k not in leave_out)


def _not_trained_with(config: ml_collections.ConfigDict, mode: str) -> set[str]:
    """The tag keys `mode` does not train with, so its run name leaves them out: analyze and
    import_torch train nothing, the LR finder sweeps the lr, a grid varies lr, weight decay and
    the model keys of `grid.model`."""
    if mode in ("analyze", "import_torch"):
        return {"lr", "wd"}
    if mode == "lr_finder":
        return {"lr"}
    if mode == "grid_search":
        return {"lr", "wd", *config.grid.model}
    return set()


def run_name(config: ml_collections.ConfigDict, mode: str) -> str:
    """`config.run_name` if set, else `<task>_<mode>_<hparams>_<YYYYmmdd-HHMMSS>`, the hparams
    being those the mode trains with (see `hyperparameter_tag`)."""
    if config.run_name:
        return config.run_name
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = hyperparameter_tag(config, _not_trained_with(config, mode))
    return "_".join(part for part in (config.task, mode, tag, stamp) if part)


STATUS_FILE = "run_status.json"
LOCK_FILE = "run.lock"  # held (fcntl.flock) by the process training the run; holds its host/PID

# Keys that cannot change a run's numbers: where outputs go, how often it logs and saves, what
# happens after training, and other modes' settings (a grid member's config carries its grid's).
# A checkpoint whose config differs from the run's in these only is still the run's.
_NOT_TRAINING_KEYS = (
    "run_name",
    "data.cache_dir",
    "data.workers",  # worker processes load the same batches as the main process
    "data.prefetch",
    "runtime.compile_cache",
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.evaluate_test",
    "train.resume",
)
# The config sections of single modes: only the mode they name (and a few others, see
# `report/commands.py`) reads them.
MODE_SECTIONS = ("lr_finder", "grid", "compare", "analyze", "bench")
# Keys added after checkpoints were written: a checkpoint without one ran with this value.
_ADDED_KEYS = {
    "model.dtype": "float32",
    "runtime.matmul_precision": "default",
    "data.augment_on": "auto",
}


def fingerprint(config: ml_collections.ConfigDict) -> str:
    """Identifies "the same command": a hash of the whole resolved config."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: checkpoint A, this run B` for each key that changes training and differs (a checkpoint
    was written under `saved`; `current` is the run's). Everything else must match, `train.epochs`
    included: a finished run is not extended, a longer run is a new run."""
    saved, current = config_lib.flatten(saved), config_lib.flatten(current)
    differing = []
    for key in sorted(set(saved) | set(current)):
        if key in _NOT_TRAINING_KEYS or key.split(".")[0] in MODE_SECTIONS:
            continue
        old = saved.get(key, _ADDED_KEYS.get(key, "(absent)"))
        new = current.get(key, "(absent)")
        if json.dumps(old) != json.dumps(new):  # tuples and their JSON lists compare equal
            differing.append(f"{key}: checkpoint {_format(old)}, this run {_format(new)}")
    return differing


def write_status(log_dir: pathlib.Path, config: ml_collections.ConfigDict, status: str) -> None:
    """`running` while a run may be resumed, then `finished` (or `failed`)."""
    files.write_json_atomic(
        log_dir / STATUS_FILE, {"status": status, "fingerprint": fingerprint(config)}
    )


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


def _lock(stack: contextlib.ExitStack, log_dir: pathlib.Path) -> None:
    """Holds the run's lock until `stack` closes, or raises LockedError naming its holder.

    In a multi-host run the primary process holds it (the others share its verdict), as one
    process per host would otherwise refuse its own job's other processes.
    """

    def attempt() -> str:
        try:
            stack.enter_context(locks.exclusive(log_dir / LOCK_FILE, f"run {log_dir}"))
        except locks.LockedError as err:
            return str(err)
        return ""

    refusal = distributed.from_primary(attempt)
    if refusal:
        raise locks.LockedError(refusal)


@contextlib.contextmanager
def open_run(
    parent: pathlib.Path, config: ml_collections.ConfigDict, mode: str
) -> Iterator[tuple[pathlib.Path, bool]]:
    """The run directory, locked for the block: the latest unfinished run of the same config
    (resume), else a new one. Yields (directory, resumed).

    A second process that finds this run in progress (the same command started again) is refused
    with LockedError naming the host and PID that hold it, before it writes anything. A new
    directory is locked before its status says "running", so no other process resumes it
    meanwhile. The kernel releases the lock when the holder exits, however it exits.
    `train.resume=False` always starts a new run.
    """
    parent = pathlib.Path(parent)
    with contextlib.ExitStack() as stack:
        if config.train.resume:
            # One choice for every process of a multi-host run: the primary's.
            unfinished = distributed.from_primary(
                lambda: [str(d) for d in _unfinished_with(parent, fingerprint(config))]
            )
            if unfinished:
                log_dir = pathlib.Path(unfinished[-1])
                _lock(stack, log_dir)
                yield log_dir, True
                return
        log_dir = files.unique_dir(parent, run_name(config, mode))
        _lock(stack, log_dir)
        write_status(log_dir, config, "running")
        yield log_dir, False
