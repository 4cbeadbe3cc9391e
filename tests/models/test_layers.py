"""Shared layers: the 2×2 max-pool's hand-written gradient is autodiff's, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import layers


def _autodiff_pool(x):
    b, h, w, c = x.shape
    return x[:, : h - h % 2, : w - w % 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (2, 6, 8, 4)])  # odd sizes crop a row/column
def test_max_pool_gradient_equals_autodiff_with_ties_split(shape):
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, shape), jnp.float32)  # many ties
    dy = jnp.asarray(
        np.random.default_rng(1).standard_normal(
            (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
        ),
        jnp.float32,
    )
    got = jax.vjp(layers.max_pool_2x2, x)[1](dy)[0]
    expected = jax.vjp(_autodiff_pool, x)[1](dy)[0]
    np.testing.assert_array_equal(layers.max_pool_2x2(x), _autodiff_pool(x))
    np.testing.assert_array_equal(got, expected)
    window_sums = (
        got[:, : shape[1] // 2 * 2, : shape[2] // 2 * 2]
        .reshape(shape[0], shape[1] // 2, 2, shape[2] // 2, 2, shape[3])
        .sum(axis=(2, 4))
    )
    np.testing.assert_allclose(window_sums, dy, rtol=1e-6)  # each window passes on exactly dy


def test_max_pool_gradient_equals_torch_without_ties():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 6, 8, 4)).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal((2, 3, 4, 4)).astype(np.float32)
    got = jax.vjp(layers.max_pool_2x2, jnp.asarray(x))[1](jnp.asarray(dy))[0]
    expected = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    torch.nn.functional.max_pool2d(expected, 2).backward(torch.tensor(dy).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(got, expected.grad.permute(0, 2, 3, 1).numpy())
