"""grain pipelines: shuffled, augmented training batches and padded, masked evaluation batches.

Training: a fresh permutation and fresh augmentation draws each epoch, both derived from the run's
seed and the epoch number, so an epoch can be rebuilt exactly (resume). Evaluation: source order,
no augmentation, the last partial batch padded with `mask = 0` rows so shapes never change (no
recompilation) and every example counts exactly once.

Several processes (multi-host): every process builds the same global sequence of batches (same
seeded permutation, same augmentation draws, same padding) and reads only its row block of each
(`process_index` of `process_count` equal contiguous blocks, the rows its devices hold, see
`utils/distributed.py`). A global batch is thus the one a single process would load, whatever the
number of hosts, and `skip=k` resumes at the same global batch on every process.
"""

from collections.abc import Iterator, Sequence

import grain
import jax
import ml_collections
import numpy as np

from jaxdl.tasks.spec import Task


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
    return Subset(
        source, np.sort(np.random.default_rng(seed).choice(len(source), n, replace=False))
    )


class _ModelInput(grain.transforms.Map):
    def __init__(self, task: Task, config: ml_collections.ConfigDict):
        self._task, self._config = task, config

    def map(self, record: dict) -> dict:
        return {
            "x": self._task.model_input(record, self._config),
            "y": np.asarray(record["label"]),
            "mask": np.float32(1.0),
        }


class _Augment(grain.transforms.RandomMap):
    def __init__(self, task: Task, cfg: ml_collections.ConfigDict):
        self._task, self._cfg = task, cfg

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        return self._task.augment(record, rng, self._cfg)


def epoch_seed(seed: int, epoch: int) -> int:
    """Distinct, reproducible seed per (run seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _mask_out(record: dict) -> dict:
    """A padding row: counts in no sum (module-level, so worker processes can unpickle it)."""
    return {**record, "mask": np.float32(0.0)}


def _host_batches(
    ds: grain.MapDataset, batch_size: int, process: tuple[int, int] | None
) -> grain.MapDataset:
    """This process's row block of each global batch of `ds` (whose length is a multiple of it).

    `process` is (index, count), by default this process of the running JAX job. A global batch
    of `batch_size` rows is `count` consecutive local batches of `batch_size // count` rows.
    """
    index, count = (jax.process_index(), jax.process_count()) if process is None else process
    if batch_size % count:
        raise ValueError(f"batch size {batch_size} does not split over {count} processes")
    return ds.batch(batch_size // count, drop_remainder=True)[index::count]


def _iterate(ds: grain.MapDataset, workers: int) -> Iterator[dict]:
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
    if workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(it_ds)


def train_batches(
    source,
    task: Task,
    config: ml_collections.ConfigDict,
    epoch: int,
    batch_size: int,
    augment: bool,
    skip: int = 0,
    process: tuple[int, int] | None = None,
) -> Iterator[dict]:
    """One epoch of shuffled full batches (the last partial batch is dropped, as in training).

    `skip` starts at that batch of the epoch (resume): order and augmentation draws depend only
    on the seed, the epoch and the example's position, so the remaining batches are unchanged.
    `process` (index, count): whose rows of each batch to load (default: this process's).
    """
    ds = grain.MapDataset.source(source).shuffle(seed=epoch_seed(config.seed, epoch))
    if augment:
        ds = ds.random_map(_Augment(task, config.augment), seed=epoch_seed(config.seed + 1, epoch))
    ds = ds.map(_ModelInput(task, config))[: num_train_batches(source, batch_size) * batch_size]
    ds = _host_batches(ds, batch_size, process)
    return _iterate(ds[skip:] if skip else ds, config.data.workers)


def num_train_batches(source, batch_size: int) -> int:
    return len(source) // batch_size


def eval_batches(
    source,
    task: Task,
    config: ml_collections.ConfigDict,
    batch_size: int,
    process: tuple[int, int] | None = None,
) -> Iterator[dict]:
    """All examples in source order, padded to full batches with masked copies of the first one.

    `process` (index, count): whose rows of each batch to load (default: this process's); the
    padding is added before the split, so every example counts once over all processes.
    """
    ds = grain.MapDataset.source(source).map(_ModelInput(task, config))
    missing = -len(ds) % batch_size
    if missing:
        ds = grain.MapDataset.concatenate([ds, ds[:1].repeat(missing).map(_mask_out)])
    return _iterate(_host_batches(ds, batch_size, process), config.data.workers)
