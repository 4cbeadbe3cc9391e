"""SHA-256 of source files: what every dataset cache key is built from.

A cache keyed by file names, sizes or times reuses stale features for an edited copy that keeps
them (every real ESC-50 clip is 441,044 bytes), so each load hashes every byte of the files a
split reads. Python's hashlib releases the GIL on buffers over 2 KiB, so a few threads hash
several files at once (about 1 GB/s per core with SHA-NI; benchmarks/cache_warm_start.py).
"""

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

_MAX_THREADS = 8  # beyond this, reading from the page cache is the limit

T = TypeVar("T")
R = TypeVar("R")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (OSError, e.g. FileNotFoundError, if it cannot be read)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def threaded_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(item) for item in items], on a few threads (for I/O and hashing, which drop the GIL).

    Each thread takes one contiguous share: a task per item would cost more than hashing a
    small file (~20 µs for a 7 KB JPEG).
    """
    items = list(items)
    threads = max(1, min(_MAX_THREADS, os.cpu_count() or 1, len(items)))
    share = -(-len(items) // threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        shares = pool.map(
            lambda start: [fn(item) for item in items[start : start + share]],
            range(0, len(items), share or 1),
        )
        return [result for results in shares for result in results]
