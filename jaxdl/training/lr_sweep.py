"""The LR finder's sweep: an exponential learning-rate sweep with a divergence stop, and the
suggestion read from its loss curve (`--mode=lr_finder` writes the outputs).

The model trains from a fresh initialisation with the configured optimizer and weight decay on
shuffled, augmented training batches (epochs are chained when the sweep is longer than one), the
learning rate rising geometrically from `lr_finder.start` to `lr_finder.end` over
`lr_finder.steps` steps. The sweep stops at the first non-finite loss (or gradient), or when the
(bias-corrected EMA-smoothed, when `lr_finder.smoothing` > 0) loss exceeds
`lr_finder.divergence_factor` times its best so far after `lr_finder.min_steps` steps.

The learning rate lives in the optimizer state (`optax.inject_hyperparams`), so it is written
there before each step and the one compiled `train_step` serves the whole sweep. The lr logged for
step i is the float32 value the optimizer used at step i (the reference projects logged the lr
after `scheduler.step()`, one step late). The group swept is built without the training schedule
(`optim.without_schedule`): the sweep is the schedule, so the optimizer applies each step's lr as
it is written.

Suggestion rule (on the smoothed loss, which is the raw loss when smoothing is 0; non-finite
points ignored):
- `lr_at_min`: the lr of the lowest smoothed loss.
- stable window `[low, high]`: `high = lr_at_min`; `low` is the lr from which the smoothed loss
  stays, up to the minimum, below `first − WINDOW_START_FRACTION · (first − min)` (it has left
  the initial plateau for good by 10% of its total drop). "Stays" rather than "first dips"
  keeps one noisy low point of a raw curve from opening the window on the plateau.
- suggested lr: `lr_at_min / 10` (fastai's "lr_min" rule: a tenth of the minimum-loss lr, safely
  below the divergence), clamped into the window.
If the loss never falls below its first value the window is the single starting lr.
"""

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Iterator

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from jaxdl.data import pipeline
from jaxdl.errors import DataError
from jaxdl.tasks.spec import Task
from jaxdl.training import loop
from jaxdl.training.group import Group
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed
from jaxdl.utils.logging import RunLogger

WINDOW_START_FRACTION = 0.1  # the window opens where the loss stays 10% of its drop below the start
SUGGESTION_DIVISOR = 10.0  # suggested lr = lr at the minimum / 10 (fastai "lr_min")
# Only these sums are fetched per step; the rest (a confusion matrix) would cost a transfer.
_STEP_KEYS = ("loss_sum", "count", "nonfinite_steps")
COMPLETED, DIVERGED, NON_FINITE = "completed", "divergence", "non-finite"


def learning_rates(start: float, end: float, steps: int) -> np.ndarray:
    """(steps,) float32 lrs, `start · (end / start) ** (i / (steps − 1))`: both ends swept."""
    return (start * (end / start) ** (np.arange(steps) / (steps - 1))).astype(np.float32)


class LossMonitor:
    """Bias-corrected EMA of the loss and the stop rule, fed one step at a time.

    `a_i = β·a_{i−1} + (1 − β)·loss_i` from `a_0 = 0`, smoothed `s_i = a_i / (1 − β^i)` (the
    correction removes the EMA's pull towards 0 in the first steps; β = 0 gives the raw loss).
    """

    def __init__(self, beta: float, divergence_factor: float, min_steps: int):
        self.beta, self.divergence_factor, self.min_steps = beta, divergence_factor, min_steps
        self.steps, self.best, self._average = 0, np.inf, 0.0

    def update(self, loss: float, finite: bool = True) -> tuple[float, str | None]:
        """Smoothed loss of this step and the stop reason (None: go on).

        `finite=False` (non-finite gradients) stops like a non-finite loss.
        """
        self.steps += 1
        if not (finite and np.isfinite(loss)):
            return float("nan"), NON_FINITE
        self._average = self.beta * self._average + (1.0 - self.beta) * loss
        smoothed = self._average / (1.0 - self.beta**self.steps)
        self.best = min(self.best, smoothed)
        if self.steps > self.min_steps and smoothed > self.divergence_factor * self.best:
            return smoothed, DIVERGED
        return smoothed, None


def smooth(losses: Iterable[float], beta: float) -> np.ndarray:
    """The bias-corrected EMA of a whole loss curve (no stop rule)."""
    monitor = LossMonitor(beta, divergence_factor=np.inf, min_steps=0)
    return np.array([monitor.update(loss)[0] for loss in losses])


