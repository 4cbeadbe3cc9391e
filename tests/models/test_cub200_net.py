"""CUB-200 grouped CNN: reference parameter counts, initial loss, grouped Conv vs nn.Conv."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from jaxdl import models
from jaxdl.errors import ConfigError
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.models.layers import Conv
from jaxdl.training.state import count_params
from tests.helpers import initial_softmax_loss


@pytest.mark.parametrize(
    "num_blocks,groups,expected",
    [
        (2, 2, 2_012_488),
        (2, 4, 1_625_416),
        (3, 2, 3_176_392),
        (3, 4, 2_595_784),
    ],
)
def test_parameter_counts_and_output_shape_match_the_reference(num_blocks, groups, expected):
    model = Cub200GroupedCNN(num_classes=200, num_blocks=num_blocks, groups=groups)
    logits, variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 224, 224, 3)))
    )
    assert count_params(variables["params"]) == expected
    assert logits.shape == (2, 200)


def test_initial_loss_is_close_to_ln_200_with_torch_init():
    # torch's init, as in the reference (initial loss 5.30–5.32); grouped fan-in is C_in/G·9.
    model = Cub200GroupedCNN(num_classes=200, num_blocks=2, groups=4, init_scheme="torch")
    x = np.random.default_rng(0).standard_normal((16, 32, 32, 3), np.float32)  # 32×32: fast
    assert abs(initial_softmax_loss(model, x) - np.log(200)) < 0.15


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_equals_feature_group_count_forward_and_gradient(groups):
    native = nn.Conv(16, (3, 3), padding="SAME", feature_group_count=groups)
    sliced = Conv(16, 3, groups)
    rng = np.random.default_rng(0)
    # 8 -> 16 channels, so input and output group widths differ and a slicing mix-up shows.
    x = rng.standard_normal((2, 6, 6, 8), np.float32)
    params = {
        "params": {
            "kernel": rng.standard_normal((3, 3, 8 // groups, 16), np.float32),
            "bias": rng.standard_normal(16, np.float32),
        }
    }
    for module in (native, sliced):
        assert jax.tree.map(jnp.shape, jax.eval_shape(module.init, jax.random.key(0), x)) == (
            jax.tree.map(jnp.shape, params)
        )
    cotangent = rng.standard_normal((2, 6, 6, 16), np.float32)

    def gradients(module):
        def loss(params, x):
            return (module.apply(params, x) * cotangent).sum()

        return jax.tree.leaves(jax.grad(loss, argnums=(0, 1))(params, x))

    np.testing.assert_allclose(sliced.apply(params, x), native.apply(params, x), atol=1e-5)
    for got, expected in zip(gradients(sliced), gradients(native), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_groups_not_dividing_a_stage_width_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.groups=3"):
        Cub200GroupedCNN(num_classes=200, groups=3)


def test_registry_reads_num_blocks_and_groups():
    model_config = ml_collections.ConfigDict(
        dict(name="cub200_grouped", num_blocks=3, groups=2, init="torch")
    )
    model = models.build(Cub200GroupedCNN, model_config, num_classes=200)
    assert model == Cub200GroupedCNN(num_classes=200, num_blocks=3, groups=2, init_scheme="torch")
