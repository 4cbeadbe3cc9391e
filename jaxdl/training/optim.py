"""Optimizers with learning rate and weight decay injected into the state, and lr schedules.

`optax.inject_hyperparams` keeps lr and weight decay in the optimizer state, so vmapped grid
members can each carry their own values (`optax.tree_utils.tree_set`). Weight decay applies to
every parameter (BatchNorm and biases included), as torch's optimizers do by default.

Schedules (`train.schedule`, `train.warmup_steps`): the injected lr is the member's *peak* lr, and
the whole update is multiplied by a factor f(count) in [0, 1] of the optimizer's own step count
(`optax.scale_by_schedule` after the optimizer). All three optimizers apply the lr last (AdamW's
decoupled decay included, as in torch), so this is the update of lr(t) = peak · f(t): each grid
member follows its own peak, and a restored state continues the schedule where it stopped.
- warmup: f rises linearly from 0 (first step) to 1 over `warmup_steps` steps, for every schedule.
- step: f = gamma ** (epoch // step_size), epochs counted from the start of training (torch's
  StepLR stepped once per epoch).
- cosine: f = (1 + cos(π · s / S)) / 2 from the end of the warmup (s = 0) to the end of the run
  (S = train.epochs · steps per epoch − warmup_steps), so the last step's lr is just above 0.
`none` without warmup adds nothing to the optimizer: its state is the one of a constant lr.
The names accepted and their checks are in `optim_config` (validating a config needs no optax).
"""

import jax
import ml_collections
import optax

from jaxdl.errors import ConfigError
from jaxdl.training.optim_config import OPTIMIZERS


def adam_l2(
    learning_rate: float, weight_decay: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """torch `Adam(lr, weight_decay)`: coupled L2 — decay is added to the gradient before Adam."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgd_decoupled(
    learning_rate: float, weight_decay: float, momentum: float
) -> optax.GradientTransformation:
    """SGD with momentum and decoupled weight decay (the decay does not enter the momentum)."""
    return optax.chain(
        optax.trace(decay=momentum),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )


def _base_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optimizer named by `train.optimizer`, with injected `learning_rate`/`weight_decay`."""
    name = train.optimizer
    if name == "adamw":
        # torch AdamW defaults (betas 0.9/0.999, eps 1e-8); no mask, so no static_args trap.
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=train.lr, weight_decay=train.weight_decay, b1=0.9, b2=0.999, eps=1e-8
        )
    if name == "adam_l2":
        return optax.inject_hyperparams(adam_l2)(
            learning_rate=train.lr, weight_decay=train.weight_decay
        )
    if name == "sgd":
        return optax.inject_hyperparams(sgd_decoupled, static_args=("momentum",))(
            learning_rate=train.lr, weight_decay=train.weight_decay, momentum=train.momentum
        )
    raise ConfigError(f"train.optimizer={name!r} is invalid: expected one of {list(OPTIMIZERS)}")


def lr_factor(train: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule | None:
    """f(count): the fraction of the peak lr the optimizer step after `count` steps applies;
    None for a constant lr (schedule `none` without warmup)."""
    # A train section without schedule keys (written before schedules existed) has a constant lr.
    schedule, warmup = train.get("schedule", "none"), train.get("warmup_steps", 0)
    if schedule == "none" and not warmup:
        return None
    if schedule == "step":
        decay = optax.exponential_decay(
            1.0, train.step_size * steps_per_epoch, train.gamma, staircase=True
        )
    elif schedule == "cosine":
        # Over the steps after the warmup; one at least, so a warmup as long as the run is allowed.
        cosine_steps = max(train.epochs * steps_per_epoch - warmup, 1)
        decay = optax.join_schedules(
            [optax.constant_schedule(1.0), optax.cosine_decay_schedule(1.0, cosine_steps)], [warmup]
        )
    else:
        decay = optax.constant_schedule(1.0)
    if not warmup:
        return decay
    ramp = optax.linear_schedule(0.0, 1.0, warmup)
    return lambda count: ramp(count) * decay(count)


def make_optimizer(
    train: ml_collections.ConfigDict, steps_per_epoch: int = 1
) -> optax.GradientTransformation:
    """The optimizer of `train` with its lr schedule; `steps_per_epoch` places the schedule's
    epochs (step decays, the cosine's end). Modes that never step the optimizer (evaluate,
    analyze, bench) may leave it at 1: the state's structure does not depend on it."""
    optimizer = _base_optimizer(train)
    factor = lr_factor(train, steps_per_epoch)
    return optimizer if factor is None else optax.chain(optimizer, optax.scale_by_schedule(factor))


def learning_rate(
    train: ml_collections.ConfigDict, steps_per_epoch: int, step: int, peak: float
) -> float:
    """The lr of optimizer step `step` (1-based, as steps are logged and checkpointed) for the peak
    lr `peak`. Computed on the host's CPU, so logging it never waits for the accelerator."""
    factor = lr_factor(train, steps_per_epoch)
    if factor is None:
        return float(peak)
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        return float(peak) * float(factor(step - 1))


def without_schedule(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` whose optimizer applies its injected lr as is (schedule none, no
    warmup): for the LR finder, which sets the lr of every step itself."""
    constant = ml_collections.ConfigDict(config.to_dict())
    constant.train.schedule, constant.train.warmup_steps = "none", 0
    return constant
