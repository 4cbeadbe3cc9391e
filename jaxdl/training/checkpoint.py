"""Orbax checkpoints of the whole train state: the latest (resume) and the best by a val metric.

Steps are global training steps. Each step directory holds `state` (the TrainState pytree) and
`meta` (JSON: resolved config, class names, epoch, data position, history, metrics), so
`evaluate` can rebuild the exact model and `train` can resume without the original command line.
Orbax writes to a temporary directory and renames it when complete, so a half-written step is
never read. The two latest steps are kept (members of a grid save one after another, so one may
be a save behind after a kill), plus the best epoch-end step; mid-epoch saves carry no metrics.

Faults: a save that meets a full disk raises one CheckpointError naming the directory and keeps
every complete step (Orbax never touches them before a new step is complete); a step that cannot
be read back (a truncated or deleted file) raises `UnreadableCheckpoint` naming its directory,
which resume answers by setting the step aside and falling back to an earlier one.
"""

import contextlib
import json
import logging
import pathlib
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization
from jax.experimental import multihost_utils

from jaxdl.errors import CheckpointError
from jaxdl.utils import distributed, files

_policies = ocp.checkpoint_managers
_TMP = ".orbax-checkpoint-tmp"

BEST_MODES = ("max", "min")  # train.best_mode: keep the checkpoint of the largest | smallest value


def _orbax_failure_log(record: logging.LogRecord) -> bool:
    """False for Orbax's logged traceback of a failed save: the same error reaches `Checkpoints`,
    which reports it (a full disk as one line), so the console shows it once."""
    return not ("orbax" in record.pathname and record.levelno >= logging.ERROR and record.exc_info)


def _closed_loop_callbacks(previous):
    """After a failed write Orbax closes its event loop while TensorStore still completes the
    other writes of that save; their callbacks' "Event loop is closed" are noise, not news."""

    def hook(unraisable) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    return hook


logging.getLogger("absl").addFilter(_orbax_failure_log)
sys.unraisablehook = _closed_loop_callbacks(sys.unraisablehook)


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint step whose files are truncated, missing or corrupt."""

    def __init__(self, directory: pathlib.Path, step: int, err: BaseException):
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        super().__init__(
            f"checkpoint {directory / str(step)} is unreadable (truncated, partly "
            f"written or corrupt: {reason})"
        )
        self.directory, self.step = directory, step


def set_aside(directory: pathlib.Path, step: int) -> pathlib.Path:
    """Renames an unreadable step to `<step>.unreadable-<time>`: kept for inspection, ignored by
    Orbax, so the steps before it are the latest."""
    target = directory / f"{step}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
    if distributed.is_primary():
        (directory / str(step)).rename(target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"set aside {directory}/{step}")
    return target


def _unreadable_metrics_step(directory: pathlib.Path) -> int | None:
    """The step whose Orbax metrics file is not valid JSON (Orbax reads them all on opening)."""
    for metrics in sorted(directory.glob("*/metrics/metrics")):
        try:
            json.loads(metrics.read_text())
        except (OSError, ValueError):
            if metrics.parent.parent.name.isdigit():
                return int(metrics.parent.parent.name)
    return None


def metric_key(name: str) -> str:
    """Key of the validation metric in Orbax's per-step metrics."""
    return f"val_{name}"


