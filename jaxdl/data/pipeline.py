"""grain pipelines: shuffled, augmented training batches and padded, masked evaluation batches.

Training: a fresh permutation and fresh augmentation draws each epoch, both derived from the run's
seed and the epoch number, so an epoch can be rebuilt exactly (resume). Evaluation: source order,
no augmentation, the last partial batch padded with `mask = 0` rows so shapes never change (no
recompilation) and every example counts exactly once.
"""

import functools
from collections.abc import Iterator, Sequence

import grain
import ml_collections
import numpy as np

from jaxdl.data.tasks import TaskData


class Subset:
    """A fixed list of indices of a random-access source (overfit-a-batch, M3)."""

    def __init__(self, source, indices: Sequence[int]):
        self._source, self._indices = source, list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> dict:
        return self._source[self._indices[i]]


def overfit_subset(source, n: int, seed: int) -> Subset:
    """N examples drawn without replacement, the same for a given seed."""
    n = min(n, len(source))
    return Subset(source, np.sort(np.random.default_rng(seed).choice(len(source), n, replace=False)))


class _ModelInput(grain.transforms.Map):
    def __init__(self, task: TaskData, config: ml_collections.ConfigDict):
        self._task, self._config = task, config

    def map(self, record: dict) -> dict:
        return {"x": self._task.model_input(record, self._config), "y": np.asarray(record["label"]),
                "mask": np.float32(1.0)}


class _Augment(grain.transforms.RandomMap):
    def __init__(self, task: TaskData, cfg: ml_collections.ConfigDict):
        self._task, self._cfg = task, cfg

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        return self._task.augment(record, rng, self._cfg)


def epoch_seed(seed: int, epoch: int) -> int:
    """Distinct, reproducible seed per (run seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _iterate(ds: grain.MapDataset, workers: int) -> Iterator[dict]:
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
    if workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(it_ds)


def train_batches(source, task: TaskData, config: ml_collections.ConfigDict, epoch: int,
                  batch_size: int, augment: bool, skip: int = 0) -> Iterator[dict]:
    """One epoch of shuffled full batches (the last partial batch is dropped, as in training).

    `skip` starts at that batch of the epoch (resume): order and augmentation draws depend only
    on the seed, the epoch and the example's position, so the remaining batches are unchanged.
    """
    ds = grain.MapDataset.source(source).shuffle(seed=epoch_seed(config.seed, epoch))
    if augment:
        ds = ds.random_map(_Augment(task, config.augment), seed=epoch_seed(config.seed + 1, epoch))
    ds = ds.map(_ModelInput(task, config)).batch(batch_size, drop_remainder=True)
    return _iterate(ds[skip:] if skip else ds, config.data.workers)


def num_train_batches(source, batch_size: int) -> int:
    return len(source) // batch_size


def eval_batches(source, task: TaskData, config: ml_collections.ConfigDict,
                 batch_size: int) -> Iterator[dict]:
    """All examples in source order, padded to full batches with masked rows."""
    ds = grain.MapDataset.source(source).map(_ModelInput(task, config)).batch(
        batch_size, batch_fn=functools.partial(grain.experimental.batch_and_pad, batch_size=batch_size)
    )
    return _iterate(ds, config.data.workers)
