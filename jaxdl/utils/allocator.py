"""On Linux the command line runs under mimalloc, which keeps freed memory for the next step.

XLA:CPU's Eigen convolutions allocate their packing buffers (hundreds of MB each at the course
models' sizes) on every call. glibc's malloc maps such blocks fresh and unmaps them when freed,
so every train step page-faults in about 1 GB of zeroed memory (242,000 minor faults per ESC-50
step). mimalloc with purging off (`MIMALLOC_PURGE_DELAY=-1`) hands the same pages back to the
next call: training 1.14-1.26× faster on the 2-core Intel Xeon development machine, for a peak
memory 5-80 % higher (docs/xla-cpu-traps.md). glibc's own settings that keep freed memory doubled
the peak and ran CUB-200 out of memory; mimalloc's stayed within 3 % there.

An allocator can only be chosen when a process starts, so `run_under_mimalloc` re-executes the
command with mimalloc preloaded, before anything is imported or printed. `JAXDL_ALLOCATOR=system`
keeps glibc's malloc; where the `cmeel-mimalloc` wheel is not installed nothing changes.
"""

import importlib.metadata
import os
import pathlib
import sys

ALLOCATOR_ENV = "JAXDL_ALLOCATOR"  # "mimalloc" (the default on Linux) or "system"
LIBRARY_NAME = "libmimalloc.so"


def mimalloc_library() -> pathlib.Path | None:
    """The shared library installed by the `cmeel-mimalloc` wheel, or None without it."""
    try:
        files = importlib.metadata.distribution("cmeel-mimalloc").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [file for file in files if file.name == LIBRARY_NAME]
    if not found:
        return None
    path = pathlib.Path(found[0].locate()).resolve()
    return path if path.is_file() else None


def run_under_mimalloc() -> None:
    """Re-executes this process's command with mimalloc preloaded, unless it already runs under
    it, the platform is not Linux, the library is missing or `JAXDL_ALLOCATOR=system`. Returns
    only when nothing is to be done. Call it first thing in a `__main__`, never in a library."""
    choice = os.environ.get(ALLOCATOR_ENV, "mimalloc")
    if choice not in ("mimalloc", "system"):
        print(f"error: {ALLOCATOR_ENV}={choice!r}: expected mimalloc or system", file=sys.stderr)
        sys.exit(2)
    if sys.platform != "linux" or choice == "system":
        return
    library = mimalloc_library()
    if library is None or str(library) in os.environ.get("LD_PRELOAD", "").split(":"):
        return
    environment = mimalloc_environment(library, os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environment)


def mimalloc_environment(library: pathlib.Path, base: dict[str, str]) -> dict[str, str]:
    """`base` with `library` first in `LD_PRELOAD` and purging off (unless `base` sets it): how
    the command line runs, and how `benchmarks/run.py` can run the torch twin."""
    preloaded = [entry for entry in base.get("LD_PRELOAD", "").split(":") if entry]
    environment = dict(base, LD_PRELOAD=":".join([str(library), *preloaded]))
    environment.setdefault("MIMALLOC_PURGE_DELAY", "-1")  # keep freed pages for reuse
    return environment


def in_use() -> str:
    """Which malloc this process runs under, "mimalloc" or "system" (`--mode=bench` records it)."""
    try:
        maps = pathlib.Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return "system"
    return "mimalloc" if LIBRARY_NAME in maps else "system"
