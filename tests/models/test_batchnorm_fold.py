"""Evaluation folds each BatchNorm into the conv before it (CelebA, CUB-200): the same logits as
normalising the conv's output, with running statistics far from their initial values (where a
wrong fold would still pass); the models that keep a plain BatchNorm (ESC-50, Tiny ImageNet) give
the same logits too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxdl.models import layers
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.models.cub200_net import Cub200GroupedCNN
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.models.tiny_imagenet_net import TinyImageNetInception

# model, input shape, BatchNorms folded into a conv in evaluation
MODELS = {
    # Folding gained nothing measurable on ESC-50 (docs/numerics.md): its BatchNorms stay.
    "esc50": (Esc50CNN(num_classes=10, channels=(8, 16, 32), kernel_size=3), (2, 16, 20, 1), 0),
    "celeba": (CelebaCNN(num_classes=5, channels_block3=32), (2, 16, 16, 3), 3),
    "cub200": (
        Cub200GroupedCNN(num_classes=7, num_blocks=1, groups=4, widths=(8, 16, 32)),
        (2, 16, 16, 3),
        7,
    ),
    # The BatchNorm follows a concat of ReLUs: no conv to fold into; evaluation normalises each
    # part before the concatenation instead (`BatchNorm.concat`).
    "tiny_imagenet": (TinyImageNetInception(num_classes=7, num_modules=3), (2, 12, 12, 3), 0),
}


def random_statistics(variables: dict, seed: int) -> dict:
    """`variables` with every BatchNorm's mean, var, scale (both signs) and bias drawn at random."""
    rng = np.random.default_rng(seed)
    params, stats = dict(variables["params"]), dict(variables["batch_stats"])
    for name, bn in stats.items():
        size = bn["mean"].shape
        stats[name] = {
            "mean": jnp.asarray(rng.normal(0.0, 0.5, size), jnp.float32),
            "var": jnp.asarray(rng.uniform(0.2, 3.0, size), jnp.float32),
        }
        params[name] = {
            "scale": jnp.asarray(rng.uniform(0.5, 1.5, size) * rng.choice([-1, 1], size)),
            "bias": jnp.asarray(rng.normal(0.0, 0.5, size), jnp.float32),
        }
    return {"params": params, "batch_stats": stats}


def unfolded_batch_norm(next_fun, args, kwargs, context):
    """Interceptor: every BatchNorm call as the textbook evaluation-mode formula on the conv's
    unfolded output, or on the concatenated parts (`BatchNorm.concat`), (y − mean)/√(var + ε)·γ
    + β, written independently of the layers."""
    module = context.module
    if not isinstance(module, layers.BatchNorm):
        return next_fun(*args, **kwargs)
    if context.method_name == "concat":
        y = jnp.concatenate(args[0], axis=-1)
    else:
        y = kwargs["conv"](args[0]) if kwargs.get("conv") is not None else args[0]
    stats, params = module.variables["batch_stats"], module.variables["params"]
    normalised = (y - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5)
    return (normalised * params["scale"] + params["bias"]).astype(y.dtype)


def folds(model: nn.Module, variables: dict, x: np.ndarray) -> int:
    """How many convs an evaluation forward pass runs with a BatchNorm folded in."""
    folded = []

    def count(next_fun, args, kwargs, context):
        if isinstance(context.module, layers.Conv) and kwargs.get("fold") is not None:
            folded.append(context.module.name)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(count):
        jax.eval_shape(lambda: model.apply(variables, x))
    return len(folded)


@pytest.mark.parametrize("name", list(MODELS))
def test_evaluation_logits_equal_the_unfolded_batch_norm(name):
    model, shape, expected_folds = MODELS[name]
    x = np.random.default_rng(0).standard_normal(shape, np.float32)
    initial = jax.jit(model.init)(jax.random.key(0), x)
    variables = random_statistics(initial, seed=1)

    folded = jax.jit(model.apply)(variables, x)

    @jax.jit
    def unfolded(variables, x):
        with nn.intercept_methods(unfolded_batch_norm):
            return model.apply(variables, x)

    reference = unfolded(variables, x)
    assert folds(model, variables, x) == expected_folds
    scale = float(jnp.abs(reference).max())
    # Non-trivial statistics: logits far from those of the initial (identity) BatchNorms.
    assert float(jnp.abs(reference - jax.jit(model.apply)(initial, x)).max()) > 0.1 * scale
    np.testing.assert_allclose(folded, reference, rtol=1e-4, atol=1e-5 * scale)


class _Block(nn.Module):
    """One conv → BatchNorm block through layers, with `nn.Conv`/`nn.BatchNorm` variable names."""

    groups: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv(16, 3, x.shape[-1], "torch", "conv", groups=self.groups)
        return layers.batch_norm(train, "bn")(x, conv=conv)


@pytest.mark.parametrize("groups", [1, 4])
def test_a_folded_block_equals_flax_conv_then_flax_batch_norm(groups):
    x = np.random.default_rng(2).standard_normal((2, 9, 11, 8), np.float32)
    block = _Block(groups)
    variables = random_statistics(block.init(jax.random.key(0), x), seed=3)
    conv = nn.Conv(16, (3, 3), padding="SAME", feature_group_count=groups)
    norm = nn.BatchNorm(use_running_average=True, epsilon=1e-5)
    y = conv.apply({"params": variables["params"]["conv"]}, x)
    expected = norm.apply(
        {"params": variables["params"]["bn"], "batch_stats": variables["batch_stats"]["bn"]}, y
    )
    got = block.apply(variables, x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(jnp.abs(expected).max()))


def test_training_normalises_with_batch_statistics_and_updates_them_as_before():
    """The training path is the conv, then Flax's BatchNorm (with torch's unbiased running
    variance): batch statistics, not the running ones, and the same running update."""
    x = np.random.default_rng(4).standard_normal((4, 6, 6, 8), np.float32)
    block = _Block(1)
    variables = random_statistics(block.init(jax.random.key(0), x), seed=5)
    got, updates = block.apply(variables, x, train=True, mutable=["batch_stats"])
    y = nn.Conv(16, (3, 3), padding="SAME").apply({"params": variables["params"]["conv"]}, x)
    mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    bn = variables["params"]["bn"]
    expected = (y - mean) / jnp.sqrt(var + 1e-5) * bn["scale"] + bn["bias"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    n = y.size // y.shape[-1]
    before = variables["batch_stats"]["bn"]
    np.testing.assert_allclose(
        updates["batch_stats"]["bn"]["mean"],
        0.9 * before["mean"] + 0.1 * mean,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        updates["batch_stats"]["bn"]["var"],
        0.9 * before["var"] + 0.1 * var * n / (n - 1),
        rtol=1e-5,
    )
