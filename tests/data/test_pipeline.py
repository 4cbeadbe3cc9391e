"""grain pipelines: seeded epochs, exact padded evaluation, a run's epochs read through one feed
(one worker pool, the same batches), the auto-sized loading, and several hosts each loading their
rows of every batch load the single-process batches."""

import multiprocessing
import types

import ml_collections
import numpy as np
import pytest

from jaxdl.data import pipeline


class Numbers:
    """A picklable source of `n` records whose features encode their index."""

    def __init__(self, n: int = 10):
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict:
        return {
            "features": np.full((2, 3), float(i), np.float32),
            "label": i % 3,
            "filename": f"{i}.wav",
        }


def _input(record, config):
    return record["features"][..., None]


def _augment(record, rng, cfg):
    return {**record, "features": record["features"] + rng.normal(size=(2, 3)).astype(np.float32)}


# What the pipeline uses of a Task (its host view: the host path, the pipeline does everything).
# Shared with tests/scale/two_processes.py, which feeds the same records across real processes.
def _host_view(config):
    return TASK, config


TASK = types.SimpleNamespace(model_input=_input, augment=_augment, host_view=_host_view)


def numbers_config(workers=0):
    return ml_collections.ConfigDict(
        dict(seed=7, augment=dict(), data=dict(workers=workers, prefetch=0))
    )


def _epoch(epoch, augment=False, workers=0):
    return list(pipeline.train_batches(Numbers(), TASK, numbers_config(workers), epoch, 4, augment))


def test_an_epoch_is_a_seeded_permutation_of_full_batches():
    first = _epoch(1)
    assert len(first) == 2 and all(b["x"].shape == (4, 2, 3, 1) for b in first)
    seen = np.concatenate([b["x"][:, 0, 0, 0] for b in first])
    assert len(set(seen)) == 8  # 10 examples, batch 4: the last partial batch is dropped
    again = _epoch(1)
    np.testing.assert_array_equal(
        np.concatenate([b["x"] for b in again]), np.concatenate([b["x"] for b in first])
    )
    other = np.concatenate([b["x"][:, 0, 0, 0] for b in _epoch(2)])
    assert not np.array_equal(other, seen)


def test_augmentation_is_driven_by_the_seed_and_the_epoch():
    a, b, c = _epoch(1, augment=True), _epoch(1, augment=True), _epoch(2, augment=True)
    np.testing.assert_array_equal(a[0]["x"], b[0]["x"])
    assert not np.allclose(a[0]["x"], c[0]["x"])


def test_evaluation_pads_the_last_batch_with_masked_rows():
    batches = list(pipeline.eval_batches(Numbers(), TASK, numbers_config(), 4))
    assert [b["x"].shape[0] for b in batches] == [4, 4, 4]
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == 10 and mask[-2:].sum() == 0
    values = np.concatenate([b["x"][:, 0, 0, 0] for b in batches])[mask > 0]
    np.testing.assert_array_equal(values, np.arange(10))


def test_overfit_subset_is_fixed_by_the_seed():
    a = pipeline.overfit_subset(Numbers(), 4, seed=3)
    b = pipeline.overfit_subset(Numbers(), 4, seed=3)
    assert [a[i]["filename"] for i in range(4)] == [b[i]["filename"] for i in range(4)]
    assert len(pipeline.overfit_subset(Numbers(), 50, seed=3)) == 10


def _read(feed: pipeline.EpochFeed, epochs: range) -> tuple[list[dict], set[int]]:
    """Every part of `feed` in the fit loop's order (copied), and the child processes seen."""
    batches, children = [], set()
    for epoch in epochs:
        for part in (feed.train, feed.val):
            for batch in part(epoch):
                batches.append({k: np.array(batch[k]) for k in ("x", "y", "mask")})
                children |= {child.pid for child in multiprocessing.active_children()}
    return batches, children


def test_a_feed_holds_each_epoch_as_train_batches_and_eval_batches_would_yield_it():
    """Resumed at batch 1 of epoch 2: that epoch's rest, its validation, then epoch 3 whole."""
    source, config = Numbers(26), numbers_config()
    with pipeline.EpochFeed(source, source, TASK, config, range(2, 4), 8, 6, True, skip=1) as feed:
        read, _ = _read(feed, range(2, 4))
    val = list(pipeline.eval_batches(source, TASK, config, 6))
    expected = [
        *pipeline.train_batches(source, TASK, config, 2, 8, True, skip=1),
        *val,
        *pipeline.train_batches(source, TASK, config, 3, 8, True),
        *val,
    ]
    assert [len(b["x"]) for b in read] == [8, 8] + [6] * 5 + [8] * 3 + [6] * 5
    for got, want in zip(read, expected, strict=True):
        for key in ("x", "y", "mask"):
            np.testing.assert_array_equal(got[key], want[key])


def test_a_feed_refuses_a_part_out_of_order_or_before_the_last_one_was_read():
    source, config = Numbers(26), numbers_config()
    with pipeline.EpochFeed(source, None, TASK, config, range(1, 3), 8, 8, False) as feed:
        with pytest.raises(ValueError, match=r"\('train', 2\) asked for; .* is \('train', 1\)"):
            feed.train(2)
        next(feed.train(1))
        with pytest.raises(ValueError, match=r"\('train', 1\) was not read to its end"):
            feed.train(2)


