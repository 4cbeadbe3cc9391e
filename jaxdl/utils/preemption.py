"""SIGTERM, the usual pre-emption signal of batch schedulers, as a flag the training loop polls.

The handler only sets a flag: the loop finishes the current step, saves a checkpoint and stops,
so nothing is written from inside a signal handler.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator


class SigtermWatcher:
    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self.requested = True


@contextlib.contextmanager
def watch_sigterm() -> Iterator[SigtermWatcher]:
    """Within the block SIGTERM sets `watcher.requested`; the previous handler is restored after.

    Signals can only be handled on the main thread; elsewhere the watcher never fires.
    """
    watcher = SigtermWatcher()
    if threading.current_thread() is not threading.main_thread():
        yield watcher
        return
    previous = signal.signal(signal.SIGTERM, watcher._handle)
    try:
        yield watcher
    finally:
        signal.signal(signal.SIGTERM, previous)
