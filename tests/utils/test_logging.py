"""RunLogger outputs, read back with TensorBoard's own reader."""

import json

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.util import tensor_util
from tensorboardX.proto import types_pb2

from jaxdl.utils.logging import RunLogger
from tests.helpers import tensorboard_hparams, tensorboard_scalars


def test_run_logger_writes_config_scalars_and_jsonl(tmp_path):
    config = {"task": "esc50", "train": {"lr": 0.001, "epochs": 2}}
    with RunLogger(tmp_path, config) as logger:
        for epoch in (1, 2):
            accuracy = np.float32(0.25 * epoch)  # numpy scalars are accepted
            logger.scalars(epoch, {"train/loss": 1.0 / epoch, "val/accuracy": accuracy})
            logger.log_epoch({"epoch": epoch, "val/accuracy": 0.25 * epoch})
    assert json.loads((tmp_path / "config.json").read_text()) == config
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"epoch": 1, "val/accuracy": 0.25},
        {"epoch": 2, "val/accuracy": 0.5},
    ]
    assert tensorboard_scalars(tmp_path) == {
        "train/loss": [(1, 1.0), (2, 0.5)],
        "val/accuracy": [(1, 0.25), (2, 0.5)],
    }


def test_hparams_round_trip_shows_metric_values(tmp_path):
    with RunLogger(tmp_path, {}) as logger:
        logger.scalars(3, {"val/accuracy": 0.5})
        hparams = {
            "lr": 0.01,
            "channels": np.int64(32),
            "opt": "adamw",
            "bn": True,
            "sizes": (1, 2),
        }
        logger.hparams(hparams, {"hparam/best_val_accuracy": 0.75, "hparam/best_val_loss": 0.5})
    assert tensorboard_hparams(tmp_path) == {
        "hparams": {"lr": 0.01, "channels": 32.0, "opt": "adamw", "bn": True, "sizes": "(1, 2)"},
        "metrics": {"hparam/best_val_accuracy": 0.75, "hparam/best_val_loss": 0.5},
    }


def test_hparams_event_format_is_what_the_hparams_tab_reads(tmp_path):
    with RunLogger(tmp_path, {}) as logger:
        logger.hparams({"lr": 0.01}, {"hparam/best_val_accuracy": 0.75})
    event_files = list(tmp_path.rglob("events.out.tfevents.*"))
    assert [p.parent for p in event_files] == [tmp_path]  # no timestamp sub-directory
    accumulator = event_accumulator.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    hparams_tags = (
        metadata.EXPERIMENT_TAG,
        metadata.SESSION_START_INFO_TAG,
        metadata.SESSION_END_INFO_TAG,
    )
    assert set(accumulator.PluginTagToContent(metadata.PLUGIN_NAME)) == set(hparams_tags)
    # The metric value: a rank-0 DT_FLOAT tensor of the scalars plugin, not a `simple_value`.
    assert "hparam/best_val_accuracy" not in accumulator.Tags()["scalars"]
    metric_metadata = accumulator.SummaryMetadata("hparam/best_val_accuracy")
    assert metric_metadata.plugin_data.plugin_name == "scalars"
    (event,) = accumulator.Tensors("hparam/best_val_accuracy")
    assert event.step == 0 and event.tensor_proto.dtype == types_pb2.DT_FLOAT
    assert list(event.tensor_proto.tensor_shape.dim) == []
    assert list(event.tensor_proto.float_val) == [0.75]
    assert tensor_util.make_ndarray(event.tensor_proto).shape == ()


def test_two_loggers_in_one_second_keep_both_event_files(tmp_path):
    for step in (1, 2):
        with RunLogger(tmp_path, {}) as logger:
            logger.scalars(step, {"train/loss": float(step)})
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert tensorboard_scalars(tmp_path) == {"train/loss": [(1, 1.0), (2, 2.0)]}
