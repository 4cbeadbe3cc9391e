"""Explicit, unique run names: task, mode, key hyper-parameters and a timestamp."""

import datetime

import ml_collections

_SKIPPED_MODEL_KEYS = ("name", "init")


def _format(value) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(_format(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def hyperparameter_tag(config: ml_collections.ConfigDict) -> str:
    """e.g. `channels32-64-128_kernel_size5_lr0.02_wd1e-05`."""
    parts = [f"{k}{_format(v)}" for k, v in config.model.items() if k not in _SKIPPED_MODEL_KEYS]
    parts += [f"lr{_format(config.train.lr)}", f"wd{_format(config.train.weight_decay)}"]
    return "_".join(parts)


def run_name(config: ml_collections.ConfigDict, mode: str) -> str:
    """`config.run_name` if set, else `<task>_<mode>_<hparams>_<YYYYmmdd-HHMMSS>`."""
    if config.run_name:
        return config.run_name
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.task}_{mode}_{hyperparameter_tag(config)}_{stamp}"
