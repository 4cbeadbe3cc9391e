"""`--mode=train` (M6, and M3 with `train.overfit_n`): train, validate every epoch, keep the best
checkpoint, then score it on the test split.

With `train.overfit_n = N` the model trains on a fixed N-example subset with augmentation off and is
validated on that same subset: `train/loss` (train-mode BatchNorm, batch statistics) and `val/loss`
(eval-mode BatchNorm, running statistics) are both logged, so the lag of BatchNorm's running
statistics shows up as a gap between the two instead of passing for a bug.
"""

import pathlib
import time

import ml_collections
from absl import logging

from jaxdl.data import pipeline
from jaxdl.data.tasks import task_data
from jaxdl.errors import DataError, JaxdlError
from jaxdl.modes import evaluate as evaluate_mode
from jaxdl.training import checkpoint, components, loop
from jaxdl.utils import files, runs
from jaxdl.utils.logging import RunLogger


def _prefixed(prefix: str, values: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in values.items()}


def _overfit_batch_size(batch_size: int, n: int, devices: int) -> int:
    """The whole subset in one step when it is smaller than a batch (a multiple of the devices)."""
    size = min(batch_size, n)
    return max(devices, size - size % devices)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    """Runs the whole training; returns the headline figures (also the mode's JSON line)."""
    task = task_data(config)
    train_split = task.load_split(config, "train")
    names = train_split.class_names
    overfit = config.train.overfit_n > 0
    batch_size = config.train.batch_size
    if overfit:
        train_source = val_source = pipeline.overfit_subset(train_split.source,
                                                            config.train.overfit_n, config.seed)
    else:
        val_split = task.load_split(config, "val")
        if val_split.class_names != names:
            raise DataError(f"train and val splits have different classes: {len(names)} vs "
                            f"{len(val_split.class_names)}")
        train_source, val_source = train_split.source, val_split.source

    parts = components.build(config, names)
    devices = parts.mesh.shape["data"]
    if overfit:
        batch_size = _overfit_batch_size(batch_size, len(train_source), devices)
    eval_batch_size = config.train.eval_batch_size or batch_size
    num_batches = pipeline.num_train_batches(train_source, batch_size)
    if num_batches == 0:
        raise DataError(f"the training split has {len(train_source)} examples, fewer than one "
                        f"batch of train.batch_size={batch_size}")

    name = runs.run_name(config, "overfit" if overfit else "train")
    log_dir = files.unique_dir(workdir / "logs", name)
    checkpoint_dir = workdir / "checkpoints" / log_dir.name
    print(f"run {log_dir.name}: {len(train_source)} train / {len(val_source)} val examples, "
          f"{len(names)} classes, batch {batch_size}, {num_batches} steps/epoch on {devices} device(s)")
    print(f"  logs: {log_dir}\n  checkpoints: {checkpoint_dir}")

    state, step, history = parts.state, 0, []
    with RunLogger(log_dir, config.to_dict()) as logger, \
            checkpoint.Checkpoints(checkpoint_dir, config.train.best_metric,
                                   config.train.best_mode) as checkpoints:

        def log_interval(at_step: int, sums: dict) -> None:
            sums.pop("nonfinite_steps")
            logger.scalars(at_step, {"train/loss_step": parts.objective.summary(sums)["loss"]})

        for epoch in range(1, config.train.epochs + 1):
            started = time.perf_counter()
            batches = pipeline.train_batches(train_source, task, config, epoch, batch_size,
                                             augment=config.augment.enabled and not overfit)
            state, sums = loop.train_epoch(
                parts.steps.train, state, batches, num_batches, parts.mesh,
                f"epoch {epoch}/{config.train.epochs}", first_step=step,
                on_interval=log_interval, interval=config.train.log_every_steps)
            step += num_batches
            if sums.pop("nonfinite_steps"):
                last = checkpoints.latest_step()
                raise JaxdlError(f"non-finite loss or gradients during epoch {epoch} (steps "
                                 f"{step - num_batches + 1}–{step}); training stopped, the last good "
                                 f"checkpoint is {checkpoint_dir}/{last}" if last else
                                 f"non-finite loss or gradients during epoch {epoch}; no checkpoint "
                                 "was written yet. Lower train.lr.")
            train_metrics = parts.objective.summary(sums)
            val_metrics = parts.objective.summary(loop.evaluate(
                parts.steps.eval, state,
                pipeline.eval_batches(val_source, task, config, eval_batch_size), parts.mesh, "val"))
            record = {"epoch": epoch, "step": step, **_prefixed("train", train_metrics),
                      **_prefixed("val", val_metrics), "seconds": time.perf_counter() - started}
            logger.scalars(epoch, _prefixed("train", train_metrics) | _prefixed("val", val_metrics))
            logger.log_epoch(record)
            history.append(record)
            checkpoints.save(epoch, state, {"config": config.to_dict(), "class_names": list(names),
                                            "epoch": epoch, "metrics": record}, val_metrics)
            print(f"epoch {epoch:3d}  train loss {train_metrics['loss']:.4f} "
                  f"{config.train.best_metric} {train_metrics.get(config.train.best_metric, float('nan')):.4f}"
                  f"  |  val loss {val_metrics['loss']:.4f} {config.train.best_metric} "
                  f"{val_metrics[config.train.best_metric]:.4f}  ({record['seconds']:.1f} s)")
        checkpoints.wait()
        best_epoch = checkpoints.best_step()

    best = history[best_epoch - 1]
    summary = {"mode": "overfit" if overfit else "train", "run": log_dir.name,
               "checkpoint": str(checkpoint_dir), "best_epoch": best_epoch,
               **{k.replace("/", "_"): v for k, v in best.items() if k.startswith("val/")},
               "final_train_loss": history[-1]["train/loss"]}
    if not overfit and config.train.evaluate_test:
        test = evaluate_mode.evaluate_checkpoint(config, checkpoint_dir, "test", log_dir / "test")
        summary |= {f"test_{k}": v for k, v in test.items()
                    if k not in ("split", "checkpoint", "outputs", "epoch")}
    logging.info("training finished: %s", summary)
    return summary


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    del args  # train takes everything from the config
    return train_and_evaluate(config, workdir)
