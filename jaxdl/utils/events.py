"""Read a run's TensorBoard event files back, with only tensorboardX's bundled protobufs.

No TensorFlow and no tensorboard package: an event file is a sequence of records
(u64 length, u32 length-CRC, payload, u32 payload-CRC), each payload an `Event` proto.
A run's `log_dir` is walked recursively, so tensorboardX's sub-directories (`add_scalars`,
`add_hparams`) and several files from a resumed run are read together.
"""

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorboardX.proto import event_pb2, types_pb2
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.proto.tensor_pb2 import TensorProto

from jaxdl.errors import JaxdlError

SCALARS_PLUGIN = "scalars"
HPARAMS_PLUGIN = "hparams"
_HEADER = struct.Struct("<QI")  # payload length, CRC of the length
_CRC_BYTES = 4
_TENSOR_DTYPES = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64}


class EventFileError(JaxdlError):
    """A log directory has no event files, or one of them is corrupt."""


def _event_files(log_dir: Path) -> list[Path]:
    log_dir = Path(log_dir)
    files = sorted(p for p in log_dir.rglob("events.out.tfevents.*") if p.is_file())
    if not files:
        raise EventFileError(f"no TensorBoard event files (events.out.tfevents.*) under {log_dir}")
    return files


def _read_events(path: Path) -> Iterator[event_pb2.Event]:
    """Events of one file; a truncated last record (a run still writing) ends the file."""
    with open(path, "rb") as f:
        while len(header := f.read(_HEADER.size)) == _HEADER.size:
            length, _ = _HEADER.unpack(header)
            payload = f.read(length)
            if len(payload) < length or len(f.read(_CRC_BYTES)) < _CRC_BYTES:
                return
            try:
                yield event_pb2.Event.FromString(payload)
            except DecodeError as e:
                raise EventFileError(f"corrupt TensorBoard event file {path}: {e}") from e


def _iter_values(log_dir: Path) -> Iterator[tuple[event_pb2.Event, Summary.Value]]:
    """(event, summary value) pairs of every event file under `log_dir`."""
    for path in _event_files(log_dir):
        for event in _read_events(path):
            for value in event.summary.value:
                yield event, value


def _tensor_scalar(tensor: TensorProto) -> float | None:
    """The value of a rank-0 float tensor (`float_val`, `double_val` or `tensor_content`)."""
    dtype = _TENSOR_DTYPES.get(tensor.dtype)
    if dtype is None or tensor.tensor_shape.dim:
        return None
    content = tensor.tensor_content
    if content:
        values = np.frombuffer(content, dtype) if len(content) == np.dtype(dtype).itemsize else ()
    else:
        values = tensor.float_val if dtype is np.float32 else tensor.double_val
    return float(values[0]) if len(values) == 1 else None


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), …]} with steps sorted, from every event file under `log_dir`.

    Reads `simple_value` scalars and tensor-style ones (scalars-plugin metadata, which TF
    writes only on a tag's first value). Where a step was logged twice (a resumed run), the
    value written last wins.
    """
    scalar_tags: set[str] = set()
    latest: dict[str, dict[int, tuple[float, float]]] = {}  # tag -> step -> (wall_time, value)
    for event, value in _iter_values(log_dir):
        if value.metadata.plugin_data.plugin_name == SCALARS_PLUGIN:
            scalar_tags.add(value.tag)
        if value.HasField("simple_value"):
            number = value.simple_value
        elif value.HasField("tensor") and value.tag in scalar_tags:
            number = _tensor_scalar(value.tensor)
        else:
            continue
        if number is None:
            continue
        steps = latest.setdefault(value.tag, {})
        if event.step not in steps or event.wall_time >= steps[event.step][0]:
            steps[event.step] = (event.wall_time, number)
    return {
        tag: [(step, number) for step, (_, number) in sorted(steps.items())]
        for tag, steps in sorted(latest.items())
    }


def read_hparams(log_dir: Path) -> dict[str, dict]:
    """{"hparams": {name: value}, "metrics": {tag: last value or None}} of the run in `log_dir`.

    Hparam values come from the session-start summary, metric names from the experiment
    summary, and metric values from the scalars with those tags (None if none was written).
    Both dicts are empty when the run has no hparams.
    """
    hparams: dict[str, bool | float | str] = {}
    metric_tags: list[str] = []
    for _, value in _iter_values(log_dir):
        if value.metadata.plugin_data.plugin_name != HPARAMS_PLUGIN:
            continue
        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
        if data.HasField("session_start_info"):
            for name, hparam in data.session_start_info.hparams.items():
                hparams[name] = json_format.MessageToDict(hparam)
        elif data.HasField("experiment"):
            metric_tags = [info.name.tag for info in data.experiment.metric_infos]
    scalars = read_scalars(log_dir) if metric_tags else {}
    metrics = {tag: scalars[tag][-1][1] if tag in scalars else None for tag in metric_tags}
    return {"hparams": hparams, "metrics": metrics}
