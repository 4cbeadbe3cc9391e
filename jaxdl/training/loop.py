"""The epoch loop shared by every mode: feed batches to a compiled step, keep sums on device.

The compiled steps add each batch's metric sums to running totals they take and return (donated,
so updated in place); the host fetches a total once per logging interval and once per epoch,
never per step, so the step loop never waits for the accelerator and adds nothing itself.
"""

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jaxdl.training.state import TrainState
from jaxdl.utils import distributed

MODEL_KEYS = ("x", "y", "mask")


def to_device(batch: dict, mesh: Mesh) -> dict:
    """Numeric model inputs of a host batch, split over the `data` axis (strings stay behind).

    With several processes `batch` is this process's row block of the global batch
    (`data/pipeline.py`), and the global arrays are assembled from every process's block.
    """
    inputs = {k: batch[k] for k in MODEL_KEYS}
    sharding = distributed.data_sharded(mesh)
    if jax.process_count() == 1:
        return jax.device_put(inputs, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in inputs.items()}


def device_batches(batches: Iterable[dict], mesh: Mesh, ahead: int = 2) -> Iterator[dict]:
    """`to_device` of each batch, `ahead` batches in advance: the next batches' host-to-device
    copies are issued while the current step runs, so an accelerator never waits for its input.
    Nothing depends on how far the host iterator is ahead (resume counts the steps done)."""
    queue = collections.deque()
    for batch in batches:
        queue.append(to_device(batch, mesh))
        if len(queue) > ahead:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def train_epoch(
    train_step: Callable,
    state,
    sums: dict,
    batches: Iterable[dict],
    num_batches: int,
    mesh: Mesh,
    description: str,
    first_step: int = 0,
    after_step: Callable[[int, Any, dict], dict] | None = None,
) -> tuple[Any, dict]:
    """Runs the batches of one epoch through `train_step(state, sums, batch) -> (state, sums)`;
    returns the state and the running totals `sums` ({name: sums} on device, zeros or a partly
    done epoch's), every step's sums added in.

    `first_step` is the global step before the first batch (a host-side counter: reading
    `state.step` would wait for the device every step).
    `after_step(step, state, sums) -> sums` runs on the host after every step (logging
    intervals, mid-epoch checkpoints, pre-emption) and may swap a total for fresh zeros (a log
    interval's end); it must not fetch device values unless it acts.
    """
    batches = tqdm(batches, total=num_batches, desc=description, leave=False, unit="batch")
    step = first_step
    for step, batch in enumerate(device_batches(batches, mesh), start=first_step + 1):
        state, sums = train_step(state, sums, batch)
        if after_step is not None:
            sums = after_step(step, state, sums)
    if step == first_step:
        raise ValueError(
            "the training split yielded no full batch: it is smaller than the batch size"
        )
    return state, sums


def evaluate(
    eval_step: Callable,
    state: TrainState,
    sums: Any,
    batches: Iterator[dict],
    mesh: Mesh,
    description: str,
) -> Any:
    """Host sums of the eval metrics over every (unpadded) example of `batches`, added by
    `eval_step(state, sums, batch) -> sums` to `sums` (device zeros in the step's layout)."""
    for batch in device_batches(tqdm(batches, desc=description, leave=False, unit="batch"), mesh):
        sums = eval_step(state, sums, batch)
    return distributed.fetch(sums)


def predict(
    predict_step: Callable, state: TrainState, sums: dict, batches: Iterator[dict], mesh: Mesh
) -> tuple[dict, np.ndarray]:
    """Host eval sums (added to `sums`, device zeros, as `evaluate`) and (N, C) probabilities of
    the real (unmasked) examples, in source order."""
    outputs, masks = [], []
    for device_batch in device_batches(
        tqdm(batches, desc="predict", leave=False, unit="batch"), mesh
    ):
        sums, probabilities = predict_step(state, sums, device_batch)
        outputs.append(probabilities)
        masks.append(device_batch["mask"])  # the global batch's (several processes: not `batch`'s)
    probabilities = np.concatenate(distributed.fetch(outputs))
    return distributed.fetch(sums), probabilities[np.concatenate(distributed.fetch(masks)) > 0]
