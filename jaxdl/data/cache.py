"""Where derived data (downloads, generated datasets, feature caches) lives, cache keys, and what
a cached build left out.

A cached folder is built in a temporary sibling and renamed into place in one step, so an
interrupted build is redone on the next run and never half-used. Every entry's name hashes what
its content depends on (the source files' bytes, annotations, settings), and `build_once` lets
one process at a time build an entry: two processes asking for the same one both get it, built
once.

`data.on_corrupt`: "error" stops at a missing or corrupt item with its message and a hint; "skip"
leaves it out. The messages of the items left out are stored in the cached build
(`skipped.txt`), and every load prints their count and the first ones to stderr (absl warnings
are silenced by the command line, so a plain print is what the user sees).
"""

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import ml_collections

from jaxdl.errors import ConfigError, DataError
from jaxdl.utils import locks
from jaxdl.utils.files import write_text_atomic

ON_CORRUPT = ("error", "skip")
SKIPPED_LIST = "skipped.txt"  # in a cached build: one line per item left out, with its problem
_SHOWN = 3  # skipped items named in the printed warning (all are in SKIPPED_LIST)


def cache_root(config: ml_collections.ConfigDict) -> Path:
    """`config.data.cache_dir`, else `$JAXDL_CACHE`, else `~/.cache/jaxdl`."""
    chosen = config.data.cache_dir or os.environ.get("JAXDL_CACHE") or "~/.cache/jaxdl"
    return Path(chosen).expanduser()


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yields an empty temporary folder next to `final`, renamed to `final` when the block succeeds.

    On an exception the temporary folder is deleted and `final` is left as it was. If `final`
    appeared meanwhile (another process finished the same build first), that copy is kept.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield temporary
        try:
            os.rename(temporary, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def build_once(entry: Path, marker: str, build: Callable[[], None], what: str) -> None:
    """Runs `build` unless `entry`/`marker` exists (`build` writes it last, e.g. by renaming
    `entry` into place).

    Under a lock on `.<entry name>.lock` beside `entry`, checked again once held: a second
    process asking for the same entry waits (saying for whom), then finds it built, instead of
    building it too and failing on the first one's rename. The kernel releases the lock of a
    killed builder. `what` names the build in the waiting message.
    """
    if (entry / marker).exists():
        return
    with locks.waiting(entry.parent / f".{entry.name}.lock", what):
        if not (entry / marker).exists():
            build()


class OneLineBuildLog:
    """Mixin for a TFDS builder: prints its `build_message` when a build starts, instead of TFDS's
    "Downloading and preparing dataset Unknown size …" and "… downloaded and prepared" lines."""

    build_message = "building a dataset cache"

    def _log_download_bytes(self) -> None:
        print(self.build_message, flush=True)

    def _log_download_done(self) -> None:
        pass


def fingerprint(*parts: object) -> str:
    """16 hex characters identifying `parts` (bytes, or anything JSON can serialise)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode()
        digest.update(encoded)
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def on_corrupt(config: ml_collections.ConfigDict) -> str:
    """`data.on_corrupt`, checked ("error" or "skip")."""
    policy = config.data.on_corrupt
    if policy not in ON_CORRUPT:
        raise ConfigError(
            f"data.on_corrupt={policy!r} is invalid: expected one of {list(ON_CORRUPT)}"
        )
    return policy


class SkippedItems:
    """The items a cached build leaves out, under `data.on_corrupt`."""

    def __init__(self, policy: str, items: str):
        self._policy, self._items, self.messages = policy, items, []

    def reject(self, err: DataError) -> None:
        """Raises `err` with the hint under "error"; records it under "skip"."""
        if self._policy == "error":
            raise DataError(
                f"{err} (set --config.data.on_corrupt=skip to skip corrupt {self._items})"
            ) from err
        self.messages.append(" ".join(str(err).split()))  # one line each in the list

    def write(self, build_dir: Path) -> None:
        """Stores the messages in the build's folder (before it is renamed into place)."""
        if self.messages:
            write_text_atomic(
                Path(build_dir) / SKIPPED_LIST,
                "".join(f"{message}\n" for message in self.messages),
                every_process=True,
            )


def report_skipped(prepared: Path, what: str, kept: int, listed: int) -> None:
    """Prints to stderr how many of the `listed` items the cached build at `prepared` left out."""
    if kept == listed:
        return
    path = Path(prepared) / SKIPPED_LIST
    messages = path.read_text().splitlines() if path.is_file() else []  # none in older caches
    shown = "; ".join(messages[:_SHOWN]) + ("; …" if len(messages) > _SHOWN else "")
    names = f": {shown} (all listed in {path})" if messages else ""
    print(
        f"warning: {what}: {listed - kept} of {listed} skipped as missing or corrupt "
        f"(data.on_corrupt=skip){names}",
        file=sys.stderr,
        flush=True,
    )
