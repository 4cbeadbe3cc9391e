"""Architectures (shapes only, no dataset knowledge). Each model class names its two
hyper-parameters (`HYPERPARAMETERS`, keys of `config.model`) and checks their values
(`check_hyperparameters`); the task that uses a model says which class (`jaxdl.tasks`). Every model
also takes `model.init` (the initialisers) and `model.dtype` (the compute dtype), which are not
hyper-parameters: grids never vary them."""

import dataclasses

import ml_collections
from flax import linen as nn

from jaxdl import checks
from jaxdl.checks import check_choice
from jaxdl.models.layers import DTYPES

INIT_SCHEMES = ("flax", "torch")  # model.init: Flax's default initialisers or PyTorch's
# model.dtype of configs and checkpoints written before the key existed.
DEFAULT_DTYPE = "float32"


def dtype(model: ml_collections.ConfigDict) -> str:
    """`model.dtype`, the compute dtype (a key of layers.DTYPES)."""
    return model.get("dtype", DEFAULT_DTYPE)


def _takes_dtype(module: type[nn.Module]) -> bool:
    """Whether `module` has a `dtype` field (a model added from outside may have none: float32)."""
    return "dtype" in {field.name for field in dataclasses.fields(module)}


def check(module: type[nn.Module], config: ml_collections.ConfigDict) -> None:
    """ConfigError naming the first bad `model.*` value of `config` for `module`."""
    check_choice(config, "model.init", INIT_SCHEMES)
    value = dtype(config.model)
    checks.check(value in DTYPES, "model.dtype", value, f"one of {list(DTYPES)}")
    checks.check(
        value == DEFAULT_DTYPE or _takes_dtype(module),
        "model.dtype",
        value,
        f"{DEFAULT_DTYPE!r}: {module.__name__} has no `dtype` field to compute in another dtype",
    )
    module.check_hyperparameters(config.model)


def hyperparameter_value(value):
    """A config value as the module field takes it (lists become tuples, hashable for jit)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def build(module: type[nn.Module], model: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """`module` with its two hyper-parameters, init scheme and dtype from `model` (config.model)."""
    hyperparameters = {key: hyperparameter_value(model[key]) for key in module.HYPERPARAMETERS}
    if _takes_dtype(module):
        hyperparameters["dtype"] = dtype(model)
    return module(num_classes=num_classes, init_scheme=model.init, **hyperparameters)
