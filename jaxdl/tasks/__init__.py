"""The task registry: every task-specific fact is asked of the `Task` registered under `config.task`."""

import ml_collections

from jaxdl.data.tasks import TaskData, task_data


def get(config: ml_collections.ConfigDict) -> TaskData:
    """The task `config.task` names (ConfigError listing the known tasks otherwise)."""
    return task_data(config)


def hyperparameter_names(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """The two `config.model` keys of the task's model (e.g. channels, kernel_size)."""
    from jaxdl.models import MODELS

    return MODELS[config.model.name][1]
