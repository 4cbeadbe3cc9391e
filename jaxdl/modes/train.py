"""`--mode=train` (M6, and M3 with `train.overfit_n`): train, validate every epoch, keep the best
checkpoint, then score it on the test split with the model it trained (restored into its state,
predicted by its compiled step: nothing is initialised or compiled a second time).

With `train.overfit_n = N` the model trains on a fixed N-example subset with augmentation off and is
validated on that same subset: `train/loss` (train-mode BatchNorm, batch statistics) and `val/loss`
(eval-mode BatchNorm, running statistics) are both logged, so the lag of BatchNorm's running
statistics shows up as a gap between the two instead of passing for a bug.
"""

import pathlib

import jax
import ml_collections
from absl import logging

from jaxdl.training import evaluation, fit, group, hparams
from jaxdl.training.data import training_data
from jaxdl.utils import runs


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    """Runs the whole training (or resumes it); returns the headline figures (the JSON line):
    `val/*` of the best epoch, `final/train/loss` of the last, `test/*` of the best checkpoint
    (`test_outputs`: the folder of its `scores.json` and predictions).

    The data is loaded and checked before the run directory exists, and the run is locked
    while it trains (`runs.open_run`).
    """
    mode = "overfit" if config.train.overfit_n > 0 else "train"
    data = training_data(config, jax.device_count())
    trainer = group.build(
        [config], data.names, "sequential", steps_per_epoch=fit.batches_per_epoch(data)
    )
    with runs.open_run(workdir / "logs", config, mode) as (log_dir, resumed):
        return _train_run(config, workdir, data, trainer, mode, log_dir, resumed)


def _train_run(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    data: fit.Data,
    trainer: group.Group,
    mode: str,
    log_dir: pathlib.Path,
    resumed: bool,
) -> dict:
    overfit = mode == "overfit"
    checkpoint_dir = workdir / "checkpoints" / log_dir.name
    print(
        f"run {log_dir.name}{' (resumed)' if resumed else ''}: {len(data.train)} train / "
        f"{len(data.val)} val examples, {len(data.names)} classes, batch {data.batch_size}, "
        f"{fit.batches_per_epoch(data)} steps/epoch on "
        f"{trainer.mesh.shape['data']} device(s)"
    )
    print(f"  logs: {log_dir}\n  checkpoints: {checkpoint_dir}")
    member = fit.Member(log_dir.name, config, log_dir, checkpoint_dir)
    try:
        (result,) = fit.fit([member], data, trainer)
    except fit.NonFiniteLoss:
        runs.write_status(log_dir, config, "failed")
        raise
    hparams.log([result])  # the HParams tab shows train runs beside grid members
    best = fit.history_records(result)
    summary = {
        "mode": mode,
        "run": log_dir.name,
        "checkpoint": str(checkpoint_dir),
        "best_epoch": result.best_epoch,
        **{k: v for k, v in best.items() if k.startswith("val/")},
        "final/train/loss": result.history[-1]["train/loss"],
    }
    if not overfit and config.train.evaluate_test:
        test = evaluation.evaluate_checkpoint(
            config, checkpoint_dir, "test", log_dir / "test", trainer
        )
        summary |= {k: v for k, v in test.items() if k.startswith("test/")}
        summary["test_outputs"] = test["outputs"]
    runs.write_status(log_dir, config, "finished")
    logging.info("training finished: %s", summary)
    return summary


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    del args  # train takes everything from the config
    return train_and_evaluate(config, workdir)
