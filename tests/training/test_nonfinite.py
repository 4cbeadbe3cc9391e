"""Non-finite loss or gradients: `stop` ends the run naming the step and the intact last good
checkpoint; `skip` discards that step's update and counts it."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.modes import train
from jaxdl.training import checkpoint, fit, optim, steps
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import create_train_state
from jaxdl.utils import distributed
from tests.helpers import tiny_esc50_config


def _step_on(batch_x: np.ndarray, skip: bool):
    mesh = distributed.make_mesh(jax.devices()[:1])
    train_config = ml_collections.ConfigDict(
        dict(optimizer="adamw", lr=1e-2, weight_decay=0.0, momentum=0.9)
    )
    state = create_train_state(
        Esc50CNN(5, (4, 8, 8), 3), optim.make_optimizer(train_config), 0, (16, 24, 1)
    )
    before = jax.device_get(state.params)
    objective = make_objective("multiclass", list("abcde"))
    compiled = steps.compile_steps(objective, mesh, skip)
    batch = {"x": batch_x, "y": np.arange(4, dtype=np.int32) % 5, "mask": np.ones(4, np.float32)}
    state, sums = compiled.train(state, {"step": steps.zero_sums(objective)}, batch)
    return before, jax.device_get(state), jax.device_get(sums["step"])


def test_skip_keeps_the_previous_parameters_and_counts_the_step():
    x = np.random.default_rng(0).standard_normal((4, 16, 24, 1)).astype(np.float32)
    x[2, 3, 4, 0] = np.nan
    before, state, sums = _step_on(x, skip=True)
    assert int(state.step) == 1  # the data position still advances
    assert sums["nonfinite_steps"] == 1 and sums["first_nonfinite_step"] == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    _, poisoned, _ = _step_on(x, skip=False)
    assert not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(poisoned.params))


def test_a_clean_step_is_not_flagged():
    x = np.random.default_rng(0).standard_normal((4, 16, 24, 1)).astype(np.float32)
    before, state, sums = _step_on(x, skip=True)
    assert sums["nonfinite_steps"] == 0 and sums["first_nonfinite_step"] == 0
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params), strict=True)
    )


def test_stop_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 1e30: step 1 is finite but leaves huge weights; step 2's forward pass overflows.
    config = tiny_esc50_config(tmp_path, lr=1e30, log_every_steps=1, checkpoint_every_steps=1)
    config.model.channels = (8, 16, 16)
    with pytest.raises(
        fit.NonFiniteLoss,
        match=r"non-finite loss or gradients at step 2 \(epoch 1\)"
        r".*last good checkpoint is .*/1\b",
    ) as raised:
        train.train_and_evaluate(config, tmp_path)
    (run_dir,) = (tmp_path / "checkpoints").iterdir()
    assert str(run_dir) in str(raised.value)
    with checkpoint.Checkpoints(run_dir, "accuracy", "max", read_only=True) as kept:
        assert kept.all_steps() == [1]
        params = kept._manager.restore(1)["state"]["params"]
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))
    status = json.loads((tmp_path / "logs" / run_dir.name / "run_status.json").read_text())
    assert status["status"] == "failed"


def test_a_log_interval_read_late_is_still_checked_before_the_next_save(tmp_path):
    """The interval ending at step 2 is fetched without waiting, and read later; the save due at
    step 3 reads it first, so the run stops at step 2's non-finite loss and saves nothing."""
    config = tiny_esc50_config(tmp_path, lr=1e30, log_every_steps=2, checkpoint_every_steps=3)
    config.model.channels = (8, 16, 16)
    with pytest.raises(
        fit.NonFiniteLoss,
        match=r"non-finite loss or gradients at step 2 \(epoch 1\).*no checkpoint was written yet",
    ):
        train.train_and_evaluate(config, tmp_path)
    (run_dir,) = (tmp_path / "checkpoints").iterdir()
    with checkpoint.Checkpoints(run_dir, "accuracy", "max", read_only=True) as kept:
        assert kept.all_steps() == []
