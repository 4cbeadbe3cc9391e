"""Optimizers with learning rate and weight decay injected into the state.

`optax.inject_hyperparams` keeps lr and weight decay in the optimizer state, so vmapped grid
members can each carry their own values (`optax.tree_utils.tree_set`). Weight decay applies to
every parameter (BatchNorm and biases included), as torch's optimizers do by default.
"""

import ml_collections
import optax

from jaxdl.errors import ConfigError


def adam_l2(learning_rate: float, weight_decay: float, b1: float = 0.9, b2: float = 0.999,
            eps: float = 1e-8) -> optax.GradientTransformation:
    """torch `Adam(lr, weight_decay)`: coupled L2 — decay is added to the gradient before Adam."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgd_decoupled(learning_rate: float, weight_decay: float,
                  momentum: float) -> optax.GradientTransformation:
    """SGD with momentum and decoupled weight decay (the decay does not enter the momentum)."""
    return optax.chain(
        optax.trace(decay=momentum),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optimizer named by `train.optimizer`, with injected `learning_rate`/`weight_decay`."""
    name = train.optimizer
    if name == "adamw":
        # torch AdamW defaults (betas 0.9/0.999, eps 1e-8); no mask, so no static_args trap.
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=train.lr, weight_decay=train.weight_decay, b1=0.9, b2=0.999, eps=1e-8
        )
    if name == "adam_l2":
        return optax.inject_hyperparams(adam_l2)(learning_rate=train.lr,
                                                 weight_decay=train.weight_decay)
    if name == "sgd":
        return optax.inject_hyperparams(sgd_decoupled, static_args=("momentum",))(
            learning_rate=train.lr, weight_decay=train.weight_decay, momentum=train.momentum
        )
    raise ConfigError(f"train.optimizer={name!r} is unknown; allowed: 'adamw', 'adam_l2', 'sgd'")
