"""grain pipelines: shuffled, augmented training batches and padded, masked evaluation batches.

Training: a fresh permutation and fresh augmentation draws each epoch, both derived from the run's
seed and the epoch number, so an epoch can be rebuilt exactly (resume). Evaluation: source order,
no augmentation, the last partial batch padded with `mask = 0` rows so shapes never change (no
recompilation) and every example counts exactly once.

Several processes (multi-host): every process builds the same global sequence of batches (same
seeded permutation, same augmentation draws, same padding) and reads only its row block of each:
the rows its devices hold on the mesh's `data` axis (`distributed.data_block`). A global batch is
thus the one a single process would load, whatever the number of hosts, and `skip=k` resumes at
the same global batch on every process.

Loading (`data.workers`, `data.prefetch`, see `loading`): in the main process on CPU, where the
compiled step already uses every core; in worker processes sized from the host's CPUs on
accelerators. A run reads all its epochs through one `EpochFeed`, so its worker pool starts once.
See docs/input-pipeline.md.
"""

import dataclasses
import math
import os
import time
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


# Cores left to the main process when sizing the worker pool: it runs the step loop, the
# host-to-device copies and the checkpoint writes.
MAIN_PROCESS_CPUS = 2
# More workers mostly add start-up time and memory (each is a Python process with its own copy of
# the pipeline); 16 feed an accelerator at the host costs measured in docs/input-pipeline.md.
MAX_WORKERS = 16
# Batches ahead in the main process (workers = 0) and per worker process, when data.prefetch = 0.
IN_PROCESS_PREFETCH = 4
PREFETCH_PER_WORKER = 2
# Reading threads of the main process when it reads: one batch is augmented while the next is
# read. A worker process reads with one thread (the pool is the parallelism; more threads in a
# worker would only contend for its interpreter lock).
IN_PROCESS_THREADS = 2


@dataclasses.dataclass(frozen=True)
class Loading:
    """How batches are produced: `workers` processes (0: the main process) and `prefetch` batches
    prepared ahead in all."""

    workers: int
    prefetch: int

    def __str__(self) -> str:
        where = f"{self.workers} worker processes" if self.workers else "the main process"
        return f"input pipeline: {where}, {self.prefetch} batches ahead"


def host_cpus() -> int:
    """CPUs this process may run on (a batch scheduler's share, not the whole machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def loading(
    config: ml_collections.ConfigDict, backend: str | None = None, cpus: int | None = None
) -> Loading:
    """`data.workers` / `data.prefetch` resolved: -1 workers is 0 on CPU (the step uses every
    core) and, on an accelerator, the host's CPUs less `MAIN_PROCESS_CPUS`, at most
    `MAX_WORKERS`; 0 prefetch is `IN_PROCESS_PREFETCH` without workers, `PREFETCH_PER_WORKER`
    per worker with them. `backend` and `cpus` default to this process's."""
    workers = config.data.workers
    if workers < 0:
        if (backend or jax.default_backend()) == "cpu":
            workers = 0
        else:
            spare = (cpus or host_cpus()) - MAIN_PROCESS_CPUS
            workers = min(MAX_WORKERS, max(1, spare))
    prefetch = config.data.prefetch or (
        workers * PREFETCH_PER_WORKER if workers else IN_PROCESS_PREFETCH
    )
    return Loading(workers, prefetch)


def _cpu_only_worker(index: int, count: int) -> None:
    """A worker process never takes an accelerator: JAX there, if anything imports it, is CPU."""
    del index, count
    jax.config.update("jax_platforms", "cpu")


def _iterate(ds: grain.MapDataset, load: Loading) -> grain.DatasetIterator:
    if not load.workers:
        threads = min(IN_PROCESS_THREADS, load.prefetch)
        return iter(ds.to_iter_dataset(grain.ReadOptions(threads, load.prefetch)))
    per_worker = math.ceil(load.prefetch / load.workers)
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=per_worker))
    options = grain.MultiprocessingOptions(load.workers, per_worker_buffer_size=per_worker)
    return iter(it_ds.mp_prefetch(options, worker_init_fn=_cpu_only_worker))


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
    ds = _train_epoch(source, task, config, epoch, batch_size, augment, skip, process)
    return _iterate(ds, loading(config))


def _train_epoch(
    source,
    task: Task,
    config: ml_collections.ConfigDict,
    epoch: int,
    batch_size: int,
    augment: bool,
    skip: int,
    process: tuple[int, int] | None,
) -> grain.MapDataset:
    task, config = task.host_view(config)  # what the jitted step does is left out here
    ds = grain.MapDataset.source(source).shuffle(seed=epoch_seed(config.seed, epoch))
    if augment:
        ds = ds.random_map(_Augment(task, config.augment), seed=epoch_seed(config.seed + 1, epoch))
    ds = ds.map(_ModelInput(task, config))[: num_train_batches(source, batch_size) * batch_size]
    ds = _host_batches(ds, batch_size, process)
    return ds[skip:] if skip else ds


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
    return _iterate(_eval_split(source, task, config, batch_size, process), loading(config))


