"""SIGTERM (the usual pre-emption signal of batch schedulers) and Ctrl-C (SIGINT) as a flag the
training loop polls.

The handler only sets a flag: the loop finishes the current step, saves a checkpoint and stops,
so nothing is written from inside a signal handler. A second Ctrl-C aborts at once, without
saving (the checkpoints already complete are kept). With several processes (multi-host) they
must all save at the same step, so jax's preemption sync point decides instead: the SIGTERM
that any process receives (caught by jax since `jax.distributed.initialize`) is shared, and
every process stops at the same step. Several processes without that client (a TPU pod not
joined by `jax.distributed`) could not share the signal, so training refuses to start there.
"""

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import jax
from jax.experimental import multihost_utils

from jaxdl.errors import ConfigError

_WATCHED = (signal.SIGTERM, signal.SIGINT)


class SigtermWatcher:
    def __init__(self):
        self.received: signal.Signals | None = None  # the first stop signal, once one came

    @property
    def requested(self) -> bool:
        return self.received is not None

    def _handle(self, signum, frame) -> None:
        del frame
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            print(
                "\nsecond Ctrl-C: stopping now without saving (the complete checkpoints are kept)",
                file=sys.stderr,
                flush=True,
            )
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)  # dies by SIGINT: the shell sees 130
            return
        if self.received is None:
            self.received = signal.Signals(signum)
            if signum == signal.SIGINT:
                print(
                    "\nCtrl-C: saving a checkpoint after this step (Ctrl-C again to abort at once)",
                    file=sys.stderr,
                    flush=True,
                )

    def stop_at(self, step: int) -> bool:
        """Whether to save and stop after `step` (called after every step, on every process)."""
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested


def check_shared_stop(processes: int, joined: bool) -> None:
    """Refuses several processes that are not joined by `jax.distributed`.

    Each would stop on its own SIGTERM at its own step (or not at all: jax's sync point needs
    the client), so a pre-emption would save no checkpoint. TPU pods run that way when nothing
    calls `jax.distributed.initialize`.
    """
    if processes > 1 and not joined:
        raise ConfigError(
            f"{processes} processes run this job but jax.distributed is not initialised, so a "
            "pre-emption (SIGTERM) would save no checkpoint: set JAXDL_DISTRIBUTED=1 on every "
            "process (jax then finds the others: TPU pod, SLURM, MPI, Kubernetes) or "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (docs/scaling.md)"
        )


@contextlib.contextmanager
def watch_sigterm() -> Iterator[SigtermWatcher]:
    """Within the block SIGTERM and SIGINT set `watcher.received`; the previous handlers are
    restored after.

    Signals can only be handled on the main thread; elsewhere the watcher never fires. With
    several processes jax's own handler stays in place (see the module docstring); several
    processes without it raise ConfigError (`check_shared_stop`).
    """
    check_shared_stop(jax.process_count(), jax.distributed.is_initialized())
    watcher = SigtermWatcher()
    if threading.current_thread() is not threading.main_thread() or jax.process_count() > 1:
        yield watcher
        return
    previous = {sig: signal.signal(sig, watcher._handle) for sig in _WATCHED}
    try:
        yield watcher
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
