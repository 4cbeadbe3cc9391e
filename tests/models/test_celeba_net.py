"""CelebA multi-label CNN: reference parameter counts, initial BCE, dropout in training only."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl import models
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.training.state import count_params


@pytest.mark.parametrize("channels_block3,expected", [(192, 298_757), (256, 372_997)])
def test_parameter_counts_and_output_shape_match_the_reference(channels_block3, expected):
    model = CelebaCNN(num_classes=5, channels_block3=channels_block3, dropout=0.2)
    logits, variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 64, 64, 3)))
    )
    assert count_params(variables["params"]) == expected
    assert logits.shape == (2, 5)


def test_initial_bce_is_close_to_ln_2():
    model = CelebaCNN(num_classes=5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64, 64, 3), np.float32)
    labels = rng.integers(0, 2, (16, 5)).astype(np.float32)

    @jax.jit  # one compile for init + forward: cheaper on CPU than op-by-op compiles
    def initial_loss(x, labels):
        variables = model.init(jax.random.key(0), x[:1])
        logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

    assert abs(float(initial_loss(x, labels)) - np.log(2)) < 0.1


def test_dropout_varies_with_the_rng_in_training_and_is_off_in_evaluation():
    model = CelebaCNN(num_classes=5, channels_block3=192, dropout=0.4)
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 3), np.float32)
    variables = jax.jit(model.init)(jax.random.key(0), x)

    @jax.jit
    def train_logits(key):
        logits, _ = model.apply(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )
        return logits

    assert not np.allclose(train_logits(jax.random.key(0)), train_logits(jax.random.key(1)))
    # Active dropout would fail here for want of a "dropout" rng.
    assert model.apply(variables, x, train=False).shape == (4, 5)


def test_registry_reads_channels_block3_and_dropout():
    model_config = ml_collections.ConfigDict(
        dict(name="celeba_cnn", channels_block3=192, dropout=0.2, init="flax")
    )
    model = models.build(CelebaCNN, model_config, num_classes=5)
    assert model == CelebaCNN(num_classes=5, channels_block3=192, dropout=0.2, init_scheme="flax")