class Checkpoints:
    """A checkpoint directory `checkpoints/<run>/` with latest + best preservation."""

    def __init__(
        self, directory: pathlib.Path, best_metric: str, best_mode: str, read_only: bool = False
    ):
        if best_mode not in BEST_MODES:
            raise CheckpointError(f"train.best_mode must be 'max' or 'min', got {best_mode!r}")
        key = metric_key(best_metric)
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            best_fn=lambda m: m[key],  # what best_step() reads
            best_mode=best_mode,
            # BestN keeps the *last* n of sorted(values, reverse=...): reverse=False keeps the max.
            preservation_policy=_policies.AnyPreservationPolicy(
                [
                    _policies.LatestN(n=2),
                    _policies.BestN(
                        get_metric_fn=lambda m: m[key],
                        reverse=best_mode == "min",
                        n=1,
                        keep_checkpoints_without_metrics=False,
                    ),
                ]
            ),
            read_only=read_only,
        )
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except (OSError, ValueError) as err:
            step = _unreadable_metrics_step(self.directory)
            if step is None:
                raise
            raise UnreadableCheckpoint(self.directory, step, err) from err
        self._full = False  # a save met a full disk: reported once, nothing more is written

    @contextlib.contextmanager
    def _disk_full_is_an_error(self) -> Iterator[None]:
        """A full disk during a save (raised by the save or by a later wait) as one clear error.

        Orbax writes a step into a temporary directory that is renamed when complete, and removes
        older steps only after that: every complete step is kept. `close` removes the partial one.
        """
        try:
            yield
        except Exception as err:
            if not files.is_disk_full(err):
                raise
            self._full = True
            self._manager.reload()
            kept = self._manager.all_steps()
            where = (
                f"the complete checkpoints are kept (latest: {self.directory / str(max(kept))})"
                if kept
                else "no complete checkpoint was written yet"
            )
            raise CheckpointError(
                f"cannot save a checkpoint in {self.directory}: the disk is full; "
                f"{where}. Free some space and rerun the same command to "
                "resume"
            ) from None

    def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float] | None) -> None:
        """Saves `state` at `step`; `metrics` (val metrics) only at epoch ends, None mid-epoch."""
        with self._disk_full_is_an_error():
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
                metrics=None
                if metrics is None
                else {metric_key(k): float(v) for k, v in metrics.items()},
                force=True,
            )

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def delete(self, step: int) -> None:
        self._manager.delete(step)

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def read_meta(self, step: int) -> dict:
        try:
            return self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            ).meta
        except Exception as err:  # Orbax and TensorStore raise whatever their reader met
            raise UnreadableCheckpoint(self.directory, step, err) from err

    def set_aside(self, step: int) -> pathlib.Path:
        """`set_aside` of one of this directory's steps."""
        target = set_aside(self.directory, step)
        self._manager.reload()
        return target

    def _shape_differences(self, step: int, template: Any) -> list[str]:
        """Per tensor: what the checkpoint holds vs what the model expects (for the error)."""

        def name(entry) -> str:
            for attribute in ("key", "idx", "name"):
                if hasattr(entry, attribute):
                    return str(getattr(entry, attribute))
            return str(entry)

        def shape(leaf) -> tuple:
            if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
                return tuple(jax.random.key_data(leaf).shape)  # saved as its raw key data
            return tuple(leaf.shape)

        def shapes(tree) -> dict[str, tuple]:
            return {
                "/".join(name(e) for e in path): shape(leaf)
                for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
                if hasattr(leaf, "shape")
            }

        stored = shapes(self._manager.item_metadata(step)["state"])
        expected = shapes(serialization.to_state_dict(template))  # the saved tree's key form
        differing = [k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)]
        # Parameters first: the optimizer state only mirrors them.
        differing.sort(key=lambda k: (k.split("/")[0] not in ("params", "batch_stats"), k))
        lines = [
            f"{k}: checkpoint {stored.get(k, 'absent')} vs model {expected.get(k, 'absent')}"
            for k in differing
        ]
        return lines[:10] + ([f"... and {len(lines) - 10} more"] if len(lines) > 10 else [])

    def restore_state(self, step: int, template: Any) -> Any:
        """Restores into the structure, shapes and shardings of `template` (a fresh state)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
        except Exception as err:  # a mismatch, or files that cannot be read
            try:
                differences = "\n  ".join(self._shape_differences(step, template))
            except Exception:  # noqa: BLE001 - the tree metadata itself is unreadable
                differences = ""
            if not differences:
                raise UnreadableCheckpoint(self.directory, step, err) from err
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} does not match the model being restored into "
                f"(another architecture or task?); differing tensor shapes:\n  {differences}"
            ) from err
        return restored.state

    def wait(self) -> None:
        """Waits for the saves in flight (a full disk met by one raises here)."""
        if not self._full:
            with self._disk_full_is_an_error():
                self._manager.wait_until_finished()

    def close(self) -> None:
        if not self._full:
            self.wait()
            self._manager.close()
            return
        with contextlib.suppress(Exception):  # the full disk is being reported already
            self._manager.close()
        for partial in self.directory.glob(f"*{_TMP}*"):  # space for the next attempt
            shutil.rmtree(partial, ignore_errors=True)

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _saved_config(probe: Checkpoints) -> dict:
    """The run's config, from the newest step whose meta can be read (every step holds it)."""
    unreadable = None
    for step in sorted(probe.all_steps(), reverse=True):
        try:
            return probe.read_meta(step)["config"]
        except UnreadableCheckpoint as err:
            unreadable = err
        except (KeyError, TypeError) as err:
            raise CheckpointError(
                f"{probe.directory} is not a jaxdl checkpoint (its meta holds no run config: {err})"
            ) from err
    raise unreadable


def open_for_evaluation(directory: str | pathlib.Path) -> tuple[Checkpoints, int, dict]:
    """The best checkpoint of a run directory (or the latest if no metric was recorded).

    A step that cannot be read raises `UnreadableCheckpoint` naming its directory: evaluate never
    substitutes another step for the best one.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise CheckpointError(
            f"checkpoint directory {directory} does not exist; expected "
            "checkpoints/<run>/ as written by --mode=train"
        )
    with Checkpoints(directory, "accuracy", "max", read_only=True) as probe:  # metric unknown yet
        if not probe.all_steps():
            raise CheckpointError(f"{directory} holds no complete Orbax checkpoint step")
        config = _saved_config(probe)
    checkpoints = Checkpoints(
        directory, config["train"]["best_metric"], config["train"]["best_mode"], read_only=True
    )
    step = checkpoints.best_step() or checkpoints.latest_step()
    try:
        return checkpoints, step, checkpoints.read_meta(step)
    except CheckpointError:
        checkpoints.close()
        raise
