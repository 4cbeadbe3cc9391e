"""RunLogger outputs, and reading event files back without TensorFlow."""

import json
import os

import numpy as np
import pytest
from tensorboardX.proto import types_pb2

from jaxdl.utils.events import EventFileError, _iter_values, read_hparams, read_scalars
from jaxdl.utils.logging import RunLogger


def test_run_logger_writes_config_scalars_and_jsonl(tmp_path):
    config = {"task": "esc50", "train": {"lr": 0.001, "epochs": 2}}
    with RunLogger(tmp_path, config) as logger:
        for epoch in (1, 2):
            accuracy = np.float32(0.25 * epoch)  # numpy scalars are accepted
            logger.scalars(epoch, {"train/loss": 1.0 / epoch, "val/accuracy": accuracy})
            logger.log_epoch({"epoch": epoch, "val/accuracy": 0.25 * epoch})
        logger.text("notes", "**ok**")
    assert json.loads((tmp_path / "config.json").read_text()) == config
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"epoch": 1, "val/accuracy": 0.25},
        {"epoch": 2, "val/accuracy": 0.5},
    ]
    assert read_scalars(tmp_path) == {
        "train/loss": [(1, 1.0), (2, 0.5)],
        "val/accuracy": [(1, 0.25), (2, 0.5)],
    }


def test_hparams_round_trip_shows_metric_values(tmp_path):
    with RunLogger(tmp_path, {}) as logger:
        logger.scalars(3, {"val/accuracy": 0.5})
        hparams = {"lr": 0.01, "channels": np.int64(32), "opt": "adamw", "bn": True, "sizes": (1, 2)}
        logger.hparams(hparams, {"hparam/best_val_accuracy": 0.75, "hparam/best_val_loss": 0.5})
    assert read_hparams(tmp_path) == {
        "hparams": {"lr": 0.01, "channels": 32.0, "opt": "adamw", "bn": True, "sizes": "(1, 2)"},
        "metrics": {"hparam/best_val_accuracy": 0.75, "hparam/best_val_loss": 0.5},
    }


def test_hparams_event_format_is_what_the_hparams_tab_reads(tmp_path):
    with RunLogger(tmp_path, {}) as logger:
        logger.hparams({"lr": 0.01}, {"hparam/best_val_accuracy": 0.75})
    event_files = list(tmp_path.rglob("events.out.tfevents.*"))
    assert [p.parent for p in event_files] == [tmp_path]  # no timestamp sub-directory
    values = {value.tag: value for _, value in _iter_values(tmp_path)}
    hparams_tags = ("experiment", "session_start_info", "session_end_info")
    assert {f"_hparams_/{tag}" for tag in hparams_tags} <= set(values)
    metric = values["hparam/best_val_accuracy"]
    assert not metric.HasField("simple_value")
    assert metric.metadata.plugin_data.plugin_name == "scalars"
    assert metric.tensor.dtype == types_pb2.DT_FLOAT
    assert list(metric.tensor.tensor_shape.dim) == []
    assert list(metric.tensor.float_val) == [0.75]


def test_two_loggers_in_one_second_keep_both_event_files(tmp_path):
    for step in (1, 2):
        with RunLogger(tmp_path, {}) as logger:
            logger.scalars(step, {"train/loss": float(step)})
    assert read_scalars(tmp_path) == {"train/loss": [(1, 1.0), (2, 2.0)]}


def test_read_scalars_keeps_the_last_write_of_a_step_and_survives_a_truncated_tail(tmp_path):
    with RunLogger(tmp_path, {}) as logger:
        logger.scalars(5, {"train/loss": 9.0})
    with RunLogger(tmp_path, {}) as logger:  # resumed run logs step 5 again
        logger.scalars(5, {"train/loss": 1.0})
    newest = max(tmp_path.glob("events.out.tfevents.*"), key=os.path.getmtime)
    with open(newest, "ab") as f:
        f.write(b"\x10\x00\x00")  # a record cut off mid-header
    assert read_scalars(tmp_path) == {"train/loss": [(5, 1.0)]}


def test_reading_a_directory_without_events_is_a_user_error(tmp_path):
    with pytest.raises(EventFileError, match=str(tmp_path)):
        read_scalars(tmp_path)
