"""Config defaults shared by every task, presets, and start-up validation.

Each task's `configs/<task>.py` starts from `base_config` and sets its own keys; `validate`
rejects bad values at start-up with the key and the allowed values, before any compute.
"""

from collections.abc import Callable

import ml_collections

from jaxdl.errors import ConfigError

PRESETS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {}


def _preset(name: str):
    def register(fn):
        PRESETS[name] = fn
        return fn

    return register


@_preset("synthetic")
def _synthetic(config: ml_collections.ConfigDict) -> None:
    config.data.source = "synthetic"


def base_config(task: str) -> ml_collections.ConfigDict:
    """Keys every task has; the task's config file adds data/model/augment specifics."""
    config = ml_collections.ConfigDict()
    config.task = task
    config.seed = 42
    config.run_name = ""  # empty: derived from task, mode, key hyper-parameters and a timestamp

    config.data = ml_collections.ConfigDict()
    config.data.source = "auto"  # auto: data.dir if set, else download | synthetic
    config.data.dir = ""  # dataset in its official on-disk layout
    config.data.cache_dir = ""  # empty: $JAXDL_CACHE or ~/.cache/jaxdl
    config.data.workers = 0  # grain worker processes (0: in-process, threads only)
    config.data.on_corrupt = "error"  # error | skip (skipped items are counted in the log)

    config.train = ml_collections.ConfigDict()
    config.train.optimizer = "adamw"  # adamw | adam_l2 (torch Adam coupled L2) | sgd
    config.train.momentum = 0.9  # sgd only
    config.train.batch_size = 64
    config.train.eval_batch_size = 0  # 0: same as batch_size
    config.train.epochs = 10
    config.train.lr = 1e-3
    config.train.weight_decay = 0.0
    config.train.overfit_n = 0  # M3: >0 trains and validates on a fixed N-example subset
    config.train.log_every_steps = 20
    config.train.best_metric = "accuracy"
    config.train.best_mode = "max"  # max | min
    return config


def apply_preset(config: ml_collections.ConfigDict, preset: str | None) -> ml_collections.ConfigDict:
    """Applies a named preset (`configs/<task>.py:NAME`)."""
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; allowed presets: {sorted(PRESETS)}")
        PRESETS[preset](config)
    return config
