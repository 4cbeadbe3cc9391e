"""Optimizers over several steps against independent computations of their update rules.

Every check runs 5 steps with non-zero, step-varying gradients on a flax-like tree of `kernel`,
`bias` and BatchNorm `scale` leaves, and compares the parameters with a float64 numpy
implementation written from the published rules and, when torch is installed, with torch's own
optimizers. Each numpy comparison also asserts that the nearest wrong optimizer (Adam with L2
instead of AdamW, decay inside SGD's momentum, decay masked off biases and scales) ends far outside
the tolerance, so the test demonstrably tells them apart.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util

from jaxdl.errors import ConfigError
from jaxdl.training.optim import make_optimizer

LR, WD, MOMENTUM = 0.01, 0.3, 0.9
B1, B2, EPS = 0.9, 0.999, 1e-8
STEPS = 5
RTOL, ATOL = 1e-5, 1e-6
FAR = 100 * ATOL  # how far a wrong rule must end from jaxdl's parameters

Tree = dict
Path = tuple[str, ...]


def _train(optimizer: str, lr: float = LR, wd: float = WD) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(optimizer=optimizer, lr=lr, weight_decay=wd, momentum=MOMENTUM)
    )


def _params() -> Tree:
    """A small flax params tree: conv and dense kernels with biases, a BatchNorm scale and bias.

    Values are float32-representable, so numpy, torch and jaxdl start from the same numbers.
    """
    rng = np.random.default_rng(0)
    shapes = {
        "conv0": {"kernel": (3, 3, 2, 4), "bias": (4,)},
        "bn0": {"scale": (4,), "bias": (4,)},
        "head": {"kernel": (4, 3), "bias": (3,)},
    }
    params = jax.tree.map(
        lambda shape: rng.normal(size=shape), shapes, is_leaf=lambda x: isinstance(x, tuple)
    )
    params["bn0"]["scale"] = 1.0 + 0.2 * params["bn0"]["scale"]
    return jax.tree.map(lambda x: x.astype(np.float32).astype(np.float64), params)


def _gradients() -> list[Tree]:
    """STEPS gradient trees: non-zero, of changing size and sign from step to step."""
    rng = np.random.default_rng(1)
    return [
        jax.tree.map(
            lambda p, s=step: (
                ((0.5 + s) * rng.normal(size=p.shape)).astype(np.float32).astype(np.float64)
            ),
            _params(),
        )
        for step in range(STEPS)
    ]


def _every_leaf(path: Path) -> bool:
    return True


def _kernels_only(path: Path) -> bool:
    return path[-1] == "kernel"


def numpy_adam(
    params: Tree,
    gradients: list[Tree],
    lr: float,
    wd: float,
    coupled: bool,
    decays: Callable[[Path], bool] = _every_leaf,
) -> Tree:
    """Adam with bias correction. coupled: torch `Adam(weight_decay)`, g += wd·p before the
    moments; else torch `AdamW`: p -= lr·(m̂ / (√v̂ + eps) + wd·p)."""
    flat = traverse_util.flatten_dict(params)
    m = {k: np.zeros_like(p) for k, p in flat.items()}
    v = {k: np.zeros_like(p) for k, p in flat.items()}
    for t, grads in enumerate(gradients, start=1):
        grads = traverse_util.flatten_dict(grads)
        for k, p in flat.items():
            decay = wd if decays(k) else 0.0
            g = grads[k] + decay * p if coupled else grads[k]
            m[k] = B1 * m[k] + (1 - B1) * g
            v[k] = B2 * v[k] + (1 - B2) * g**2
            step = (m[k] / (1 - B1**t)) / (np.sqrt(v[k] / (1 - B2**t)) + EPS)
            flat[k] = p - lr * (step if coupled else step + decay * p)
    return traverse_util.unflatten_dict(flat)


def numpy_sgd(
    params: Tree,
    gradients: list[Tree],
    lr: float,
    wd: float,
    coupled: bool,
    decays: Callable[[Path], bool] = _every_leaf,
) -> Tree:
    """SGD with momentum (buf = μ·buf + g, p -= lr·buf). coupled: torch `SGD(weight_decay)`,
    g += wd·p enters the momentum; else decoupled: p -= lr·(buf + wd·p)."""
    flat = traverse_util.flatten_dict(params)
    buf = {k: np.zeros_like(p) for k, p in flat.items()}
    for grads in gradients:
        grads = traverse_util.flatten_dict(grads)
        for k, p in flat.items():
            decay = wd if decays(k) else 0.0
            g = grads[k] + decay * p if coupled else grads[k]
            buf[k] = MOMENTUM * buf[k] + g
            flat[k] = p - lr * (buf[k] if coupled else buf[k] + decay * p)
    return traverse_util.unflatten_dict(flat)


def jaxdl_steps(
    tx: optax.GradientTransformation, params: Tree, gradients: list[Tree], opt_state=None
) -> Tree:
    """Applies jaxdl's optimizer for each gradient tree in float32, as the train step does."""
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    opt_state = tx.init(params) if opt_state is None else opt_state
    for grads in gradients:
        grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return jax.tree.map(np.asarray, params)