def _eval_split(
    source,
    task: Task,
    config: ml_collections.ConfigDict,
    batch_size: int,
    process: tuple[int, int] | None,
) -> grain.MapDataset:
    task, config = task.host_view(config)
    ds = grain.MapDataset.source(source).map(_ModelInput(task, config))
    missing = -len(ds) % batch_size
    if missing:
        ds = grain.MapDataset.concatenate([ds, ds[:1].repeat(missing).map(_mask_out)])
    return _host_batches(ds, batch_size, process)


class EpochFeed:
    """The batches of a run's remaining epochs, each epoch's training batches then (with
    `val_source`) its validation batches, read through one iterator.

    grain starts a worker pool per iterator (seconds with a few workers); one iterator over every
    epoch starts it once, and the workers prepare the validation batches and the next epoch while
    the current epoch's last steps run. Each part holds exactly what `train_batches` (`skip` in
    the first epoch) or `eval_batches` would yield. Parts are taken in order, each to its end.
    """

    def __init__(
        self,
        train_source,
        val_source,
        task: Task,
        config: ml_collections.ConfigDict,
        epochs: range,
        batch_size: int,
        eval_batch_size: int,
        augment: bool,
        skip: int = 0,
        process: tuple[int, int] | None = None,
    ):
        parts = []
        for epoch in epochs:
            first = skip if epoch == epochs.start else 0
            ds = _train_epoch(
                train_source, task, config, epoch, batch_size, augment, first, process
            )
            parts.append((("train", epoch), ds))
            if val_source is not None:
                parts.append(
                    (
                        ("val", epoch),
                        _eval_split(val_source, task, config, eval_batch_size, process),
                    )
                )
        self._names = [name for name, _ in parts]
        self._ends = np.cumsum([len(ds) for _, ds in parts]).tolist()
        self._next_part = 0
        self._taken = 0
        self._iterator = _iterate(
            grain.MapDataset.concatenate([ds for _, ds in parts]), loading(config)
        )
        self._iterator.start_prefetch()  # the pool starts while the caller compiles its step

    def train(self, epoch: int) -> Iterator[dict]:
        """Epoch `epoch`'s training batches."""
        return self._part(("train", epoch))

    def val(self, epoch: int) -> Iterator[dict]:
        """The validation batches read after epoch `epoch`'s training batches."""
        return self._part(("val", epoch))

    def close(self) -> None:
        """Stops the worker pool."""
        self._iterator.close()

    def __enter__(self) -> "EpochFeed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _part(self, name: tuple[str, int]) -> Iterator[dict]:
        index = self._next_part
        if index >= len(self._names) or self._names[index] != name:
            upcoming = self._names[index] if index < len(self._names) else "nothing"
            raise ValueError(f"{name} asked for; the feed's next part is {upcoming}")
        start = self._ends[index - 1] if index else 0
        if self._taken != start:
            raise ValueError(f"{self._names[index - 1]} was not read to its end before {name}")
        self._next_part += 1
        return self._batches(self._ends[index] - start)

    def _batches(self, count: int) -> Iterator[dict]:
        for _ in range(count):
            batch = next(self._iterator)
            self._taken += 1
            yield batch


@dataclasses.dataclass(frozen=True)
class Throughput:
    """The training pipeline's rate alone, as `--mode=bench` and the benchmark report it."""

    batches_per_s: float  # steady state, after the warm-up batches
    samples_per_s: float
    first_batch_s: float  # from the feed's creation to its first batch: the pool's start-up
    batches: int  # timed
    loading: Loading


def throughput(
    source,
    task: Task,
    config: ml_collections.ConfigDict,
    batch_size: int,
    augment: bool,
    batches: int,
    warmup: int,
) -> Throughput:
    """Times `batches` training batches after `warmup` (start-up, file caches), read through one
    `EpochFeed` over as many epochs as they need, with no model attached."""
    per_epoch = num_train_batches(source, batch_size)
    if per_epoch == 0:
        raise ValueError(f"{len(source)} examples make no batch of {batch_size}")
    epochs = range(1, 1 + math.ceil((warmup + batches) / per_epoch))
    started = time.perf_counter()
    with EpochFeed(source, None, task, config, epochs, batch_size, 0, augment) as feed:
        stream = (batch for epoch in epochs for batch in feed.train(epoch))
        next(stream)
        first = time.perf_counter() - started
        for _ in range(warmup - 1):
            next(stream)
        timed_from = time.perf_counter()
        for _ in range(batches):
            next(stream)
        seconds = time.perf_counter() - timed_from
    rate = batches / seconds
    return Throughput(rate, rate * batch_size, first, batches, loading(config))
