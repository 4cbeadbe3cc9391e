"""Model registry: `build_model(config, num_classes)` picks the architecture by `config.model.name`."""

import ml_collections
from flax import linen as nn

from jaxdl.errors import ConfigError
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.models.tiny_imagenet_net import TinyImageNetInception


def _esc50_cnn(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return Esc50CNN(
        num_classes=num_classes,
        channels=tuple(model_config.channels),
        kernel_size=model_config.kernel_size,
        init_scheme=model_config.init,
    )


def _tiny_imagenet_inception(
    model_config: ml_collections.ConfigDict, num_classes: int
) -> nn.Module:
    return TinyImageNetInception(
        num_classes=num_classes,
        num_modules=model_config.num_modules,
        branch_channels=tuple(model_config.branch_channels),
        init_scheme=model_config.init,
    )


def _cub200_grouped(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return Cub200GroupedCNN(
        num_classes=num_classes,
        num_blocks=model_config.num_blocks,
        groups=model_config.groups,
        init_scheme=model_config.init,
    )


def _celeba_cnn(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return CelebaCNN(
        num_classes=num_classes,
        channels_block3=model_config.channels_block3,
        dropout=model_config.dropout,
        init_scheme=model_config.init,
    )


MODELS = {
    "esc50_cnn": _esc50_cnn,
    "tiny_imagenet_inception": _tiny_imagenet_inception,
    "cub200_grouped": _cub200_grouped,
    "celeba_cnn": _celeba_cnn,
}


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The task's model with its two hyper-parameters from `config.model`."""
    name = config.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is unknown; allowed: {sorted(MODELS)}")
    return MODELS[name](config.model, num_classes)
