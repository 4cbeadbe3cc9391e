"""OS locks on folders, so two processes never write one run or build one cache together.

A lock is `fcntl.flock` on a small file (`<folder>.lock` beside the folder, or any path given):
the kernel releases it when the holder exits, however it exits (SIGKILL included), so a lock is
never left stale. The holder writes its host and PID into the file, which is what the refusal
names. `flock` works on local disks and on the network filesystems of current Linux clusters
(NFSv4 maps it to a byte-range lock).
"""

import contextlib
import fcntl
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from jaxdl.errors import JaxdlError


class LockedError(JaxdlError):
    """Another process holds the lock (exit status 2: nothing was written)."""


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def _record_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)


@contextlib.contextmanager
def _held(lock_file: Path, on_busy: Callable[[Path, int], None]) -> Iterator[None]:
    """Holds `lock_file` for the block; `on_busy(lock_file, fd)` runs when another process holds
    it, and either raises or takes the lock itself."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_busy(lock_file, fd)
        _record_holder(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def exclusive(lock_file: Path, what: str) -> contextlib.AbstractContextManager[None]:
    """Holds `lock_file` for the block, or raises LockedError naming the holder at once.

    For things only one process may do at a time (train one run): a second one must not wait.
    """

    def refuse(path: Path, fd: int) -> None:
        raise LockedError(
            f"{what} is in use by {_holder(path)} (lock {path}); "
            "wait for it to finish or stop it, then run again"
        )

    return _held(lock_file, refuse)


def waiting(lock_file: Path, what: str) -> contextlib.AbstractContextManager[None]:
    """Holds `lock_file` for the block, waiting (and saying so) while another process holds it.

    For work that two processes may both ask for (build one cache): the second waits, then
    finds the first one's result.
    """

    def wait(path: Path, fd: int) -> None:
        print(
            f"waiting for {_holder(path)} to finish {what} (lock {path})",
            file=sys.stderr,
            flush=True,
        )
        fcntl.flock(fd, fcntl.LOCK_EX)

    return _held(lock_file, wait)
