"""A run never continues from what is not its own or not intact: the checkpoints of another
configuration are refused by key, an unreadable latest step falls back to the previous one, a
split smaller than a batch is refused before a run directory exists, skipped steps are shown,
and a run in progress is locked against a second process."""

import json
import os
import shutil

import pytest

from jaxdl.errors import CheckpointError, DataError
from jaxdl.modes import train
from jaxdl.utils import locks, runs
from tests.helpers import tiny_esc50_config


def _tree(directory) -> dict:
    """Every file under `directory` with its content and modification time."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _records(log_dir) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (log_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_config_differences_name_what_changes_training_only():
    saved = tiny_esc50_config(None).to_dict()
    current = tiny_esc50_config(None, lr=1e-3, log_every_steps=7, checkpoint_every_steps=3)
    current.model.channels = (16, 32, 32)
    current.grid.lr = (1.0,)  # another mode's setting, as a grid member carries its grid's
    current.data.cache_dir = "/elsewhere"
    assert runs.config_differences(saved, current.to_dict()) == [
        "model.channels: checkpoint 16-32-64, this run 16-32-32",
        "train.lr: checkpoint 0.01, this run 0.001",
    ]
    assert runs.config_differences(saved, saved) == []


def test_the_checkpoints_of_another_config_under_the_same_name_are_refused(tmp_path, capsys):
    config = tiny_esc50_config(tmp_path, epochs=1, evaluate_test=False)
    config.run_name = "exp"
    first = train.train_and_evaluate(config, tmp_path)
    checkpoint_dir = tmp_path / "checkpoints" / "exp"
    kept = _tree(checkpoint_dir)
    shutil.rmtree(tmp_path / "logs")  # the run's logs are gone, its checkpoints are not

    other = tiny_esc50_config(tmp_path, epochs=2, lr=1e-3, evaluate_test=False)
    other.run_name = "exp"
    with pytest.raises(CheckpointError) as raised:
        train.train_and_evaluate(other, tmp_path)
    assert str(raised.value) == (
        f"{checkpoint_dir} holds the checkpoints of another configuration, not this run's "
        "(train.epochs: checkpoint 1, this run 2; train.lr: checkpoint 0.01, this run 0.001); "
        "delete that directory to train this configuration afresh, or choose another "
        "--config.run_name"
    )
    assert _tree(checkpoint_dir) == kept
    assert not (tmp_path / "logs" / "exp" / "metrics.jsonl").exists()

    # The same configuration (another logging interval) is this run's: adopted, not retrained.
    shutil.rmtree(tmp_path / "logs")
    config.train.log_every_steps = 3
    capsys.readouterr()
    again = train.train_and_evaluate(config, tmp_path)
    assert "resuming from step 7 (epoch 2, batch 0 of 7)" in capsys.readouterr().out
    assert again == first and _tree(checkpoint_dir) == kept


def test_an_unreadable_latest_step_falls_back_to_the_previous_one(tmp_path, capsys):
    config = tiny_esc50_config(tmp_path, evaluate_test=False)  # 2 epochs of 7 steps
    first = train.train_and_evaluate(config, tmp_path)
    log_dir, checkpoint_dir = (
        tmp_path / "logs" / first["run"],
        tmp_path / "checkpoints" / first["run"],
    )
    records = _records(log_dir)
    data = max(
        (p for p in (checkpoint_dir / "14" / "state").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data.write_bytes(data.read_bytes()[:100])  # truncated, as by a crash or a full disk
    status = json.loads((log_dir / runs.STATUS_FILE).read_text())
    (log_dir / runs.STATUS_FILE).write_text(json.dumps({**status, "status": "running"}))

    capsys.readouterr()
    again = train.train_and_evaluate(config, tmp_path)
    out = capsys.readouterr().out
    assert (
        f"checkpoint {checkpoint_dir / '14'} is unreadable (truncated, partly written or "
        "corrupt: " in out
    )
    assert "resuming from step 7 (epoch 2, batch 0 of 7)" in out
    assert again == first and _records(log_dir) == records  # epoch 2 retrained identically
    set_aside = list(checkpoint_dir.glob("14.unreadable-*"))  # kept for inspection
    assert len(set_aside) == 1 and f"set aside as {set_aside[0].name}" in out
    assert sorted(p.name for p in checkpoint_dir.iterdir() if p not in set_aside) == ["14", "7"]


def test_a_batch_larger_than_the_training_split_is_refused_before_a_run_exists(tmp_path):
    config = tiny_esc50_config(tmp_path, batch_size=512)
    with pytest.raises(
        DataError,
        match=r"^the training split has 120 examples, fewer than one "
        r"batch of train.batch_size=512; lower train.batch_size$",
    ):
        train.train_and_evaluate(config, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_skipped_steps_are_counted_on_the_console(tmp_path, capsys):
    # lr 1e30: step 1 leaves huge weights, every later step overflows and is skipped.
    config = tiny_esc50_config(tmp_path, lr=1e30, epochs=1, nan_policy="skip", evaluate_test=False)
    config.model.channels = (8, 16, 16)
    summary = train.train_and_evaluate(config, tmp_path)
    assert "6 of 7 steps skipped (non-finite loss or gradients)" in capsys.readouterr().out
    assert _records(tmp_path / "logs" / summary["run"])[0]["train/skipped_steps"] == 6


def test_a_run_in_progress_is_refused_to_a_second_opener_but_another_name_is_free(tmp_path):
    config = tiny_esc50_config(tmp_path)
    config.run_name = "exp"
    with runs.open_run(tmp_path, config, "train") as (log_dir, resumed):
        assert not resumed
        with pytest.raises(locks.LockedError) as raised, runs.open_run(tmp_path, config, "train"):
            pass
        assert str(raised.value).startswith(f"run {log_dir} is in use by host ")
        assert f" pid {os.getpid()} (lock {log_dir / runs.LOCK_FILE})" in str(raised.value)
        other = tiny_esc50_config(tmp_path)
        other.run_name = "other"
        with runs.open_run(tmp_path, other, "train") as (other_dir, resumed):
            assert other_dir == tmp_path / "other" and not resumed
    with runs.open_run(tmp_path, config, "train") as (again, resumed):  # released: resumable
        assert again == log_dir and resumed
