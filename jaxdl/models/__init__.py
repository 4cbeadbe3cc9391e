"""Model registry: `build_model(config, num_classes)` picks the architecture by `config.model.name`."""

import ml_collections
from flax import linen as nn

from jaxdl.errors import ConfigError
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.models.tiny_imagenet_net import TinyImageNetInception


# name -> (module, the two config.model hyper-parameters it takes; sequences become tuples)
MODELS: dict[str, tuple[type[nn.Module], tuple[str, str]]] = {
    "esc50_cnn": (Esc50CNN, ("channels", "kernel_size")),
    "tiny_imagenet_inception": (TinyImageNetInception, ("num_modules", "branch_channels")),
    "cub200_grouped": (Cub200GroupedCNN, ("num_blocks", "groups")),
    "celeba_cnn": (CelebaCNN, ("channels_block3", "dropout")),
}


def _hyperparameter(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The task's model with its two hyper-parameters from `config.model`."""
    name = config.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is unknown; allowed: {sorted(MODELS)}")
    module, keys = MODELS[name]
    hyperparameters = {key: _hyperparameter(config.model[key]) for key in keys}
    return module(num_classes=num_classes, init_scheme=config.model.init, **hyperparameters)
