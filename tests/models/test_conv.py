"""jaxdl's conv is XLA's, except a one-channel float32 conv on CPU, whose shifted multiply-add
forward pass gives XLA's values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdl.models import conv

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize(
    "kernel,padding",
    [((5, 5), "SAME"), ((3, 2), ((1, 0), (2, 1))), ((3, 3), "VALID")],  # ESC-50's conv0 first
)
def test_one_channel_conv_gives_xla_values_and_gradients(kernel, padding):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((3, 7, 9, 1)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((*kernel, 1, 4)), jnp.float32)

    def loss(conv_fn, x, k):
        return jnp.sum(jnp.sin(conv_fn(x, k, (1, 1), padding, dimension_numbers=NHWC)))

    expected = jax.value_and_grad(lambda x, k: loss(lax.conv_general_dilated, x, k), (0, 1))(x, k)
    got = jax.value_and_grad(lambda x, k: loss(conv.conv_general_dilated, x, k), (0, 1))(x, k)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    for g, e in zip(got[1], expected[1], strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert conv.shifted_forward_applies()  # the test suite runs on CPU
    forward = str(jax.make_jaxpr(lambda k: loss(conv.conv_general_dilated, x, k))(k))
    assert "custom_vjp" in forward and "conv_general_dilated" not in forward  # shifted adds


@pytest.mark.parametrize(
    "in_channels,kernel_shape,strides,groups,dtype",
    [
        (3, (3, 3, 3, 8), (1, 1), 1, jnp.float32),  # RGB
        (8, (3, 3, 4, 8), (1, 1), 2, jnp.float32),  # grouped
        (1, (3, 3, 1, 8), (2, 2), 1, jnp.float32),  # strided
        (1, (3, 3, 1, 8), (1, 1), 1, jnp.bfloat16),  # not float32
        (64, (1, 1, 64, 8), (1, 1), 1, jnp.float32),  # a wide 1×1 conv
    ],
)
def test_every_other_conv_is_plain_xla(in_channels, kernel_shape, strides, groups, dtype):
    x = jnp.linspace(-1, 1, 2 * 8 * 8 * in_channels, dtype=dtype).reshape(2, 8, 8, in_channels)
    kernel = jnp.ones(kernel_shape, dtype)

    def forward(conv_fn, k):
        return conv_fn(x, k, strides, "SAME", dimension_numbers=NHWC, feature_group_count=groups)

    np.testing.assert_array_equal(
        forward(conv.conv_general_dilated, kernel), forward(lax.conv_general_dilated, kernel)
    )
    jaxpr = jax.make_jaxpr(lambda k: forward(conv.conv_general_dilated, k))(kernel)
    assert "custom_vjp" not in str(jaxpr)
