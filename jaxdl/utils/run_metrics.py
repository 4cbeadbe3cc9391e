"""A run's per-epoch records read back from its `metrics.jsonl`: the one source of curves.

`RunLogger.log_epoch` appends one JSON object per line and flushes it, and a resumed training
rewrites the file to hold exactly its checkpointed epochs, so a complete file is one record per
epoch. A run killed while writing may leave its last line cut short: that line has no newline and
is skipped with a warning. Any other line that is not a JSON object with an `epoch` is an error.
"""

import json
import pathlib
import sys

from jaxdl.errors import DataError

METRICS_FILE = "metrics.jsonl"


def _record(path: pathlib.Path, number: int, line: str) -> dict:
    """Line `number` of `path` as a record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}, line {number}: not JSON ({e.msg}, column {e.colno}); the file "
            "is corrupt: restore it, or rerun the training that wrote it"
        ) from e
    if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
        raise DataError(
            f"{path}, line {number}: expected a JSON object with an integer 'epoch' "
            f"(one line per epoch, as jaxdl writes them), got {line[:80]!r}"
        )
    return record


def read_history(log_dir: str | pathlib.Path) -> list[dict]:
    """The records of `log_dir/metrics.jsonl` in the order written, e.g. {"epoch": 1,
    "train/loss": 2.1, "val/loss": 2.2, "val/accuracy": 0.3, ...}."""
    path = pathlib.Path(log_dir) / METRICS_FILE
    if not path.is_file():
        raise DataError(
            f"{log_dir} holds no {METRICS_FILE}: not a jaxdl training run (train, "
            "grid_search and compare write one line per epoch there)"
        )
    # Undecodable bytes become U+FFFD, so a damaged line is reported by its number like any other.
    *lines, tail = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    records = [_record(path, n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if tail.strip():
        try:
            records.append(_record(path, len(lines) + 1, tail))
        except DataError:
            print(
                f"warning: {path}, line {len(lines) + 1}: cut short (no newline after it; a run "
                "stopped while writing it?): ignored",
                file=sys.stderr,
                flush=True,
            )
    return records


def curve(history: list[dict], key: str) -> list[tuple[int, float]]:
    """[(epoch, value), ...] of `key` (e.g. "val/loss") over the records that hold it."""
    return [(record["epoch"], record[key]) for record in history if key in record]
