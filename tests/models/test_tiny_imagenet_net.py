"""Tiny ImageNet Inception-like CNN: reference parameter counts, initial loss, 3×3 pool, errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from jaxdl import models
from jaxdl.errors import ConfigError
from jaxdl.models import layers
from jaxdl.models.tiny_imagenet_net import TinyImageNetInception
from jaxdl.training.state import count_params
from tests.helpers import initial_softmax_loss


@pytest.mark.parametrize(
    "num_modules,branch_channels,expected",
    [
        (4, (64, 64, 64), 492_424),
        (4, (48, 72, 72), 533_384),
        (6, (64, 64, 64), 763_528),
        (6, (48, 72, 72), 829_064),
    ],
)
def test_parameter_counts_and_output_shape_match_the_reference(
    num_modules, branch_channels, expected
):
    model = TinyImageNetInception(
        num_classes=200, num_modules=num_modules, branch_channels=branch_channels
    )
    logits, variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 64, 64, 3)))
    )
    assert count_params(variables["params"]) == expected
    assert logits.shape == (2, 200)


def test_initial_loss_is_close_to_ln_200():
    # Flax's default init here; torch's is checked on the CUB-200 model (the same layers.conv).
    model = TinyImageNetInception(num_classes=200, num_modules=4)
    x = np.random.default_rng(0).standard_normal((16, 32, 32, 3), np.float32)  # 32×32: fast
    assert abs(initial_softmax_loss(model, x) - np.log(200)) < 0.15


def test_max_pool_3x3_same_matches_flax_forward_and_gradient():
    rng = np.random.default_rng(0)
    # All-negative input: border windows must ignore the padding, as torch's -inf padding does.
    x = -np.abs(rng.standard_normal((2, 7, 9, 3), np.float32)) - 1.0
    cotangent = rng.standard_normal(x.shape, np.float32)

    def reference(x):
        return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))

    np.testing.assert_array_equal(layers.max_pool_3x3_same(x), reference(x))
    np.testing.assert_allclose(
        jax.grad(lambda x: (layers.max_pool_3x3_same(x) * cotangent).sum())(x),
        jax.grad(lambda x: (reference(x) * cotangent).sum())(x),
        atol=1e-6,
    )


def test_branch_channels_not_summing_to_192_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.branch_channels=\(64, 64, 32\)"):
        TinyImageNetInception(num_classes=200, branch_channels=(64, 64, 32))


def test_registry_reads_num_modules_and_branch_channels():
    model_config = ml_collections.ConfigDict(
        dict(
            name="tiny_imagenet_inception",
            num_modules=4,
            branch_channels=[48, 72, 72],
            init="torch",
        )
    )
    model = models.build(TinyImageNetInception, model_config, num_classes=200)
    assert model == TinyImageNetInception(
        num_classes=200, num_modules=4, branch_channels=(48, 72, 72), init_scheme="torch"
    )
