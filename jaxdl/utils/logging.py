"""One run's logs: TensorBoard events (tensorboardX), `config.json` and `metrics.jsonl`.

Everything goes into `log_dir` itself, never a sub-directory, so TensorBoard sees one run per
directory and the HParams tab finds a run's metric values next to its hparams. In a multi-host
run only the primary process writes (`distributed.is_primary`); the others log nowhere.
"""

import json
import numbers
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboardX.proto.tensor_pb2 import TensorProto
from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboardX.proto.types_pb2 import DT_FLOAT
from tensorboardX.summary import hparams as hparams_summaries

from jaxdl.utils import distributed
from jaxdl.utils.files import write_json_atomic

HParamValue = bool | float | str
SCALARS_PLUGIN = "scalars"  # the plugin TensorBoard's Scalars and HParams tabs read


def tensor_scalar_summary(tag: str, value: float) -> Summary:
    """A scalar in TensorFlow 2's form: rank-0 DT_FLOAT `tensor` tagged for the scalars plugin.

    The HParams tab reads metric values through the scalars plugin's data, which this form
    belongs to explicitly (tensorboardX's `add_scalar` writes the older `simple_value`).
    """
    return Summary(
        value=[
            Summary.Value(
                tag=tag,
                tensor=TensorProto(
                    dtype=DT_FLOAT, tensor_shape=TensorShapeProto(), float_val=[float(value)]
                ),
                metadata=SummaryMetadata(
                    plugin_data=SummaryMetadata.PluginData(plugin_name=SCALARS_PLUGIN)
                ),
            )
        ]
    )


def _hparam_value(value: Any) -> HParamValue:
    """A value the hparams plugin can show: bool, number (numpy ones included) or else its str.

    tensorboardX silently drops values that are not Python bool/int/float/str (numpy scalars,
    tuples, None), so they are converted here.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value if isinstance(value, str) else str(value)


class RunLogger:
    """Writes one run's TensorBoard events, resolved config and per-epoch JSON lines.

    Use as a context manager, or call `close()`. Scalars are buffered by tensorboardX and
    reach disk at the latest every 2 minutes and on `close()`; each `metrics.jsonl` line is
    flushed as it is written.
    """

    def __init__(self, log_dir: Path, config: Mapping[str, Any]):
        self.log_dir = Path(log_dir)
        primary = distributed.is_primary()
        if primary:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.log_dir / "config.json", dict(config))
        # tensorboardX names event files by the second and opens them with "wb": a unique
        # suffix keeps a second writer in the same directory (a resume) from truncating one.
        self._writer = SummaryWriter(
            logdir=str(self.log_dir),
            filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}",
            write_to_disk=primary,
        )
        self._jsonl = open(
            self.log_dir / "metrics.jsonl" if primary else os.devnull, "a", encoding="utf-8"
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One scalar per tag at `step`, e.g. {"train/loss": 0.7, "val/accuracy": 0.8}."""
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), step)

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """Append `record` (JSON-serialisable) as one line of `metrics.jsonl`, flushed."""
        self._jsonl.write(json.dumps(dict(record)) + "\n")
        self._jsonl.flush()

    def hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record this run's hyper-parameters and headline metrics for the HParams tab.

        Writes, into `log_dir` itself: the hparams plugin's experiment (hparam and metric names),
        session-start (hparam values) and session-end summaries, and each metric value as a
        tensor-style scalar at step 0. Metric tags should differ from the `scalars()` tags
        (e.g. `hparam/best_val_accuracy`), or their step-0 point joins that curve.
        """
        experiment, session_start, session_end = hparams_summaries(
            {name: _hparam_value(value) for name, value in hparams.items()}, dict(metrics)
        )
        file_writer = self._writer.file_writer
        file_writer.add_summary(experiment)
        file_writer.add_summary(session_start)
        for tag, value in metrics.items():
            file_writer.add_summary(tensor_scalar_summary(tag, value), global_step=0)
        file_writer.add_summary(session_end)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file and `metrics.jsonl`."""
        self._writer.close()
        self._jsonl.close()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
