"""Optimizers: decay really applies (zero-gradient update), per-member lr/wd live in the state."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.errors import ConfigError
from jaxdl.training.optim import make_optimizer


def _train(optimizer, lr=0.1, wd=0.5):
    return ml_collections.ConfigDict(dict(optimizer=optimizer, lr=lr, weight_decay=wd, momentum=0.9))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_decoupled_decay_on_a_zero_gradient_is_lr_times_wd_times_param(optimizer):
    params = {"w": jnp.full((3,), 2.0)}
    tx = make_optimizer(_train(optimizer))
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 2.0, rtol=1e-6)


def test_adam_l2_matches_torch_adam_coupled_l2_by_hand():
    """torch Adam(weight_decay): g += wd·p, then Adam; first step moves by lr·sign(g) (bias-corrected)."""
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.3, 0.0])}
    tx = make_optimizer(_train("adam_l2", lr=0.01, wd=0.1))
    updates, _ = tx.update(grads, tx.init(params), params)
    g = np.array([0.3 + 0.1 * 1.0, 0.0 + 0.1 * -2.0])
    expected = -0.01 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_learning_rate_and_weight_decay_are_injected_hyperparameters():
    params = {"w": jnp.ones(2)}
    state = make_optimizer(_train("adamw")).init(params)
    state = optax.tree_utils.tree_set(state, learning_rate=0.5, weight_decay=0.25)
    assert float(optax.tree_utils.tree_get(state, "learning_rate")) == 0.5
    assert float(optax.tree_utils.tree_get(state, "weight_decay")) == 0.25


def test_unknown_optimizer_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="train.optimizer='rmsprop'.*adamw"):
        make_optimizer(_train("rmsprop"))
