"""Shared layers: the 2×2 max-pool's gradient goes where torch sends it, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import layers


def _tied_input(shape=(2, 5, 7, 3)):
    """Small integers: many windows hold their maximum more than once."""
    return jnp.asarray(np.random.default_rng(0).integers(0, 3, shape), jnp.float32)


def _first_max_gradient(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """numpy reference: each window's cotangent to its first maximum in row-major order."""
    dx = np.zeros_like(x)
    for b, i, j, c in np.ndindex(dy.shape):
        window = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
        di, dj = np.unravel_index(np.argmax(window), (2, 2))  # argmax: the first maximum
        dx[b, 2 * i + di, 2 * j + dj, c] = dy[b, i, j, c]
    return dx


def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window():
    x = _tied_input()
    dy = jnp.asarray(np.random.default_rng(1).standard_normal((2, 2, 3, 3)), jnp.float32)
    _, vjp = jax.vjp(layers.max_pool_2x2, x)
    (dx,) = vjp(dy)
    np.testing.assert_array_equal(dx, _first_max_gradient(np.asarray(x), np.asarray(dy)))
    assert float(jnp.abs(dx[:, 4]).max()) == 0 and float(jnp.abs(dx[:, :, 6]).max()) == 0  # cropped


def test_max_pool_gradient_equals_torch():
    torch = pytest.importorskip("torch")
    x = _tied_input((2, 6, 8, 4))
    dy = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float32)
    _, vjp = jax.vjp(layers.max_pool_2x2, x)
    expected = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).requires_grad_()
    torch.nn.functional.max_pool2d(expected, 2).backward(torch.tensor(dy).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(vjp(jnp.asarray(dy))[0],
                                  expected.grad.permute(0, 2, 3, 1).numpy())
