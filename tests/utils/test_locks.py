"""OS locks between real processes: a held lock is refused naming its holder, and a holder that
dies (SIGKILL included) leaves the lock free."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from jaxdl.utils import locks
from tests.helpers import REPO

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from jaxdl.utils import locks
    with locks.exclusive(Path(sys.argv[1]), "the test folder"):
        print("held", flush=True)
        time.sleep(600)
""")


def _start_holder(lock_file) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock_file)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "held\n"
    return process


def test_a_held_lock_is_refused_naming_the_holder_then_free_after_sigkill(tmp_path):
    lock_file = tmp_path / "run.lock"
    holder = _start_holder(lock_file)
    try:
        with pytest.raises(locks.LockedError) as raised, locks.exclusive(lock_file, "the folder"):
            pass
        message = str(raised.value)
        assert f"host {socket.gethostname()} pid {holder.pid}" in message
        assert message.startswith("the folder is in use by") and str(lock_file) in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with locks.exclusive(lock_file, "the folder"):  # the kernel released the dead holder's lock
        assert lock_file.read_text() == f"host {socket.gethostname()} pid {os.getpid()}\n"


def test_waiting_takes_the_lock_once_the_holder_exits(tmp_path, capsys):
    lock_file = tmp_path / "cache.lock"
    holder = _start_holder(lock_file)
    threading.Timer(0.5, holder.send_signal, (signal.SIGTERM,)).start()
    started = time.monotonic()
    with locks.waiting(lock_file, "building the cache"):
        waited = time.monotonic() - started
    holder.wait()
    assert waited >= 0.4
    assert (
        f"waiting for host {socket.gethostname()} pid {holder.pid} to finish building the "
        "cache" in capsys.readouterr().err
    )
