"""Checkpoints: best/latest preservation, and clear errors for what cannot be restored."""

import jax
import ml_collections
import numpy as np
import pytest

from jaxdl.errors import CheckpointError
from jaxdl.modes import evaluate
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.training import checkpoint, optim
from jaxdl.training.state import create_train_state
from tests.helpers import load_config


def _state(channels=(4, 8, 8)):
    train = ml_collections.ConfigDict(dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, momentum=0.9))
    return create_train_state(Esc50CNN(5, channels, 3), optim.make_optimizer(train), 0, (16, 24, 1))


def _meta(task="esc50"):
    config = load_config(task).to_dict()
    return {"config": config, "class_names": ["a", "b", "c", "d", "e"], "epoch": 1}


def test_keeps_the_latest_and_the_best_and_restores_exactly(tmp_path):
    state = _state()
    with checkpoint.Checkpoints(tmp_path / "ck", "accuracy", "max") as ckpts:
        for epoch, accuracy in ((1, 0.2), (2, 0.6), (3, 0.4)):
            ckpts.save(epoch, state, {**_meta(), "epoch": epoch}, {"accuracy": accuracy})
        ckpts.wait()
        assert ckpts.best_step() == 2 and ckpts.latest_step() == 3
    found, step, meta = checkpoint.open_for_evaluation(tmp_path / "ck")
    with found:
        assert step == 2 and meta["epoch"] == 2
        restored = found.restore_state(step, _state())
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)


def test_min_mode_keeps_the_lowest_loss(tmp_path):
    with checkpoint.Checkpoints(tmp_path / "ck", "loss", "min") as ckpts:
        for epoch, loss in ((1, 2.0), (2, 0.5), (3, 1.0)):
            ckpts.save(epoch, _state(), _meta(), {"loss": loss})
        ckpts.wait()
        assert ckpts.best_step() == 2


def test_restoring_into_another_architecture_names_the_shapes(tmp_path):
    with checkpoint.Checkpoints(tmp_path / "ck", "accuracy", "max") as ckpts:
        ckpts.save(1, _state(), _meta(), {"accuracy": 0.5})
    found, step, _ = checkpoint.open_for_evaluation(tmp_path / "ck")
    with found, pytest.raises(CheckpointError, match="does not match") as raised:
        found.restore_state(step, _state(channels=(4, 8, 16)))
    message = str(raised.value)
    assert "params/conv2/kernel: checkpoint (3, 3, 8, 8) vs model (3, 3, 8, 16)" in message
    assert "batch_stats/bn2/mean: checkpoint (8,) vs model (16,)" in message
    assert "conv0" not in message  # only what differs


def test_missing_and_non_checkpoint_directories_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.open_for_evaluation(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no complete Orbax checkpoint"):
        checkpoint.open_for_evaluation(tmp_path / "empty")


def test_evaluating_a_checkpoint_of_another_task_is_refused(tmp_path):
    with checkpoint.Checkpoints(tmp_path / "ck", "macro_f1", "max") as ckpts:
        ckpts.save(1, _state(), _meta("celeba"), {"macro_f1": 0.5})
    with pytest.raises(CheckpointError, match="trained for task 'celeba'.*'esc50'"):
        evaluate.evaluate_checkpoint(load_config("esc50"), tmp_path / "ck", "test", tmp_path / "o")
