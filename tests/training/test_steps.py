"""Train/eval steps: data-parallel runs agree with one device; metrics sums are exact; the
running sums carried through the compiled step equal the steps' own sums added on the host."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdl import tasks
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.training import fit, group, loop, metrics, optim, steps
from jaxdl.training.grid import member_config
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import create_train_state
from jaxdl.utils import distributed
from tests.helpers import tiny_esc50_config


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
        zeros = {"step": steps.zero_sums(objective)}
        state, sums = compiled.train(state, zeros, loop.to_device(batch, mesh))
        losses.append(metrics.mean_loss(jax.device_get(sums["step"])))
    zeros = steps.zero_sums(objective, train=False)
    eval_sums = compiled.eval(state, zeros, loop.to_device(batches[0], mesh))
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
    sums = jax.device_get(compiled.eval(state, steps.zero_sums(objective, train=False), padded))
    assert sums["count"] == 6
    assert sums["confusion"].sum() == 6


def _poisoned_batches(shape: tuple[int, ...], n: int, nan_at: tuple[int, ...]) -> list[dict]:
    """`n` random batches of 8; those of the steps `nan_at` (1-based) hold a NaN input."""
    rng = np.random.default_rng(1)
    batches = []
    for step in range(1, n + 1):
        x = rng.standard_normal((8, *shape)).astype(np.float32)
        if step in nan_at:
            x[3, 0, 0, 0] = np.nan
        y = rng.integers(0, 10, 8).astype(np.int32)
        batches.append({"x": x, "y": y, "mask": np.ones(8, np.float32)})
    return batches


def _assert_equal_sums(total: dict, expected: dict) -> None:
    """Counts exactly, loss sums to float rounding; the total may keep a subset of the keys."""
    for key, value in total.items():
        assert value.dtype == expected[key].dtype, key
        if key == "loss_sum":
            np.testing.assert_allclose(value, expected[key], rtol=1e-6)
        else:
            np.testing.assert_array_equal(value, expected[key], err_msg=key)


@pytest.mark.parametrize("strategy", ["sequential", "vmap"])
def test_sums_carried_through_the_step_equal_the_steps_sums_added_on_the_host(tmp_path, strategy):
    """Two members, 5 steps, non-finite inputs at steps 4 and 5 (nan_policy=skip), a log interval
    ending at step 3: the running totals the compiled step carries (the epoch's; the interval's,
    a subset of keys, swapped for zeros by the hook) equal the steps' own sums added eagerly, as
    the loop did before. `first_nonfinite_step` is the first bad step (4, not 4 + 5)."""
    config = tiny_esc50_config(tmp_path, nan_policy="skip")
    config.model.channels = (4, 8, 8)
    members = [
        member_config(config, 1, lr=lr, weight_decay=1e-4, seed=config.seed + i)
        for i, lr in enumerate((1e-2, 3e-3))
    ]
    names = [str(i) for i in range(10)]
    batches = _poisoned_batches(tasks.get(config).input_shape(config), 5, nan_at=(4, 5))

    trainer = group.build(members, names, strategy)
    initial = jax.tree.map(jnp.copy, trainer.states)  # the carried run donates the states

    def fresh() -> dict:
        return {"epoch": trainer.zero_sums(), "interval": trainer.zero_sums(keys=fit.INTERVAL_KEYS)}

    swapped = []

    def end_at_3(step, states, sums):
        if step != 3:
            return sums
        swapped.append(sums["interval"])
        return sums | {"interval": fresh()["interval"]}

    _, sums = loop.train_epoch(
        trainer.train, trainer.states, fresh(), batches, 5, trainer.mesh, "", after_step=end_at_3
    )
    epoch, first, second = (
        trainer.member_sums(s) for s in (sums["epoch"], *swapped, sums["interval"])
    )

    states, own = initial, []  # the same steps again, each from zeros: the step's own sums
    for batch in batches:
        states, sums = trainer.train(states, fresh(), loop.to_device(batch, trainer.mesh))
        own.append(sums["epoch"])

    def added(sums):
        total = sums[0]
        for more in sums[1:]:
            total = metrics.add_sums(total, more)
        return trainer.member_sums(total)

    for i in range(2):
        _assert_equal_sums(first[i], added(own[:3])[i])
        _assert_equal_sums(second[i], added(own[3:])[i])
        _assert_equal_sums(epoch[i], added(own)[i])
        assert set(epoch[i]) == set(added(own)[i]) and set(first[i]) == set(fit.INTERVAL_KEYS)
        assert np.isfinite(first[i]["loss_sum"]) and first[i]["nonfinite_steps"] == 0
        assert epoch[i]["nonfinite_steps"] == second[i]["nonfinite_steps"] == 2
        assert epoch[i]["first_nonfinite_step"] == second[i]["first_nonfinite_step"] == 4
        assert epoch[i]["count"] == 40 and epoch[i]["confusion"].sum() == 40
