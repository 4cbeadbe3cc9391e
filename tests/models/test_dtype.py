"""model.dtype=bfloat16: convs and activations in bfloat16; parameters, BatchNorm statistics,
logits and the loss in float32; and training still learns."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdl import models
from jaxdl.errors import ConfigError
from jaxdl.models import layers
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.modes import train
from jaxdl.training import objectives
from tests.helpers import tiny_esc50_config
from tests.models.test_batchnorm_fold import MODELS


def _dtypes(tree) -> set:
    return {leaf.dtype for leaf in jax.tree.leaves(tree)}


@pytest.mark.parametrize("name", list(MODELS))
def test_bfloat16_computes_in_bfloat16_and_keeps_state_and_logits_float32(name):
    model = MODELS[name][0].clone(dtype="bfloat16")
    x = np.random.default_rng(0).standard_normal(MODELS[name][1], np.float32)

    @jax.jit
    def step(x):
        variables = model.init(jax.random.key(0), x)
        logits, updates = model.apply(
            variables, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"]
        )
        evaluation, captured = model.apply(variables, x, capture_intermediates=True)
        return variables, updates, logits, evaluation, captured["intermediates"]

    variables, updates, logits, evaluation, captured = step(x)
    assert _dtypes(variables) == {jnp.dtype(jnp.float32)}
    assert _dtypes(updates) == {jnp.dtype(jnp.float32)}  # running statistics
    assert logits.dtype == evaluation.dtype == jnp.float32
    outputs = {
        path: leaf.dtype
        for path, leaf in jax.tree_util.tree_leaves_with_path(captured)
        if "head" not in jax.tree_util.keystr(path) and leaf.ndim == 4
    }
    assert outputs and set(outputs.values()) == {jnp.dtype(jnp.bfloat16)}, outputs


def test_bfloat16_convolutions_run_in_bfloat16_in_the_training_step():
    model = Esc50CNN(num_classes=10, channels=(8, 16, 32), kernel_size=3, dtype="bfloat16")
    x = np.zeros((2, 16, 20, 1), np.float32)
    variables = model.init(jax.random.key(0), x)

    def loss(params):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return objectives.softmax_cross_entropy(logits, jnp.zeros(2, jnp.int32)).mean()

    jaxpr = jax.make_jaxpr(jax.grad(loss))(variables["params"])
    convs = [eqn for eqn in _equations(jaxpr.jaxpr) if eqn.primitive.name == "conv_general_dilated"]
    assert len(convs) >= 6  # forward and input gradients at least
    assert {var.aval.dtype for eqn in convs for var in eqn.outvars} == {jnp.dtype(jnp.bfloat16)}
    grads = jax.jit(jax.grad(loss))(variables["params"])
    assert _dtypes(grads) == {jnp.dtype(jnp.float32)}


def _equations(jaxpr):
    """Every equation of `jaxpr` and of the jaxprs nested in it (custom_vjp, cond, pjit)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for inner in param if isinstance(param, (list, tuple)) else (param,):
                if isinstance(inner, jax.extend.core.ClosedJaxpr):
                    yield from _equations(inner.jaxpr)
                elif isinstance(inner, jax.extend.core.Jaxpr):
                    yield from _equations(inner)


def test_the_loss_of_bfloat16_logits_is_float32():
    logits = jnp.asarray([[2.0, -1.0, 0.5]], jnp.bfloat16)
    for kind, labels in (
        ("multiclass", jnp.asarray([0])),
        ("multilabel", jnp.asarray([[1, 0, 1]])),
    ):
        objective = objectives.make_objective(kind, ("a", "b", "c"))
        assert objective.loss(logits, labels).dtype == jnp.float32
        assert objective.probabilities(logits).dtype == jnp.float32


def test_model_dtype_is_read_and_checked():
    model = ml_collections.ConfigDict(
        dict(name="esc50_cnn", channels=(8, 16, 32), kernel_size=3, init="flax", dtype="bfloat16")
    )
    assert models.build(Esc50CNN, model, 10).dtype == "bfloat16"
    config = ml_collections.ConfigDict({"model": model})
    config.model.dtype = "float16"
    with pytest.raises(ConfigError, match=r"model\.dtype='float16' is invalid: expected one of"):
        models.check(Esc50CNN, config)
    assert set(layers.DTYPES) == {"float32", "bfloat16"}


def test_bfloat16_training_learns_synthetic_esc50(tmp_path):
    """The real train mode, bfloat16 compute: the loss falls well below chance's ln 10 and the
    validation accuracy is far above chance."""
    config = tiny_esc50_config(tmp_path, epochs=6, evaluate_test=False)
    config.model.dtype = "bfloat16"
    summary = train.train_and_evaluate(config, tmp_path)
    assert summary["final/train/loss"] < 0.6 * np.log(10)
    assert summary["val/accuracy"] >= 3 * 0.1
