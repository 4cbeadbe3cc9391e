"""The epoch loop shared by every mode: feed batches to a compiled step, keep sums on device.

Metric sums are added on device and fetched by the host once per logging interval and once per
epoch, never per step, so the step loop never waits for the accelerator.
"""

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jaxdl.training import metrics
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
    batches: Iterable[dict],
    num_batches: int,
    mesh: Mesh,
    description: str,
    first_step: int = 0,
    sums=None,
    after_step: Callable[[int, Any, Any, Any], None] | None = None,
) -> tuple[Any, Any]:
    """Runs the batches of one epoch through `train_step`; returns the state and the epoch's sums.

    `first_step` is the global step before the first batch (a host-side counter: reading
    `state.step` would wait for the device every step); `sums` resumes a partly done epoch.
    `after_step(step, state, epoch_sums, step_sums)` runs on the host after every step (logging
    intervals, mid-epoch checkpoints, pre-emption); it must not fetch device values unless it acts.
    The sums stay on device.
    """
    batches = tqdm(batches, total=num_batches, desc=description, leave=False, unit="batch")
    for step, batch in enumerate(device_batches(batches, mesh), start=first_step + 1):
        state, step_sums = train_step(state, batch)
        sums = step_sums if sums is None else metrics.add_sums(sums, step_sums)
        if after_step is not None:
            after_step(step, state, sums, step_sums)
    if sums is None:
        raise ValueError(
            "the training split yielded no full batch: it is smaller than the batch size"
        )
    return state, sums


def evaluate(
    eval_step: Callable, state: TrainState, batches: Iterator[dict], mesh: Mesh, description: str
) -> dict:
    """Sums of the eval metrics over every (unpadded) example of `batches`."""
    total = None
    for batch in device_batches(tqdm(batches, desc=description, leave=False, unit="batch"), mesh):
        sums = eval_step(state, batch)
        total = sums if total is None else metrics.add_sums(total, sums)
    return distributed.fetch(total)


def predict(
    predict_step: Callable, state: TrainState, batches: Iterator[dict], mesh: Mesh
) -> tuple[dict, np.ndarray]:
    """Eval sums and (N, C) probabilities of the real (unmasked) examples, in source order."""
    total, outputs, masks = None, [], []
    for device_batch in device_batches(
        tqdm(batches, desc="predict", leave=False, unit="batch"), mesh
    ):
        sums, probabilities = predict_step(state, device_batch)
        total = sums if total is None else metrics.add_sums(total, sums)
        outputs.append(probabilities)
        masks.append(device_batch["mask"])  # the global batch's (several processes: not `batch`'s)
    probabilities = np.concatenate(distributed.fetch(outputs))
    return distributed.fetch(total), probabilities[np.concatenate(distributed.fetch(masks)) > 0]