def test_two_workers_feed_two_epochs_from_one_pool_with_the_in_process_batches():
    """Same batches (order, augmentation draws, padding) as reading in this process, and the same
    two worker processes from the first batch to the last: the pool is not restarted per epoch."""
    source = Numbers(26)
    feeds = {
        workers: pipeline.EpochFeed(
            source, source, TASK, numbers_config(workers), range(1, 3), 8, 8, True
        )
        for workers in (0, 2)
    }
    with feeds[0], feeds[2]:
        in_process, _ = _read(feeds[0], range(1, 3))
        pooled, children = _read(feeds[2], range(1, 3))
    assert len(children) == 2
    assert len(pooled) == len(in_process) == 2 * (3 + 4)
    for got, want in zip(pooled, in_process, strict=True):
        for key in ("x", "y", "mask"):
            np.testing.assert_array_equal(got[key], want[key])


def _loading_config(workers: int = -1, prefetch: int = 0) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(data=dict(workers=workers, prefetch=prefetch)))


@pytest.mark.parametrize(
    ("backend", "cpus", "workers", "prefetch"),
    [
        ("cpu", 64, 0, 4),  # the compiled step uses every core: the main process reads
        ("gpu", 16, 14, 28),  # two cores left to the main process, two batches per worker
        ("tpu", 96, 16, 32),  # capped
        ("gpu", 2, 1, 2),  # at least one worker
    ],
)
def test_auto_loading_is_sized_from_the_backend_and_the_cpus(backend, cpus, workers, prefetch):
    assert pipeline.loading(_loading_config(), backend, cpus) == pipeline.Loading(workers, prefetch)


def test_set_workers_and_prefetch_are_kept_and_said_as_printed():
    load = pipeline.loading(_loading_config(3, 5), "gpu", 16)
    assert load == pipeline.Loading(3, 5)
    assert str(load) == "input pipeline: 3 worker processes, 5 batches ahead"
    assert pipeline.loading(_loading_config(0, 0), "gpu", 16) == pipeline.Loading(0, 4)
    assert str(pipeline.Loading(0, 4)) == "input pipeline: the main process, 4 batches ahead"


def test_throughput_times_the_batches_after_the_warm_up_across_epochs():
    source = Numbers(26)  # 3 batches of 8 per epoch: 1 + 4 batches need two epochs
    rate = pipeline.throughput(source, TASK, numbers_config(), 8, True, batches=4, warmup=1)
    assert rate.batches == 4 and rate.loading == pipeline.Loading(0, 4)
    assert rate.samples_per_s == pytest.approx(8 * rate.batches_per_s) and rate.first_batch_s > 0


def _joined(shares: list[list[dict]], b: int) -> dict:
    """Global batch `b` put together from each process's rows of it, in process order."""
    return {k: np.concatenate([share[b][k] for share in shares]) for k in ("x", "y", "mask")}


@pytest.mark.parametrize("processes", [2, 4])
def test_hosts_loading_their_rows_of_each_batch_load_the_single_process_epoch(processes):
    source, config = Numbers(26), numbers_config()
    whole = list(pipeline.train_batches(source, TASK, config, 1, 8, augment=True))
    shares = [
        list(
            pipeline.train_batches(source, TASK, config, 1, 8, augment=True, process=(i, processes))
        )
        for i in range(processes)
    ]
    assert len(whole) == 3 and all(len(share) == 3 for share in shares)
    assert all(b["x"].shape[0] == 8 // processes for share in shares for b in share)
    for b, batch in enumerate(whole):  # same rows, same augmentation draws, same order
        for key, value in _joined(shares, b).items():
            np.testing.assert_array_equal(value, batch[key])
    plain = [
        list(
            pipeline.train_batches(
                source, TASK, config, 1, 8, augment=False, process=(i, processes)
            )
        )
        for i in range(processes)
    ]
    seen = np.concatenate([b["x"][:, 0, 0, 0] for share in plain for b in share])
    assert len(seen) == 24 and len(set(seen)) == 24  # 3 full batches of 26: each once, 2 dropped


@pytest.mark.parametrize("processes", [2, 4])
def test_a_resumed_epoch_skips_the_same_global_batches_on_every_host(processes):
    source, config = Numbers(26), numbers_config()
    for i in range(processes):
        full = list(
            pipeline.train_batches(source, TASK, config, 2, 8, True, process=(i, processes))
        )
        resumed = list(
            pipeline.train_batches(source, TASK, config, 2, 8, True, skip=2, process=(i, processes))
        )
        assert len(resumed) == 1
        np.testing.assert_array_equal(resumed[0]["x"], full[2]["x"])


@pytest.mark.parametrize("processes", [2, 4])
def test_evaluation_padding_counts_every_example_once_over_all_hosts(processes):
    source, config = Numbers(26), numbers_config()
    whole = list(pipeline.eval_batches(source, TASK, config, 8))
    shares = [
        list(pipeline.eval_batches(source, TASK, config, 8, process=(i, processes)))
        for i in range(processes)
    ]
    # 26 examples in batches of 8: 4 global batches, 6 padding rows; with 4 hosts, three of them
    # get nothing but padding in the last batch and still yield it (same number of steps).
    assert len(whole) == 4 and all(len(share) == 4 for share in shares)
    for b, batch in enumerate(whole):
        for key, value in _joined(shares, b).items():
            np.testing.assert_array_equal(value, batch[key])
    mask = np.concatenate([b["mask"] for share in shares for b in share])
    values = np.concatenate([b["x"][:, 0, 0, 0] for share in shares for b in share])
    assert mask.sum() == 26
    np.testing.assert_array_equal(np.sort(values[mask > 0]), np.arange(26))


def test_a_batch_that_does_not_split_over_the_hosts_is_refused():
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        pipeline.train_batches(Numbers(26), TASK, numbers_config(), 1, 8, False, process=(0, 3))
