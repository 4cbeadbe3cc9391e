"""Where derived data (downloads, generated datasets, feature caches) lives, and cache keys.

A cached folder is built in a temporary sibling and renamed into place in one step, so an
interrupted build is redone on the next run and never half-used.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ml_collections


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


def fingerprint(*parts: object) -> str:
    """16 hex characters identifying `parts` (bytes, or anything JSON can serialise)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode()
        digest.update(encoded)
        digest.update(b"\x00")
    return digest.hexdigest()[:16]
