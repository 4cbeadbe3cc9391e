"""Orbax checkpoints of the whole train state: the latest (resume) and the best by a val metric.

Steps are global training steps. Each step directory holds `state` (the TrainState pytree) and
`meta` (JSON: resolved config, class names, epoch, data position, history, metrics), so
`evaluate` can rebuild the exact model and `train` can resume without the original command line.
Orbax writes to a temporary directory and renames it when complete, so a half-written step is
never read. The two latest steps are kept (members of a grid save one after another, so one may
be a save behind after a kill), plus the best epoch-end step; mid-epoch saves carry no metrics.
"""

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization

from jaxdl.errors import CheckpointError

_policies = ocp.checkpoint_managers


def metric_key(name: str) -> str:
    """Key of the validation metric in Orbax's per-step metrics."""
    return f"val_{name}"


class Checkpoints:
    """A checkpoint directory `checkpoints/<run>/` with latest + best preservation."""

    def __init__(self, directory: pathlib.Path, best_metric: str, best_mode: str,
                 read_only: bool = False):
        if best_mode not in ("max", "min"):
            raise CheckpointError(f"train.best_mode must be 'max' or 'min', got {best_mode!r}")
        key = metric_key(best_metric)
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            best_fn=lambda m: m[key],  # what best_step() reads
            best_mode=best_mode,
            # BestN keeps the *last* n of sorted(values, reverse=...): reverse=False keeps the max.
            preservation_policy=_policies.AnyPreservationPolicy([
                _policies.LatestN(n=2),
                _policies.BestN(get_metric_fn=lambda m: m[key], reverse=best_mode == "min", n=1,
                                keep_checkpoints_without_metrics=False),
            ]),
            read_only=read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, meta: dict, metrics: dict[str, float] | None) -> None:
        """Saves `state` at `step`; `metrics` (val metrics) only at epoch ends, None mid-epoch."""
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            metrics=None if metrics is None else {metric_key(k): float(v) for k, v in metrics.items()},
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
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def _shape_differences(self, step: int, template: Any) -> list[str]:
        """Per tensor: what the checkpoint holds vs what the model expects (for the error)."""
        def name(entry) -> str:
            for attribute in ("key", "idx", "name"):
                if hasattr(entry, attribute):
                    return str(getattr(entry, attribute))
            return str(entry)

        def shapes(tree) -> dict[str, tuple]:
            return {"/".join(name(e) for e in path): tuple(leaf.shape)
                    for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
                    if hasattr(leaf, "shape")}

        stored = shapes(self._manager.item_metadata(step)["state"])
        expected = shapes(serialization.to_state_dict(template))  # the saved tree's key form
        differing = [k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)]
        # Parameters first: the optimizer state only mirrors them.
        differing.sort(key=lambda k: (k.split("/")[0] not in ("params", "batch_stats"), k))
        lines = [f"{k}: checkpoint {stored.get(k, 'absent')} vs model {expected.get(k, 'absent')}"
                 for k in differing]
        return lines[:10] + ([f"... and {len(lines) - 10} more"] if len(lines) > 10 else [])

    def restore_state(self, step: int, template: Any) -> Any:
        """Restores into the structure, shapes and shardings of `template` (a fresh state)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        except (ValueError, KeyError) as err:
            differences = "\n  ".join(self._shape_differences(step, template)) or str(err)
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} does not match the model being restored into "
                f"(another architecture or task?); differing tensor shapes:\n  {differences}") from err
        return restored.state

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_for_evaluation(directory: str | pathlib.Path) -> tuple[Checkpoints, int, dict]:
    """The best checkpoint of a run directory (or the latest if no metric was recorded)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist; expected "
                              "checkpoints/<run>/ as written by --mode=train")
    probe = ocp.CheckpointManager(directory.absolute(), options=ocp.CheckpointManagerOptions(read_only=True))
    steps = probe.all_steps()
    probe.close()
    if not steps:
        raise CheckpointError(f"{directory} holds no complete Orbax checkpoint step")
    try:
        meta = Checkpoints(directory, "accuracy", "max", read_only=True).read_meta(max(steps))
        config = meta["config"]
        checkpoints = Checkpoints(directory, config["train"]["best_metric"],
                                  config["train"]["best_mode"], read_only=True)
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise CheckpointError(f"{directory} is not a jaxdl checkpoint (no readable meta with the "
                              f"run's config): {err}") from err
    step = checkpoints.best_step() or checkpoints.latest_step()
    return checkpoints, step, checkpoints.read_meta(step)
