"""ESC-50 CNN: the reference parameter counts and an uninformed initial loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.models import layers
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.training.state import count_params


@pytest.mark.parametrize(
    "channels,kernel,expected",
    [
        ((32, 64, 128), 3, 99_570),
        ((32, 64, 128), 5, 263_922),
        ((48, 96, 192), 3, 218_450),
        ((48, 96, 192), 5, 587_858),
    ],
)
def test_parameter_counts_match_the_reference(channels, kernel, expected):
    model = Esc50CNN(num_classes=50, channels=channels, kernel_size=kernel)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 501, 1))))
    assert count_params(variables["params"]) == expected


@pytest.mark.parametrize("init_scheme", ["flax", "torch"])
def test_initial_loss_is_close_to_ln_50(init_scheme):
    model = Esc50CNN(num_classes=50, channels=(32, 64, 128), kernel_size=5, init_scheme=init_scheme)
    x = jax.random.normal(jax.random.key(1), (16, 64, 101, 1))
    variables = model.init(jax.random.key(0), x[:1])
    logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    labels = jnp.arange(16) % 50
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    assert logits.shape == (16, 50)
    assert abs(float(loss) - np.log(50)) < 0.15


def test_max_pool_matches_flax_max_pool_including_odd_sizes():
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))
    from flax import linen as nn

    expected = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_array_equal(layers.max_pool_2x2(x), expected)
