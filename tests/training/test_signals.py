"""Ctrl-C: the first one is a request to save and stop (as SIGTERM), a second one aborts at once."""

import signal
import subprocess
import sys
import textwrap

from jaxdl.utils import preemption
from tests.helpers import REPO

_TWO_CTRL_C = textwrap.dedent("""
    import os, signal, time
    from jaxdl.utils import preemption
    with preemption.watch_sigterm() as watcher:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # Python runs the handler between bytecodes
        print(watcher.received.name, watcher.stop_at(1), flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
    print("still running", flush=True)
""")


def test_a_second_ctrl_c_aborts_at_once():
    result = subprocess.run(
        [sys.executable, "-c", _TWO_CTRL_C], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.stdout == "SIGINT True\n"  # the first one: noted, polled by the loop
    assert result.returncode == -signal.SIGINT  # killed by it: a shell reports 130
    assert (
        "Ctrl-C: saving a checkpoint after this step (Ctrl-C again to abort at once)"
        in result.stderr
    )
    assert "second Ctrl-C: stopping now without saving" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_is_noted_and_the_handlers_are_restored_after_the_block():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with preemption.watch_sigterm() as watcher:
        assert not watcher.stop_at(1)
        signal.raise_signal(signal.SIGTERM)
        assert watcher.received == signal.SIGTERM and watcher.stop_at(2)
    assert {sig: signal.getsignal(sig) for sig in before} == before
