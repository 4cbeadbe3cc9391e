"""grain pipelines: seeded epochs, exact padded evaluation, worker processes give the same batches."""

import ml_collections
import numpy as np

from jaxdl.data import pipeline
from jaxdl.data.tasks import TaskData


class _Numbers:
    """A picklable source of 10 records whose features encode their index."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict:
        return {"features": np.full((2, 3), float(i), np.float32), "label": i % 3,
                "filename": f"{i}.wav"}


def _input(record, config):
    return record["features"][..., None]


def _augment(record, rng, cfg):
    return {**record, "features": record["features"] + rng.normal(size=(2, 3)).astype(np.float32)}


TASK = TaskData("multiclass", None, _input, _augment, lambda c: (2, 3, 1), num_classes=3)


def _config(workers=0):
    return ml_collections.ConfigDict(dict(seed=7, augment=dict(), data=dict(workers=workers)))


def _epoch(epoch, augment=False, workers=0):
    return [b for b in pipeline.train_batches(_Numbers(), TASK, _config(workers), epoch, 4, augment)]


def test_an_epoch_is_a_seeded_permutation_of_full_batches():
    first = _epoch(1)
    assert len(first) == 2 and all(b["x"].shape == (4, 2, 3, 1) for b in first)
    seen = np.concatenate([b["x"][:, 0, 0, 0] for b in first])
    assert len(set(seen)) == 8  # 10 examples, batch 4: the last partial batch is dropped
    again = _epoch(1)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in again]),
                                  np.concatenate([b["x"] for b in first]))
    other = np.concatenate([b["x"][:, 0, 0, 0] for b in _epoch(2)])
    assert not np.array_equal(other, seen)


def test_augmentation_is_driven_by_the_seed_and_the_epoch():
    a, b, c = _epoch(1, augment=True), _epoch(1, augment=True), _epoch(2, augment=True)
    np.testing.assert_array_equal(a[0]["x"], b[0]["x"])
    assert not np.allclose(a[0]["x"], c[0]["x"])


def test_evaluation_pads_the_last_batch_with_masked_rows():
    batches = list(pipeline.eval_batches(_Numbers(), TASK, _config(), 4))
    assert [b["x"].shape[0] for b in batches] == [4, 4, 4]
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == 10 and mask[-2:].sum() == 0
    values = np.concatenate([b["x"][:, 0, 0, 0] for b in batches])[mask > 0]
    np.testing.assert_array_equal(values, np.arange(10))


def test_overfit_subset_is_fixed_by_the_seed():
    a = pipeline.overfit_subset(_Numbers(), 4, seed=3)
    b = pipeline.overfit_subset(_Numbers(), 4, seed=3)
    assert [a[i]["filename"] for i in range(4)] == [b[i]["filename"] for i in range(4)]
    assert len(pipeline.overfit_subset(_Numbers(), 50, seed=3)) == 10


def test_a_worker_process_yields_the_same_batches_as_in_process_reading():
    in_process = _epoch(1, augment=True)
    with_worker = _epoch(1, augment=True, workers=1)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in with_worker]),
                                  np.concatenate([b["x"] for b in in_process]))
