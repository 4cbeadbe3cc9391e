"""SIGTERM, the usual pre-emption signal of batch schedulers, as a flag the training loop polls.

The handler only sets a flag: the loop finishes the current step, saves a checkpoint and stops,
so nothing is written from inside a signal handler. With several processes (multi-host) they
must all save at the same step, so jax's preemption sync point decides instead: the SIGTERM
that any process receives (caught by jax since `jax.distributed.initialize`) is shared, and
every process stops at the same step.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

import jax
from jax.experimental import multihost_utils


class SigtermWatcher:
    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self.requested = True

    def stop_at(self, step: int) -> bool:
        """Whether to save and stop after `step` (called after every step, on every process)."""
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested


@contextlib.contextmanager
def watch_sigterm() -> Iterator[SigtermWatcher]:
    """Within the block SIGTERM sets `watcher.requested`; the previous handler is restored after.

    Signals can only be handled on the main thread; elsewhere the watcher never fires. With
    several processes jax's own handler stays in place (see the module docstring).
    """
    watcher = SigtermWatcher()
    if threading.current_thread() is not threading.main_thread() or jax.process_count() > 1:
        yield watcher
        return
    previous = signal.signal(signal.SIGTERM, watcher._handle)
    try:
        yield watcher
    finally:
        signal.signal(signal.SIGTERM, previous)
