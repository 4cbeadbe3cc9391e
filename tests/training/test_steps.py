"""Train/eval steps: data-parallel runs agree with one device; metrics sums are exact."""

import jax
import ml_collections
import numpy as np

from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.training import optim, steps
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import create_train_state
from jaxdl.utils import distributed


def _losses_over_steps(devices, batches):
    mesh = distributed.make_mesh(devices)
    objective = make_objective("multiclass", [str(i) for i in range(5)])
    # SGD, not Adam: a conv bias before BatchNorm has a zero gradient up to float noise, and Adam's
    # first step turns that noise into ±lr, so Adam runs differ by reduction order alone.
    train = ml_collections.ConfigDict(
        dict(optimizer="sgd", lr=5e-2, weight_decay=1e-4, momentum=0.9)
    )
    state = create_train_state(
        Esc50CNN(5, (4, 8, 8), 3), optim.make_optimizer(train), 0, (16, 24, 1)
    )
    state = jax.device_put(state, distributed.replicated(mesh))
    compiled = steps.compile_steps(objective, mesh)
    losses = []
    for batch in batches:
        state, sums = compiled.train(state, jax.device_put(batch, distributed.data_sharded(mesh)))
        losses.append(float(sums["loss_sum"] / sums["count"]))
    eval_sums = compiled.eval(state, jax.device_put(batches[0], distributed.data_sharded(mesh)))
    return np.array(losses), jax.device_get(eval_sums)


def _batches(n=3, size=8):
    rng = np.random.default_rng(0)
    return [
        {
            "x": rng.standard_normal((size, 16, 24, 1), np.float32),
            "y": rng.integers(0, 5, size).astype(np.int32),
            "mask": np.ones(size, np.float32),
        }
        for _ in range(n)
    ]


def test_four_devices_give_the_same_loss_curve_as_one():
    assert jax.device_count() == 4, "conftest sets 4 simulated CPU devices"
    batches = _batches()
    one, eval_one = _losses_over_steps(jax.devices()[:1], batches)
    four, eval_four = _losses_over_steps(jax.devices(), batches)
    np.testing.assert_allclose(four, one, rtol=1e-5)
    np.testing.assert_allclose(eval_four["loss_sum"], eval_one["loss_sum"], rtol=1e-5)
    np.testing.assert_array_equal(eval_four["confusion"], eval_one["confusion"])


def test_masked_rows_do_not_count_in_eval_sums():
    batches = _batches(n=1)
    padded = {k: v.copy() for k, v in batches[0].items()}
    padded["mask"][6:] = 0.0
    mesh = distributed.make_mesh()
    objective = make_objective("multiclass", [str(i) for i in range(5)])
    train = ml_collections.ConfigDict(
        dict(optimizer="adamw", lr=1e-2, weight_decay=0.0, momentum=0.9)
    )
    state = create_train_state(
        Esc50CNN(5, (4, 8, 8), 3), optim.make_optimizer(train), 0, (16, 24, 1)
    )
    compiled = steps.compile_steps(objective, mesh)
    sums = jax.device_get(compiled.eval(state, padded))
    assert sums["count"] == 6
    assert sums["confusion"].sum() == 6
