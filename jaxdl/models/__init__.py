"""Model registry: `build_model(config, num_classes)` picks the architecture by `config.model.name`."""

import ml_collections
from flax import linen as nn

from jaxdl.errors import ConfigError
from jaxdl.models.esc50_cnn import Esc50CNN


def _esc50_cnn(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return Esc50CNN(
        num_classes=num_classes,
        channels=tuple(model_config.channels),
        kernel_size=model_config.kernel_size,
        init_scheme=model_config.init,
    )


MODELS = {"esc50_cnn": _esc50_cnn}


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The task's model with its two hyper-parameters from `config.model`."""
    name = config.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is unknown; allowed: {sorted(MODELS)}")
    return MODELS[name](config.model, num_classes)
