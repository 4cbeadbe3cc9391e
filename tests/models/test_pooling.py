"""The 3×3 stride-1 max-pool's hand-written gradient is autodiff's rule for a max, ties included."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models import layers


def _autodiff_pool(x):
    """The 3×3 windows stacked on a new axis and reduced with `max`: autodiff splits each window's
    cotangent equally between its tied maxima."""
    h, w = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    windows = jnp.stack([padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)])
    return windows.max(axis=0)


def test_max_pool_3x3_gradient_equals_autodiff_with_ties_split():
    shape = (2, 5, 7, 3)  # odd sizes: border windows hold 4 or 6 in-image values
    x = jnp.asarray(np.random.default_rng(0).integers(-3, 0, shape), jnp.float32)  # many ties
    dy = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    got = jax.vjp(layers.max_pool_3x3_same, x)[1](dy)[0]
    expected = jax.vjp(_autodiff_pool, x)[1](dy)[0]
    np.testing.assert_array_equal(layers.max_pool_3x3_same(x), _autodiff_pool(x))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.sum(), dy.sum(), rtol=1e-5)  # every window passes on its dy