@dataclasses.dataclass(frozen=True)
class Suggestion:
    lr: float
    window: tuple[float, float]
    lr_at_min: float
    min_loss: float


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> Suggestion:
    """Suggested lr and stable window from a (smoothed) loss curve, by the module's rule."""
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise DataError("the LR finder recorded no finite loss: lower lr_finder.start")
    lrs, smoothed = lrs[finite], smoothed[finite]
    at_min = int(np.argmin(smoothed))
    threshold = smoothed[0] - WINDOW_START_FRACTION * (smoothed[0] - smoothed[at_min])
    above = np.flatnonzero(smoothed[:at_min] > threshold)
    low = int(above[-1]) + 1 if above.size else 0
    lr = float(np.clip(lrs[at_min] / SUGGESTION_DIVISOR, lrs[low], lrs[at_min]))
    return Suggestion(
        lr, (float(lrs[low]), float(lrs[at_min])), float(lrs[at_min]), float(smoothed[at_min])
    )


def with_learning_rate(state: TrainState, lr: jax.Array) -> TrainState:
    """`state` with the injected `learning_rate` hyper-parameter replaced: same shapes and
    dtypes, so the compiled step is reused."""
    return state.replace(opt_state=optax.tree_utils.tree_set(state.opt_state, learning_rate=lr))


def cycled_train_batches(
    source, task: Task, config: ml_collections.ConfigDict, batch_size: int
) -> Iterator[dict]:
    """Training batches of epoch 1, 2, … chained, each epoch shuffled and augmented as `train`."""
    for epoch in itertools.count(1):
        yield from pipeline.train_batches(
            source, task, config, epoch, batch_size, augment=config.augment.enabled
        )


def step_losses(
    train_step: Callable, state: TrainState, batches: Iterator[dict], lrs: np.ndarray, mesh: Mesh
) -> Iterator[tuple[float, float, bool]]:
    """(lr, mean batch loss, loss and gradients finite) of each step, in order.

    The host reads step i's loss after dispatching step i + 1, so the device keeps working while
    the host waits: one (small) fetch per step, which the stop rule needs, without idling the
    accelerator. A consumer that stops early leaves the one step in flight unread.
    """
    sharding = distributed.replicated(mesh)
    in_flight = None
    for lr, batch in zip(lrs, batches, strict=False):  # the batches cycle without end
        state = with_learning_rate(state, jax.device_put(lr, sharding))
        state, sums = train_step(state, loop.to_device(batch, mesh))
        if in_flight is not None:
            yield _host_step(*in_flight)
        in_flight = (lr, {k: sums[k] for k in _STEP_KEYS})
    if in_flight is not None:
        yield _host_step(*in_flight)


def _host_step(lr: np.float32, sums: dict) -> tuple[float, float, bool]:
    host = jax.device_get(sums)
    return float(lr), float(host["loss_sum"]) / float(host["count"]), not host["nonfinite_steps"]


@dataclasses.dataclass(frozen=True)
class Sweep:
    rows: list[dict]  # per step run: step, lr, loss, smoothed_loss
    stop_reason: str  # COMPLETED, DIVERGED or NON_FINITE
    seconds: float
    suggestion: Suggestion


def sweep(
    config: ml_collections.ConfigDict, model: Group, source, batch_size: int, logger: RunLogger
) -> Sweep:
    """Sweeps `model` (a fresh group of one) over `config.lr_finder`'s lrs on batches of `source`,
    logging each step's lr, loss and smoothed loss, until the stop rule or the last lr."""
    finder = config.lr_finder
    lrs = learning_rates(finder.start, finder.end, finder.steps)
    monitor = LossMonitor(finder.smoothing, finder.divergence_factor, finder.min_steps)
    rows, stop_reason = [], COMPLETED
    started = time.perf_counter()
    batches = cycled_train_batches(source, model.task, config, batch_size)
    for step, (lr, loss, finite) in enumerate(
        step_losses(model.steps.train, model.state, batches, lrs, model.mesh), start=1
    ):
        smoothed, reason = monitor.update(loss, finite)
        rows.append({"step": step, "lr": lr, "loss": loss, "smoothed_loss": smoothed})
        logger.scalars(
            step, {"lr_finder/lr": lr, "lr_finder/loss": loss, "lr_finder/smoothed_loss": smoothed}
        )
        if reason is not None:
            stop_reason = reason
            break
    seconds = time.perf_counter() - started
    suggestion = suggest(
        np.array([row["lr"] for row in rows]), np.array([row["smoothed_loss"] for row in rows])
    )
    return Sweep(rows, stop_reason, seconds, suggestion)