def assert_trees_close(actual: Tree, expected: Tree) -> None:
    for path, value in traverse_util.flatten_dict(expected).items():
        np.testing.assert_allclose(
            traverse_util.flatten_dict(actual)[path],
            value,
            rtol=RTOL,
            atol=ATOL,
            err_msg="/".join(path),
        )


def max_difference(a: Tree, b: Tree) -> float:
    return max(
        float(np.max(np.abs(x - y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# optimizer -> (numpy rule, coupled, {wrong variant: (rule, coupled, decayed leaves)})
CASES = {
    "adamw": (
        numpy_adam,
        False,
        {
            "adam with L2": (numpy_adam, True, _every_leaf),
            "kernels decayed only": (numpy_adam, False, _kernels_only),
        },
    ),
    "adam_l2": (
        numpy_adam,
        True,
        {
            "adamw": (numpy_adam, False, _every_leaf),
            "kernels decayed only": (numpy_adam, True, _kernels_only),
        },
    ),
    "sgd": (
        numpy_sgd,
        False,
        {
            "decay inside the momentum": (numpy_sgd, True, _every_leaf),
            "kernels decayed only": (numpy_sgd, False, _kernels_only),
        },
    ),
}


def _reference(rule, coupled, lr=LR, wd=WD, decays=_every_leaf) -> Tree:
    return rule(_params(), _gradients(), lr, wd, coupled, decays)


@pytest.mark.parametrize("optimizer", sorted(CASES))
def test_five_steps_match_the_update_rule_on_every_leaf(optimizer):
    rule, coupled, wrong_variants = CASES[optimizer]
    got = jaxdl_steps(make_optimizer(_train(optimizer)), _params(), _gradients())
    assert_trees_close(got, _reference(rule, coupled))
    for name, (wrong_rule, wrong_coupled, decays) in wrong_variants.items():
        distance = max_difference(got, _reference(wrong_rule, wrong_coupled, decays=decays))
        assert distance > FAR, f"{optimizer} is indistinguishable from {name} ({distance:.2e})"


@pytest.mark.parametrize("optimizer", sorted(CASES))
def test_decay_on_a_zero_gradient_reaches_kernels_biases_and_scales(optimizer):
    """Weight decay applies to every parameter, as torch's optimizers do (the docstring's promise);
    an `inject_hyperparams` mask without `static_args` would silently disable it."""
    params = _params()
    zero = [jax.tree.map(np.zeros_like, params)]
    got = traverse_util.flatten_dict(jaxdl_steps(make_optimizer(_train(optimizer)), params, zero))
    for path, before in traverse_util.flatten_dict(params).items():
        if optimizer == "adam_l2":  # first Adam step of g = wd·p moves by lr·sign(p)
            expected = before - LR * np.sign(before)
        else:
            expected = before * (1 - LR * WD)
        np.testing.assert_allclose(
            got[path], expected, rtol=RTOL, atol=ATOL, err_msg="/".join(path)
        )


@pytest.mark.parametrize("optimizer", sorted(CASES))
def test_injected_learning_rate_and_weight_decay_drive_the_update(optimizer):
    """A grid member's lr and weight decay, set in its optimizer state, are the ones applied."""
    rule, coupled, _ = CASES[optimizer]
    tx = make_optimizer(_train(optimizer))  # built with LR, WD; the member's values are set
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _params())
    state = optax.tree_utils.tree_set(tx.init(params), learning_rate=0.02, weight_decay=0.1)
    got = jaxdl_steps(tx, params, _gradients(), opt_state=state)
    assert_trees_close(got, _reference(rule, coupled, lr=0.02, wd=0.1))


def _torch_steps(torch, build: Callable, decoupled_decay: float = 0.0) -> Tree:
    """STEPS of the torch optimizer `build(tensors)` on the same tree; `decoupled_decay` is applied
    as torch's AdamW applies its own: p *= 1 - lr·decay before the step."""
    flat = {
        k: torch.tensor(v, dtype=torch.float32, requires_grad=True)
        for k, v in traverse_util.flatten_dict(_params()).items()
    }
    torch_optimizer = build(list(flat.values()))
    for grads in _gradients():
        for k, g in traverse_util.flatten_dict(grads).items():
            flat[k].grad = torch.tensor(g, dtype=torch.float32)
        with torch.no_grad():
            for tensor in flat.values():
                tensor.mul_(1 - LR * decoupled_decay)
        torch_optimizer.step()
    return traverse_util.unflatten_dict({k: v.detach().numpy() for k, v in flat.items()})


# optimizer -> (torch optimizer over the tensors, decoupled decay applied outside it)
TORCH = {
    "adamw": (
        lambda torch, t: torch.optim.AdamW(t, LR, betas=(B1, B2), eps=EPS, weight_decay=WD),
        0.0,
    ),
    "adam_l2": (
        lambda torch, t: torch.optim.Adam(t, LR, betas=(B1, B2), eps=EPS, weight_decay=WD),
        0.0,
    ),
    "sgd": (lambda torch, t: torch.optim.SGD(t, LR, momentum=MOMENTUM, weight_decay=0.0), WD),
}


@pytest.mark.parametrize("optimizer", sorted(TORCH))
def test_five_steps_match_torch(optimizer):
    """adamw = torch AdamW, adam_l2 = torch Adam(weight_decay), sgd = torch SGD(momentum) with
    decoupled decay; all on every parameter, as torch decays every parameter it is given."""
    torch = pytest.importorskip("torch")
    build, decoupled_decay = TORCH[optimizer]
    expected = _torch_steps(torch, lambda tensors: build(torch, tensors), decoupled_decay)
    got = jaxdl_steps(make_optimizer(_train(optimizer)), _params(), _gradients())
    assert_trees_close(got, expected)


def test_sgd_departs_from_torch_sgd_coupled_weight_decay():
    """torch `SGD(weight_decay)` adds the decay to the gradient (inside the momentum); jaxdl's
    `sgd` is decoupled, as documented, so the two end far apart."""
    torch = pytest.importorskip("torch")
    torch_coupled = _torch_steps(
        torch, lambda tensors: torch.optim.SGD(tensors, LR, momentum=MOMENTUM, weight_decay=WD)
    )
    assert_trees_close(torch_coupled, _reference(numpy_sgd, coupled=True))
    got = jaxdl_steps(make_optimizer(_train("sgd")), _params(), _gradients())
    assert max_difference(got, torch_coupled) > FAR


def test_unknown_optimizer_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="train.optimizer='rmsprop'.*adamw"):
        make_optimizer(_train("rmsprop"))
