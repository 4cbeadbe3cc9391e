"""Atomic writes and never-reused run directories, under faults: full disk, failed syscalls,
races."""

import csv
import errno
import json
import os
import threading

import pytest

from jaxdl.errors import JaxdlError
from jaxdl.utils import files
from jaxdl.utils.files import (
    unique_dir,
    write_bytes_atomic,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)

_REAL_WRITE = os.write


def _disk_fills_after_some_bytes(fd: int, data) -> int:
    """os.write that stores part of the data, then fails as a full disk does on the next call."""
    if len(data) > 1:
        return _REAL_WRITE(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


WRITERS = {
    "json": (lambda path: write_json_atomic(path, {"new": list(range(1000))})),
    "csv": (lambda path: write_csv_atomic(path, [{"a": i} for i in range(1000)], ["a"])),
    "text": (lambda path: write_text_atomic(path, "new\n" * 1000)),
    "bytes": (lambda path: write_bytes_atomic(path, b"new" * 1000)),
}


def test_atomic_writes_replace_content(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2, "b": [1, 2]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1, 2]}
    write_text_atomic(tmp_path / "note.md", "héllo\n")
    assert (tmp_path / "note.md").read_text(encoding="utf-8") == "héllo\n"
    rows = [{"class": "dog", "f1": 0.5}, {"class": "cat", "f1": 1.0}]
    write_csv_atomic(tmp_path / "report.csv", rows, ["class", "f1"])
    with open(tmp_path / "report.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [
            {"class": "dog", "f1": "0.5"},
            {"class": "cat", "f1": "1.0"},
        ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.md", "report.csv", "summary.json"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)  # readable by others, unlike mkstemp's


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_disk_full_mid_write_keeps_the_old_file_and_says_so(tmp_path, monkeypatch, writer):
    path = tmp_path / "summary.out"
    path.write_text("old content\n")
    monkeypatch.setattr(files.os, "write", _disk_fills_after_some_bytes)
    with pytest.raises(JaxdlError, match="disk is full") as raised:
        WRITERS[writer](path)
    monkeypatch.undo()
    assert str(path) in str(raised.value) and "previous content is kept" in str(raised.value)
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.out"]  # no temp file left


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_disk_full_at_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch, broken):
    path = tmp_path / "config.json"
    write_json_atomic(path, {"old": True})
    monkeypatch.setattr(files.os, broken, _fail_with(errno.ENOSPC))
    with pytest.raises(JaxdlError, match=f"cannot write {path}: the disk is full"):
        write_json_atomic(path, {"new": True})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_disk_full_on_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(files.os, "write", _disk_fills_after_some_bytes)
    with pytest.raises(JaxdlError, match="disk is full") as raised:
        write_text_atomic(tmp_path / "report.md", "x" * 100)
    assert "previous content" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_other_os_errors_are_not_reported_as_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"old": True})
    monkeypatch.setattr(files.os, "fsync", _fail_with(errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        write_json_atomic(path, {"new": True})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unserialisable_json_keeps_old_content(tmp_path):
    path = tmp_path / "config.json"
    write_json_atomic(path, {"old": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"new": object()})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_unique_dir_never_reuses_a_name(tmp_path):
    made = [unique_dir(tmp_path / "logs", "esc50-train") for _ in range(3)]
    assert [p.name for p in made] == ["esc50-train", "esc50-train-2", "esc50-train-3"]
    assert all(p.is_dir() for p in made)


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path):
    """Run names carry a timestamp to the second: simultaneous runs ask for the same name."""
    (tmp_path / "esc50_train").mkdir()
    (tmp_path / "esc50_train" / "metrics.jsonl").write_text("earlier run\n")
    workers = 8
    start = threading.Barrier(workers)
    made = []

    def claim():
        start.wait()
        made.append(unique_dir(tmp_path, "esc50_train"))

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in made) == sorted(f"esc50_train-{i}" for i in range(2, workers + 2))
    assert all(not any(p.iterdir()) for p in made)  # each one new and empty
    assert (tmp_path / "esc50_train" / "metrics.jsonl").read_text() == "earlier run\n"


def test_unique_dir_on_a_full_disk_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(files.Path, "mkdir", _fail_with(errno.ENOSPC))
    with pytest.raises(
        JaxdlError, match=f"cannot write {tmp_path / 'logs' / 'run'}: the disk is full"
    ):
        unique_dir(tmp_path / "logs", "run")


def test_a_full_disk_is_recognised_through_the_errors_libraries_wrap_it_in():
    """TensorStore (under Orbax) raises ValueError("RESOURCE_EXHAUSTED: ... No space left on
    device ..."); an out-of-memory RESOURCE_EXHAUSTED is not a full disk."""
    tensorstore = ValueError(
        'RESOURCE_EXHAUSTED: Error writing local file "ck/3/state": Failed '
        "to write 6651 bytes to file 4: No space left on device "
        "[os_error_code='28']"
    )
    assert files.is_disk_full(tensorstore)
    assert not files.is_disk_full(ValueError("RESOURCE_EXHAUSTED: Out of memory allocating 4 GiB"))
    try:
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        except OSError as quota:
            raise RuntimeError("save failed") from quota
    except RuntimeError as wrapped:
        assert files.is_disk_full(wrapped)
    assert not files.is_disk_full(OSError(errno.EIO, os.strerror(errno.EIO)))
