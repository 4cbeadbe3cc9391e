"""Training-mode BatchNorm (`layers.batch_norm_train`, a hand-written gradient): outputs,
gradients and running statistics equal to the textbook formula under autodiff and to Flax's
nn.BatchNorm, vmapped over members and in bfloat16; `mask=` still takes Flax's path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxdl.models import layers

EPS = 1e-5


def _draw(shape, seed: int) -> dict:
    """Activations far from zero mean with per-channel spreads (a dropped mean term shows), a
    scale of both signs, and cotangents of the output and of both statistics."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(rng.uniform(-3, 3, c), rng.uniform(0.5, 2.0, c), shape)
    return {
        "x": jnp.asarray(x, jnp.float32),
        "scale": jnp.asarray(rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c), jnp.float32),
        "bias": jnp.asarray(rng.normal(0, 1, c), jnp.float32),
        "dy": jnp.asarray(rng.standard_normal(shape), jnp.float32),
        "dmean": jnp.asarray(rng.standard_normal(c), jnp.float32),
        "dvar": jnp.asarray(rng.standard_normal(c), jnp.float32),
    }


def _textbook(x, scale, bias):
    """BatchNorm as written in the papers (and Flax's fast variance), left to autodiff."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = jnp.maximum(0.0, (x * x).mean(axes) - mean * mean)
    return (x - mean) / jnp.sqrt(var + EPS) * scale + bias, mean, var


def _vjp(fn, d):
    outputs, pullback = jax.vjp(fn, d["x"], d["scale"], d["bias"])
    return outputs, pullback((d["dy"], d["dmean"], d["dvar"]))


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (7, 2)])  # conv activations, dense features
def test_gradient_equals_autodiff_of_the_textbook_formula(shape):
    """Catches a wrong sign or a missing term in dx (the mean(g), x̂·mean(g·x̂), dmean or dvar
    term), dscale taken as Σg·x instead of Σg·x̂, and dscale/dbias swapped."""
    d = _draw(shape, seed=0)
    got_outputs, got = _vjp(lambda *a: layers.batch_norm_train(*a, EPS, jnp.float32), d)
    expected_outputs, expected = _vjp(_textbook, d)
    for g, e in zip(got_outputs + got, expected_outputs + expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * float(jnp.abs(e).max()))


def _flax_reference_step(variables, x):
    """Flax's nn.BatchNorm with torch's running variance: the code the fast path replaced."""
    module = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=EPS)
    y, updates = module.apply(variables, x, mutable=["batch_stats"])
    n = x.size // x.shape[-1]
    before, after = variables["batch_stats"]["var"], updates["batch_stats"]["var"]
    unbiased = {**updates["batch_stats"], "var": after + (after - 0.9 * before) / (n - 1)}
    return y, unbiased


def _our_step(variables, x):
    y, updates = layers.batch_norm(True).apply(variables, x, mutable=["batch_stats"])
    return y, updates["batch_stats"]


def _variables(d, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    c = d["x"].shape[-1]
    return {
        "params": {"scale": d["scale"], "bias": d["bias"]},
        "batch_stats": {
            "mean": jnp.asarray(rng.normal(0, 1, c), jnp.float32),
            "var": jnp.asarray(rng.uniform(0.5, 2, c), jnp.float32),
        },
    }


def _loss_and_grads(step, variables, x, dy):
    def loss(params, x):
        y, stats = step({**variables, "params": params}, x)
        return jnp.sum(y * dy), (y, stats)

    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables["params"], x
    )
    return y, stats, grads


def _assert_trees_close(got, expected):
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * max(float(jnp.abs(e).max()), 1))


def test_module_step_equals_flax_batch_norm_with_torch_running_variance():
    """Output, parameter and input gradients, and the running statistics after one step: catches
    the running average of the biased variance, a swapped momentum, or the fast path's
    statistics not written back."""
    d = _draw((4, 5, 6, 3), seed=1)
    variables = _variables(d, seed=2)
    got = jax.jit(lambda v, x: _loss_and_grads(_our_step, v, x, d["dy"]))(variables, d["x"])
    expected = _loss_and_grads(_flax_reference_step, variables, d["x"], d["dy"])
    _assert_trees_close(got, expected)


def test_vmapped_members_equal_each_member_alone():
    """The grid vmaps a model over members' variables (and batches): each member's output,
    gradients and statistics as if run alone. Catches batching that mixes members' statistics."""
    members = [_draw((3, 4, 5, 2), seed=s) for s in range(3)]
    variables = [_variables(d, seed=10 + i) for i, d in enumerate(members)]
    stacked_vars = jax.tree.map(lambda *a: jnp.stack(a), *variables)
    xs, dys = (jnp.stack([d[k] for d in members]) for k in ("x", "dy"))
    got = jax.jit(jax.vmap(lambda v, x, dy: _loss_and_grads(_our_step, v, x, dy)))(
        stacked_vars, xs, dys
    )
    for i, (d, v) in enumerate(zip(members, variables, strict=True)):
        expected = _loss_and_grads(_flax_reference_step, v, d["x"], d["dy"])
        _assert_trees_close(jax.tree.map(lambda a, i=i: a[i], got), expected)


