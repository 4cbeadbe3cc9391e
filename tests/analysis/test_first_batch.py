"""The first-batch check tells a gradient that does not flow from a parameter the loss ignores."""

import dataclasses

import jax
import numpy as np

from jaxdl import tasks
from jaxdl.analysis import first_batch
from jaxdl.training import group
from tests.helpers import tiny_esc50_config


def _esc50_group_and_batch(tmp_path):
    config = tiny_esc50_config(tmp_path)
    config.model.channels = (4, 8, 8)
    task = tasks.get(config)
    parts = group.build([config], tuple(f"class{i}" for i in range(10)))
    rng = np.random.default_rng(0)
    batch = {
        "x": rng.standard_normal((8, *task.input_shape(config))).astype(np.float32),
        "y": np.arange(8, dtype=np.int32),
        "mask": np.ones(8, np.float32),
    }
    return parts, batch


def _with_head_bias_detached(parts):
    """The same model, with the head's bias behind a stop_gradient: the loss depends on it but
    no gradient reaches it (the bug the check exists for)."""
    state = parts.state

    def apply_fn(variables, *args, **kwargs):
        params = dict(variables["params"])
        params["head"] = {**params["head"], "bias": jax.lax.stop_gradient(params["head"]["bias"])}
        return state.apply_fn({**variables, "params": params}, *args, **kwargs)

    return dataclasses.replace(parts, states=(state.replace(apply_fn=apply_fn),))


def test_conv_biases_removed_by_batch_norm_are_exactly_zero_and_loss_independent(tmp_path):
    parts, batch = _esc50_group_and_batch(tmp_path)
    check = first_batch.gradient_check(parts, batch)
    zero = sorted(r["parameter"] for r in check["gradients"] if r["grad_norm"] == 0)
    assert zero == check["loss_independent"] == [f"conv{i}/bias" for i in range(3)]
    assert check["all_nonzero"]


def test_a_detached_parameter_the_loss_depends_on_fails_the_check(tmp_path):
    parts, batch = _esc50_group_and_batch(tmp_path)
    check = first_batch.gradient_check(_with_head_bias_detached(parts), batch)
    rows = {r["parameter"]: r for r in check["gradients"]}
    assert rows["head/bias"]["grad_norm"] == 0 and not rows["head/bias"]["nonzero"]
    assert "head/bias" not in check["loss_independent"]
    assert not check["all_nonzero"]
