"""What TensorBoard's HParams tab shows of a trained run: a train run and a grid member alike.

Both log the same hyper-parameter names and metric tags: the tab takes its columns from the
experiment summary of one run it finds, so runs logged in another form would show blank cells.
"""

import ml_collections

from jaxdl import tasks
from jaxdl.training import fit
from jaxdl.utils.logging import RunLogger


def _shown(value):
    """A tuple hyper-parameter (channels (32, 64, 128)) as "32-64-128"; other values as they are."""
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def varied(config: ml_collections.ConfigDict) -> dict:
    """What a grid varies: lr, weight decay, seed and the model's two hyper-parameters."""
    values = {"lr": config.train.lr, "weight_decay": config.train.weight_decay, "seed": config.seed}
    for key in tasks.hyperparameter_names(config):
        values[key] = _shown(config.model[key])
    return values


def values(config: ml_collections.ConfigDict) -> dict:
    """A run's row of the HParams tab: `varied`, the optimizer, the schedule and the batch size."""
    return varied(config) | {
        "optimizer": config.train.optimizer,
        "schedule": config.train.schedule,
        "batch_size": config.train.batch_size,
    }


def log(results: list[fit.Result]) -> None:
    """Writes each run's hyper-parameters and best epoch (val metric, val loss, epoch number) into
    its log directory for the HParams tab; a run that never finished an epoch has none."""
    for result in results:
        best = fit.history_records(result)
        if not best:
            continue
        config = result.member.config
        metric = config.train.best_metric
        with RunLogger(result.member.log_dir, config.to_dict()) as logger:
            logger.hparams(
                values(config),
                {
                    f"hparam/best_val_{metric}": best[f"val/{metric}"],
                    "hparam/best_val_loss": best["val/loss"],
                    "hparam/best_epoch": float(result.best_epoch),
                },
            )
