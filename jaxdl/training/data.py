"""The data a training run shares among its members: train and val splits, batch sizes and
augmentation.

With `train.overfit_n = N` both splits are one fixed N-example subset of train, augmentation off,
so `train/loss` (batch statistics) and `val/loss` (running statistics) measure the same examples.

On an accelerator the run says once how its input pipeline loads (workers, batches ahead), since
there the sizes come from the host's CPUs (`pipeline.loading`).
"""

import jax
import ml_collections

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.errors import DataError
from jaxdl.training import fit


def _overfit_batch_size(batch_size: int, n: int, devices: int) -> int:
    """The whole subset in one step when it is smaller than a batch (a multiple of the devices)."""
    size = min(batch_size, n)
    return max(devices, size - size % devices)


def training_data(config: ml_collections.ConfigDict, devices: int) -> fit.Data:
    """Train and val splits for `config` (the overfit subset for both when `train.overfit_n`)."""
    task = tasks.get(config)
    overfit = config.train.overfit_n > 0
    # val first: an empty or broken val split is reported before train features are computed.
    val_split = None if overfit else task.load_split(config, "val")
    train_split = task.load_split(config, "train")
    names = tuple(train_split.class_names)
    batch_size = config.train.batch_size
    if overfit:
        train_source = val_source = pipeline.overfit_subset(
            train_split.source, config.train.overfit_n, config.seed
        )
        batch_size = _overfit_batch_size(batch_size, len(train_source), devices)
    else:
        if tuple(val_split.class_names) != names:
            raise DataError(
                f"train and val splits have different classes: {len(names)} vs "
                f"{len(val_split.class_names)}"
            )
        train_source, val_source = train_split.source, val_split.source
    data = fit.Data(
        config,
        task,
        train_source,
        val_source,
        names,
        batch_size,
        config.train.eval_batch_size or batch_size,
        augment=config.augment.enabled and not overfit,
    )
    fit.batches_per_epoch(data)  # a split smaller than a batch: refused before any run exists
    if jax.default_backend() != "cpu":
        print(f"{pipeline.loading(config)} ({pipeline.host_cpus()} CPUs)", flush=True)
    return data
