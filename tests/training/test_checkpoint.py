"""Checkpoints: best/latest preservation (the best first, ties), and clear errors for what cannot
be restored or saved: another architecture, a truncated or partial step, a full disk."""

import shutil
import subprocess

import jax
import ml_collections
import numpy as np
import pytest

from jaxdl.errors import CheckpointError
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.modes import ModeArgs, evaluate
from jaxdl.training import checkpoint, evaluation, optim
from jaxdl.training.state import create_train_state
from tests.helpers import load_config


def _state(channels=(4, 8, 8)):
    train = ml_collections.ConfigDict(
        dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, momentum=0.9)
    )
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
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
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
        evaluation.evaluate_checkpoint(
            load_config("esc50"), tmp_path / "ck", "test", tmp_path / "o"
        )


def _save_epochs(directory, accuracies, state=None):
    """Epoch-end saves 1..N with these val accuracies; returns (steps kept, best step)."""
    state = state or _state()
    with checkpoint.Checkpoints(directory, "accuracy", "max") as ckpts:
        for epoch, accuracy in enumerate(accuracies, start=1):
            ckpts.save(epoch, state, {**_meta(), "epoch": epoch}, {"accuracy": accuracy})
        ckpts.wait()
        return ckpts.all_steps(), ckpts.best_step()


def test_the_best_first_epoch_outlives_the_latest_two(tmp_path):
    """'Keep the latest 2' alone would have dropped epoch 1 at epoch 3."""
    assert _save_epochs(tmp_path / "ck", (0.9, 0.2, 0.3, 0.4, 0.5)) == ([1, 4, 5], 1)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir() if p.name.isdigit()) == [
        "1",
        "4",
        "5",
    ]
    found, step, meta = checkpoint.open_for_evaluation(tmp_path / "ck")  # reopened from disk
    with found:
        assert step == 1 and meta["epoch"] == 1


def test_an_equal_best_later_replaces_the_earlier_one(tmp_path):
    """Ties go to the later epoch (as `compare` and the README say); the earlier one is deleted."""
    assert _save_epochs(tmp_path / "ck", (0.9, 0.2, 0.9, 0.3, 0.4)) == ([3, 4, 5], 3)
    found, step, _ = checkpoint.open_for_evaluation(tmp_path / "ck")
    with found:
        assert step == 3


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _largest_file(directory):
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("broken", ["meta/metadata", "state data", "metrics/metrics", "state"])
def test_a_truncated_or_partial_step_is_named_when_evaluated(tmp_path, broken):
    _save_epochs(tmp_path / "ck", (0.2, 0.6))
    step_dir = tmp_path / "ck" / "2"
    if broken == "state":  # partly deleted
        shutil.rmtree(step_dir / "state")
    else:
        _truncate(
            _largest_file(step_dir / "state") if broken == "state data" else step_dir / broken
        )
    with pytest.raises(checkpoint.UnreadableCheckpoint) as raised:
        found, step, _ = checkpoint.open_for_evaluation(tmp_path / "ck")
        with found:
            found.restore_state(step, _state())
    assert str(raised.value).startswith(
        f"checkpoint {step_dir} is unreadable (truncated, partly written or corrupt: "
    )
    assert isinstance(raised.value, CheckpointError)


def test_a_failed_evaluate_leaves_no_output_folder(tmp_path):
    _save_epochs(tmp_path / "ck", (0.2, 0.6))
    _truncate(tmp_path / "ck" / "2" / "meta" / "metadata")
    workdir = tmp_path / "work"
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / 'ck' / '2'} is unreadable"):
        evaluate.run(load_config("esc50"), workdir, ModeArgs(checkpoint=str(tmp_path / "ck")))
    assert not workdir.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KiB tmpfs: two checkpoints of `_state((16, 32, 64))` (~200 KiB each) fit, a third
    does not. Needs root (CI runs as root); skipped where mounting is impossible."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_during_a_save_is_one_clear_error_and_keeps_the_complete_steps(
    small_disk, capfd
):
    directory = small_disk / "ck"
    state = _state((16, 32, 64))
    # Falling values: the best (step 1) and the latest two are all kept, so no save frees space.
    # Whether the disk fills at the third save or the fourth depends on Orbax's temporary files;
    # either way the message must name the latest step that is complete on disk.
    with pytest.raises(CheckpointError) as raised:
        _save_epochs(directory, (0.5, 0.4, 0.3, 0.2, 0.1), state)
    kept = sorted(p.name for p in directory.iterdir())  # the partial step removed
    assert kept in (["1", "2"], ["1", "2", "3"]), kept
    latest = kept[-1]
    assert str(raised.value) == (
        f"cannot save a checkpoint in {directory}: the disk is full; the complete checkpoints are "
        f"kept (latest: {directory / latest}). Free some space and rerun the same command to "
        "resume"
    )
    assert "Traceback" not in capfd.readouterr().err  # Orbax's own logged tracebacks are muted
    with checkpoint.Checkpoints(directory, "accuracy", "max", read_only=True) as found:
        assert found.read_meta(int(latest))["epoch"] == int(latest)
        restored = found.restore_state(int(latest), _state((16, 32, 64)))
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
