"""The task registry. Everything task-specific is a field of the `Task` registered under its name
(`tasks/<task>.py`); the rest of jaxdl asks `get(config)`. A new task is one module defining a
`Task` plus one config file: `register(TASK)` makes every mode accept it."""

import ml_collections
from flax import linen as nn

from jaxdl.errors import ConfigError
from jaxdl.tasks import celeba, cub200, esc50, tiny_imagenet
from jaxdl.tasks.spec import Task

__all__ = [
    "Task",
    "all_tasks",
    "build_model",
    "by_name",
    "get",
    "hyperparameter_names",
    "names",
    "register",
]

_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds `task` under `task.name`; ValueError if another task holds the name or the model
    name."""
    for known in _REGISTRY.values():
        if known.name != task.name and known.model_name == task.model_name:
            raise ValueError(f"model name {task.model_name!r} is already task {known.name!r}'s")
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"a task named {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


for _module in (esc50, tiny_imagenet, cub200, celeba):
    register(_module.TASK)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def all_tasks() -> tuple[Task, ...]:
    return tuple(_REGISTRY.values())


def by_name(name: str) -> Task:
    """The task called `name`; ConfigError naming the known tasks otherwise."""
    if name not in _REGISTRY:
        raise ConfigError(f"task={name!r} is invalid: expected one of {list(_REGISTRY)}")
    return _REGISTRY[name]


def get(config: ml_collections.ConfigDict) -> Task:
    """The task `config.task` names."""
    return by_name(config.task)


def hyperparameter_names(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """The two `config.model` keys of the task's model (e.g. channels, kernel_size)."""
    return get(config).hyperparameters


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The task's model with its two hyper-parameters from `config.model`."""
    return get(config).build_model(config, num_classes)
