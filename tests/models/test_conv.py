"""The thin-input kernel gradient equals XLA's own, for every padding and chunking the models
meet; every other conv is XLA's, unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdl.models import conv

NHWC = ("NHWC", "HWIO", "NHWC")


def _reference_kernel_gradient(x, dy, kernel_shape, pads):
    def forward(kernel):
        return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=NHWC)

    _, vjp = jax.vjp(forward, jnp.zeros(kernel_shape, x.dtype))
    return vjp(dy)[0]


@pytest.mark.parametrize(
    "n,h,w,c_in,c_out,kernel,pads",
    [
        (2, 7, 9, 3, 5, (3, 3), ((1, 1), (1, 1))),  # SAME 3×3, odd sizes
        (3, 6, 8, 4, 6, (5, 5), ((2, 2), (2, 2))),  # SAME 5×5 (ESC-50)
        (2, 5, 5, 8, 4, (1, 1), ((0, 0), (0, 0))),  # 1×1 (Inception branches)
        (2, 6, 7, 3, 2, (3, 2), ((1, 0), (2, 1))),  # asymmetric kernel and padding
        (2, 6, 7, 3, 2, (3, 3), ((0, 0), (0, 0))),  # VALID: output smaller than input
        (3, 6, 8, 1, 6, (5, 5), ((2, 2), (2, 2))),  # ESC-50's first conv: one channel
    ],
)
def test_kernel_gradient_equals_xla(n, h, w, c_in, c_out, kernel, pads):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, h, w, c_in)), jnp.float32)
    out_h = h + sum(pads[0]) - kernel[0] + 1
    out_w = w + sum(pads[1]) - kernel[1] + 1
    dy = jnp.asarray(rng.standard_normal((n, out_h, out_w, c_out)), jnp.float32)
    expected = _reference_kernel_gradient(x, dy, (*kernel, c_in, c_out), pads)
    got = conv.kernel_gradient(x, dy, kernel, pads)
    assert got.shape == (*kernel, c_in, c_out)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_kernel_gradient_over_several_chunks_with_a_partial_last_one(monkeypatch):
    """5 images, 2 per chunk: three chunks, the last padded with a zero image."""
    rng = np.random.default_rng(1)
    c_in = 4
    x = jnp.asarray(rng.standard_normal((5, 6, 6, c_in)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((5, 6, 6, 3)), jnp.float32)
    pads = ((1, 1), (1, 1))
    per_image = 3 * 3 * c_in * 6 * 6  # 3·3·C_in rows of the 6×6 output positions
    monkeypatch.setattr(conv, "CHUNK_VALUES", 2 * per_image + 1)
    expected = _reference_kernel_gradient(x, dy, (3, 3, c_in, 3), pads)
    np.testing.assert_allclose(
        conv.kernel_gradient(x, dy, (3, 3), pads), expected, rtol=1e-5, atol=1e-5
    )


def _loss(conv_fn, x, kernel, **kwargs):
    y = conv_fn(x, kernel, (1, 1), "SAME", dimension_numbers=NHWC, **kwargs)
    return jnp.sum(jnp.sin(y))


def _assert_matches_xla(loss, x, k, tolerance: float = 1e-5) -> None:
    """loss(conv_fn, x, k) and its gradients through jaxdl's conv equal those through XLA's."""
    expected = jax.value_and_grad(lambda x, k: loss(lax.conv_general_dilated, x, k), (0, 1))(x, k)
    got = jax.value_and_grad(lambda x, k: loss(conv.conv_general_dilated, x, k), (0, 1))(x, k)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    for g, e in zip(got[1], expected[1], strict=True):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("kernel_size", [3, 1])  # an RGB stem; a 1×1 conv on RGB
def test_drop_in_gives_xla_values_and_gradients_and_takes_the_fast_path(kernel_size):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((4, 10, 12, 3)), jnp.float32)
    kernel = rng.standard_normal((kernel_size, kernel_size, 3, 8)) * 0.1
    kernel = jnp.asarray(kernel, jnp.float32)
    _assert_matches_xla(_loss, x, kernel, tolerance=1e-4)
    jaxpr = str(jax.make_jaxpr(lambda k: _loss(conv.conv_general_dilated, x, k))(kernel))
    assert conv.fast_kernel_gradient_applies()  # the test suite runs on CPU
    assert "custom_vjp" in jaxpr


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

    _assert_matches_xla(loss, x, k)
    jaxpr = str(jax.make_jaxpr(lambda k: loss(conv.conv_general_dilated, x, k))(k))
    assert "custom_vjp" in jaxpr and "conv_general_dilated" not in jaxpr  # shifted adds


@pytest.mark.parametrize(
    "in_channels,kernel_shape,strides,groups",
    [
        (8, (3, 3, 4, 8), (1, 1), 2),  # grouped
        (8, (3, 3, 8, 8), (2, 2), 1),  # strided
        (16, (3, 3, 16, 8), (1, 1), 1),  # 144 rows in an im2col: XLA's is faster
        (64, (1, 1, 64, 8), (1, 1), 1),  # a wide 1×1 conv
        (6, (3, 3, 6, 8), (1, 1), 1),  # 54 rows in an im2col, over MAX_IM2COL_ROWS
    ],
)
def test_cases_it_does_not_speed_up_are_plain_xla(in_channels, kernel_shape, strides, groups):
    x = jnp.linspace(-1, 1, 2 * 8 * 8 * in_channels).reshape(2, 8, 8, in_channels)
    kernel = jnp.ones(kernel_shape)

    def forward(conv_fn, k):
        return conv_fn(x, k, strides, "SAME", dimension_numbers=NHWC, feature_group_count=groups)

    np.testing.assert_allclose(
        forward(conv.conv_general_dilated, kernel), forward(lax.conv_general_dilated, kernel)
    )
    jaxpr = jax.make_jaxpr(lambda k: forward(conv.conv_general_dilated, k))(kernel)
    assert "custom_vjp" not in str(jaxpr)


def test_chunks_divide_the_batch_when_they_can():
    assert conv._images_per_chunk(64, 12) == 8  # 8 chunks of 8, not 6 of 12 with 8 zero images
    assert conv._images_per_chunk(64, 64) == 64
    assert conv._images_per_chunk(5, 2) == 2  # 5 is prime: 3 chunks, the last padded
    assert conv._images_per_chunk(7, 6) == 6