def test_bfloat16_output_with_float32_statistics_and_gradients_close_to_float32():
    """model.dtype=bfloat16: y and dx in bfloat16, running statistics and parameter gradients
    float32 and within bfloat16 rounding of the float32 step (statistics from the float32 cast)."""
    d = _draw((4, 5, 6, 3), seed=3)
    variables = _variables(d, seed=4)
    x16 = d["x"].astype(jnp.bfloat16)

    def step(variables, x):
        module = layers.batch_norm(True, dtype=jnp.bfloat16)
        y, updates = module.apply(variables, x, mutable=["batch_stats"])
        return y, updates["batch_stats"]

    y, stats, (dparams, dx) = jax.jit(lambda v, x: _loss_and_grads(step, v, x, d["dy"]))(
        variables, x16
    )
    assert y.dtype == dx.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree.leaves((stats, dparams))} == {jnp.dtype(jnp.float32)}
    reference = _loss_and_grads(_flax_reference_step, variables, x16.astype(jnp.float32), d["dy"])
    _, expected_stats, (expected_dparams, expected_dx) = reference
    _assert_trees_close(stats, expected_stats)  # the same float32 statistics of the same inputs
    for got, expected in ((y, reference[0]), (dx, expected_dx), (dparams, expected_dparams)):
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(
                np.asarray(g, np.float32), e, atol=2e-2 * float(jnp.abs(e).max())
            )


def test_mask_normalises_by_the_masked_rows_statistics():
    """`mask=` keeps Flax's path: statistics of the unmasked rows only (catches the fast path
    taking it and ignoring the mask)."""
    d = _draw((6, 3), seed=5)
    mask = jnp.asarray([True, True, True, False, False, True])[:, None]
    variables = _variables(d, seed=6)
    y, _ = layers.batch_norm(True).apply(variables, d["x"], mask=mask, mutable=["batch_stats"])
    kept = d["x"][mask[:, 0]]
    expected = (kept - kept.mean(0)) / jnp.sqrt(kept.var(0) + EPS) * d["scale"] + d["bias"]
    np.testing.assert_allclose(y[mask[:, 0]], expected, rtol=1e-5, atol=1e-5)


class _ConvThenNorm(nn.Module):
    """Conv → BatchNorm, the conv handed to the BatchNorm (`fused`) or applied before it."""

    fused: bool

    @nn.compact
    def __call__(self, x, train: bool):
        conv = layers.conv(4, 3, x.shape[-1], "torch", "conv")
        norm = layers.batch_norm(train, "bn")
        return norm(x, conv=conv) if self.fused else norm(conv(x))


def test_conv_bias_handed_to_the_batch_norm_moves_only_the_running_mean():
    """In training the conv's bias goes to the BatchNorm's mean, not through the activations:
    output, kernel gradient and running statistics as with the bias added first, the bias's
    gradient exactly 0 (autodiff's is 0 up to rounding). Catches the bias left out of the
    running mean or added to it twice."""
    x = jnp.asarray(np.random.default_rng(7).normal(1.0, 2.0, (2, 5, 6, 3)), jnp.float32)
    variables = _ConvThenNorm(fused=False).init(jax.random.key(0), x, train=False)
    dy = jnp.asarray(np.random.default_rng(8).standard_normal((2, 5, 6, 4)), jnp.float32)

    def step(fused: bool):
        def loss(params):
            y, updates = _ConvThenNorm(fused).apply(
                {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
            )
            return jnp.sum(y * dy), (y, updates["batch_stats"])

        return jax.jit(jax.grad(loss, has_aux=True))(variables["params"])

    (grads, (y, stats)), (ref_grads, (ref_y, ref_stats)) = step(True), step(False)
    assert not np.any(grads["conv"]["bias"])
    np.testing.assert_allclose(ref_grads["conv"]["bias"], 0.0, atol=1e-4)
    ref_grads["conv"]["bias"] = grads["conv"]["bias"]
    _assert_trees_close((grads, y, stats), (ref_grads, ref_y, ref_stats))
