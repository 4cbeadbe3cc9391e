"""The optimizer and schedule names `optim` accepts, and the check of the `train.*` keys choosing
them. Apart from optim.py so that validating a config does not import optax (over a second)."""

import ml_collections

from jaxdl.checks import check, check_range, is_number

OPTIMIZERS = ("adamw", "adam_l2", "sgd")
SCHEDULES = ("none", "step", "cosine")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_config(config: ml_collections.ConfigDict) -> None:
    """ConfigError naming the first invalid optimizer or schedule key of `config.train`."""
    train = config.train
    check(
        train.optimizer in OPTIMIZERS,
        "train.optimizer",
        train.optimizer,
        f"one of {list(OPTIMIZERS)}",
    )
    check(
        train.schedule in SCHEDULES, "train.schedule", train.schedule, f"one of {list(SCHEDULES)}"
    )
    check(
        _is_count(train.warmup_steps),
        "train.warmup_steps",
        train.warmup_steps,
        "a whole number of optimizer steps >= 0 (0: no warmup)",
    )
    check(
        _is_count(train.step_size) and (train.step_size > 0 or train.schedule != "step"),
        "train.step_size",
        train.step_size,
        "a whole number of epochs between two decays, >= 1 when train.schedule='step'",
    )
    check(
        is_number(train.gamma) and 0 < train.gamma <= 1,
        "train.gamma",
        train.gamma,
        "a decay factor in (0, 1]",
    )
    check_range(config, "train.lr", 0.0, low_inclusive=False)
    check_range(config, "train.weight_decay", 0.0)
    check_range(config, "train.momentum", 0.0, 1.0)
