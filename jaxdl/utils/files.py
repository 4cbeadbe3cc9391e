"""Atomic file writes and never-overwriting directories, so no output is ever half-written.

A write goes to a temporary file in the target's directory, is fsynced, then `os.replace`d over
the target: readers see the old content or the new, never a mix. On any failure (disk full,
unserialisable value, interruption) the temporary file is removed and the target is untouched;
a full disk is reported as a JaxdlError that says so and names the file.

In a multi-host run only the primary process writes (`distributed.is_primary`): outputs (logs,
summaries, figures) go to a workdir every host shares, and one copy is enough. A file that every
process needs on its own disk (a data cache being built) is written with `every_process=True`.
"""

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxdl.errors import JaxdlError
from jaxdl.utils import distributed

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Libraries that wrap the OS error in their own (TensorStore, under Orbax) keep its text.
_DISK_FULL_TEXT = tuple(os.strerror(code) for code in _DISK_FULL)


def is_disk_full(err: BaseException) -> bool:
    """Whether `err`, or an exception it was raised from, says "no space left" / "quota
    exceeded"."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL:
            return True
        if any(text in str(err) for text in _DISK_FULL_TEXT):
            return True
        err = err.__cause__ or err.__context__
    return False


@contextlib.contextmanager
def _disk_full_is_an_error(path: Path) -> Iterator[None]:
    """Turns "no space left" / "quota exceeded" into one clear message naming `path`."""
    try:
        yield
    except OSError as err:
        if not is_disk_full(err):
            raise
        kept = " (its previous content is kept)" if path.exists() else ""
        raise JaxdlError(
            f"cannot write {path}: the disk is full ({err.strerror}){kept}; "
            "free some space and run again"
        ) from err


def write_bytes_atomic(path: Path, data: bytes, every_process: bool = False) -> None:
    """Replace `path` with `data` atomically (same-directory temp file, fsync, os.replace).

    A full disk raises JaxdlError naming `path`; `path` keeps its old content either way.
    Only the primary process writes, unless `every_process`.
    """
    if not (every_process or distributed.is_primary()):
        return
    path = Path(path)
    with _disk_full_is_an_error(path):
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            try:
                os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from others
                view = memoryview(data)
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str, every_process: bool = False) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"), every_process)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as indented JSON atomically (serialised before any write)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def write_csv_atomic(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    fieldnames: Sequence[str],
    every_process: bool = False,
) -> None:
    """Replace `path` with a CSV of `rows` (header and column order: `fieldnames`) atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue(), every_process)


def unique_dir(parent: Path, name: str) -> Path:
    """Create and return `parent/name`, or `name-2`, `name-3`, … if taken; never reuses one.

    `mkdir` without `exist_ok` is atomic, so two runs cannot claim the same directory. The
    processes of one multi-host run share the directory the primary one claimed (with its name).
    """
    return Path(distributed.from_primary(lambda: str(_claim_dir(Path(parent), name))))


def _claim_dir(parent: Path, name: str) -> Path:
    with _disk_full_is_an_error(parent / name):
        parent.mkdir(parents=True, exist_ok=True)
        suffix = 1
        while True:
            candidate = parent / (name if suffix == 1 else f"{name}-{suffix}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                suffix += 1
