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
it is written. Each step adds its sums to a fresh total of three scalars (loss sum, count,
non-finite flag), the ones the stop rule needs, which the host fetches one step late, so the device
is never idle waiting for the host.

Suggestion rule: fastai's "valley" (`fastai.callback.schedule.valley`, its default since 2.5),
on the smoothed curve, always smoothed: the bias-corrected EMA with β = `lr_finder.smoothing`, or
fastai's β = 0.98 when that is 0 (the stop rule then reads the raw loss, as the reference did).
- As fastai, the first tenth of the steps and the last 5 are left out (warm-up noise of the EMA,
  and the divergence with its last dips), and the curve ends at its first non-finite point.
- The longest valley is the longest strictly decreasing subsequence of the smoothed loss (noise
  breaks no run of it); it ends at `end` (the first index of the longest) and starts
  `lds[end]` points earlier (`start`, fastai's estimate).
- Suggested lr: the lr at `start + ⌊L/3⌋ + ⌊L/6⌋` (L = end − start), half-way down the valley:
  well into the descent, far from the divergence. A one-step dip just before the divergence
  moves the minimum of a raw curve, and a tenth of it (the former rule), by up to a decade; here
  it is left out with the last 5 steps or, smoothed, dents the curve by 2% of its depth (β 0.98).
- Fallback, when the loss never decreases (no valley): fastai's "minimum": a tenth of the lr of
  the lowest smoothed loss, never below the first lr swept.
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
from tqdm import tqdm

from jaxdl.data import pipeline
from jaxdl.errors import DataError
from jaxdl.tasks.spec import Task
from jaxdl.training import loop, metrics, steps
from jaxdl.training.group import Group
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed
from jaxdl.utils.logging import RunLogger

VALLEY, MINIMUM = "valley", "minimum/10"  # the rule's names, in the summary
RULE_SMOOTHING = 0.98  # fastai's EMA factor: the rule's when lr_finder.smoothing is 0 (raw)
SKIP_START_FRACTION = 10  # the rule leaves out the first steps // 10 (fastai)…
SKIP_END = 5  # … and the last 5 (fastai)
MINIMUM_DIVISOR = 10.0  # fallback: lr at the minimum / 10 (fastai "minimum")
# Only these sums are kept per step; the rest (a confusion matrix) would cost a transfer.
STEP_KEYS = ("loss_sum", "count", metrics.NONFINITE)
COMPLETED, DIVERGED, NON_FINITE = "completed", "divergence", "non-finite"


def learning_rates(start: float, end: float, steps: int) -> np.ndarray:
    """(steps,) float32 lrs, `start · (end / start) ** (i / (steps − 1))`: both ends swept."""
    return (start * (end / start) ** (np.arange(steps) / (steps - 1))).astype(np.float32)


def rule_smoothing(smoothing: float) -> float:
    """The EMA factor of the curve the suggestion reads: `lr_finder.smoothing`, or fastai's 0.98
    when that is 0 (a raw curve's last dip would otherwise move the suggestion)."""
    return smoothing if smoothing > 0 else RULE_SMOOTHING


class Ema:
    """Bias-corrected EMA, fed one value at a time.

    `a_i = β·a_{i−1} + (1 − β)·x_i` from `a_0 = 0`, smoothed `s_i = a_i / (1 − β^i)` (the
    correction removes the EMA's pull towards 0 in the first steps; β = 0 gives the raw values).
    """

    def __init__(self, beta: float):
        self.beta, self.steps, self._average = beta, 0, 0.0

    def update(self, value: float) -> float:
        self.steps += 1
        self._average = self.beta * self._average + (1.0 - self.beta) * value
        return self._average / (1.0 - self.beta**self.steps)


class LossMonitor:
    """The stop rule, fed one step at a time: the (EMA-smoothed with β, raw with β = 0) loss
    against `divergence_factor` × its best so far, after `min_steps` steps."""

    def __init__(self, beta: float, divergence_factor: float, min_steps: int):
        self.divergence_factor, self.min_steps = divergence_factor, min_steps
        self._ema, self.steps, self.best, self.last = Ema(beta), 0, np.inf, np.nan

    def update(self, loss: float, finite: bool = True) -> tuple[float, str | None]:
        """The loss the rule read at this step and the stop reason (None: go on).

        `finite=False` (non-finite gradients) stops like a non-finite loss.
        """
        self.steps += 1
        if not (finite and np.isfinite(loss)):
            return float("nan"), NON_FINITE
        smoothed = self.last = self._ema.update(loss)
        self.best = min(self.best, smoothed)
        if self.steps > self.min_steps and smoothed > self.divergence_factor * self.best:
            return smoothed, DIVERGED
        return smoothed, None


def smooth(losses: Iterable[float], beta: float) -> np.ndarray:
    """The bias-corrected EMA of a whole loss curve."""
    ema = Ema(beta)
    return np.array([ema.update(loss) for loss in losses])


@dataclasses.dataclass(frozen=True)
class Suggestion:
    lr: float
    rule: str  # VALLEY, or MINIMUM when the loss never decreased
    window: tuple[float, float]  # the valley's first and last lr (the first lr twice: none)
    lr_at_min: float  # of the smoothed curve
    min_loss: float


def longest_valley(losses: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest strictly decreasing subsequence, by fastai's `valley`: `end`
    is its last index (the first such of the longest), `start = end − its length`, at least 0."""
    lds = np.ones(len(losses), dtype=int)  # lds[i]: longest decreasing subsequence ending at i
    for i in range(1, len(losses)):
        lds[i] += lds[:i][losses[:i] > losses[i]].max(initial=0)
    end = int(np.argmax(lds))
    return max(end - int(lds[end]), 0), end


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> Suggestion:
    """Suggested lr and the valley of a smoothed loss curve, by the module's rule."""
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    finite = np.isfinite(smoothed)
    count = len(smoothed) if finite.all() else int(np.argmin(finite))  # up to the first NaN
    if count == 0:
        raise DataError("the LR finder recorded no finite loss: lower lr_finder.start")
    lrs, smoothed = lrs[:count], smoothed[:count]
    at_min = int(np.argmin(smoothed))
    first, last = count // SKIP_START_FRACTION, count - SKIP_END
    if last - first < 2:  # too short a sweep to leave points out
        first, last = 0, count
    start, end = (first + i for i in longest_valley(smoothed[first:last]))
    if end > start:
        length = end - start
        lr, rule = lrs[start + int(length / 3) + int(length / 6)], VALLEY
        window = (float(lrs[start]), float(lrs[end]))
    else:
        lr, rule = max(lrs[at_min] / MINIMUM_DIVISOR, lrs[0]), MINIMUM
        window = (float(lrs[0]), float(lrs[0]))
    return Suggestion(float(lr), rule, window, float(lrs[at_min]), float(smoothed[at_min]))


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
    train_step: Callable,
    state: TrainState,
    zeros: dict[str, np.ndarray],
    batches: Iterator[dict],
    lrs: np.ndarray,
    mesh: Mesh,
) -> Iterator[tuple[float, float, bool]]:
    """(lr, mean batch loss, loss and gradients finite) of each step, in order; each step adds its
    sums to a fresh copy of the host `zeros` (`STEP_KEYS`).

    The batches' host-to-device copies are issued ahead (`loop.device_batches`), and the host
    reads step i's loss after dispatching step i + 1, so the device keeps working while the host
    waits: one (small) fetch per step, which the stop rule needs, without idling the accelerator.
    A consumer that stops early leaves the one step in flight unread.
    """
    sharding = distributed.replicated(mesh)
    in_flight = None
    # zip stops at the last lr: the batches cycle without end.
    for lr, batch in zip(lrs, loop.device_batches(batches, mesh), strict=False):
        state = with_learning_rate(state, jax.device_put(lr, sharding))
        state, sums = train_step(state, {"step": distributed.put(zeros, sharding)}, batch)
        if in_flight is not None:
            yield _host_step(*in_flight)
        in_flight = (lr, sums["step"])
    if in_flight is not None:
        yield _host_step(*in_flight)


def _host_step(lr: np.float32, sums: dict) -> tuple[float, float, bool]:
    host = jax.device_get(sums)
    return float(lr), metrics.mean_loss(host), not host[metrics.NONFINITE]


@dataclasses.dataclass(frozen=True)
class Sweep:
    rows: list[dict]  # per step run: step, lr, loss, smoothed_loss (the rule's curve)
    stop_reason: str  # COMPLETED, DIVERGED or NON_FINITE
    stop_message: str  # the reason in words, with the step, the lr and the numbers
    seconds: float  # the whole sweep, compilation included
    steps_per_s: float  # after the first step (its compilation left out); nan with one step
    suggestion: Suggestion


def stop_message(reason: str, row: dict, steps: int, monitor: LossMonitor, beta: float) -> str:
    """Why the sweep ended, in words: the step and lr, and for a divergence the numbers compared."""
    where = f"at step {row['step']}/{steps} (lr {row['lr']:.3g})"
    if reason == NON_FINITE:
        return f"stopped {where}: the loss or the gradients are not finite"
    if reason == DIVERGED:
        loss = f"{'smoothed ' if beta > 0 else ''}loss"
        return (
            f"stopped {where}: divergence, the {loss} {monitor.last:.4g} exceeds "
            f"lr_finder.divergence_factor={monitor.divergence_factor:g} × its best "
            f"{monitor.best:.4g}"
        )
    return f"completed all {steps} steps"


def sweep(
    config: ml_collections.ConfigDict, model: Group, source, batch_size: int, logger: RunLogger
) -> Sweep:
    """Sweeps `model` (a fresh group of one) over `config.lr_finder`'s lrs on batches of `source`,
    logging each step's lr, loss and smoothed loss, until the stop rule or the last lr.

    A progress bar shows the step, the lr and the smoothed loss; it is closed before returning,
    early stop or not, and `stop_message` says why the sweep ended.
    """
    finder = config.lr_finder
    lrs = learning_rates(finder.start, finder.end, finder.steps)
    monitor = LossMonitor(finder.smoothing, finder.divergence_factor, finder.min_steps)
    curve = Ema(rule_smoothing(finder.smoothing))
    rows, stop_reason = [], COMPLETED
    started = time.perf_counter()
    first_done = started
    batches = cycled_train_batches(source, model.task, config, batch_size)
    zeros = steps.zero_sums(model.objective, keys=STEP_KEYS)
    losses = step_losses(model.steps.train, model.state, zeros, batches, lrs, model.mesh)
    with tqdm(total=finder.steps, desc="lr_finder", unit="step") as bar:
        for step, (lr, loss, finite) in enumerate(losses, start=1):
            if step == 1:
                first_done = time.perf_counter()  # compiled and run once: the rate starts here
            _, reason = monitor.update(loss, finite)
            smoothed = curve.update(loss) if reason != NON_FINITE else float("nan")
            rows.append({"step": step, "lr": lr, "loss": loss, "smoothed_loss": smoothed})
            logger.scalars(
                step,
                {"lr_finder/lr": lr, "lr_finder/loss": loss, "lr_finder/smoothed_loss": smoothed},
            )
            bar.set_postfix({"lr": f"{lr:.2e}", "smoothed loss": f"{smoothed:.4f}"}, refresh=False)
            bar.update()
            if reason is not None:
                stop_reason = reason
                break
    finished = time.perf_counter()
    message = stop_message(stop_reason, rows[-1], finder.steps, monitor, finder.smoothing)
    rate = (len(rows) - 1) / (finished - first_done) if len(rows) > 1 else float("nan")
    suggestion = suggest(
        np.array([row["lr"] for row in rows]), np.array([row["smoothed_loss"] for row in rows])
    )
    return Sweep(rows, stop_reason, message, finished - started, rate, suggestion)
