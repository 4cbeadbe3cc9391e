"""How JAX runs for a jaxdl run (`config.runtime`): the persistent compilation cache and the float32
matmul precision. `configure` applies both before a mode compiles anything; docs/compile-cache.md
says where the cache lives and why reusing it is safe.

The cache folder is keyed by what JAX's own cache key leaves out: JAX hashes the program, jaxlib's
version, the backend and its devices, XLA flags and compile options, but not the host CPU an
XLA:CPU program was compiled for, so a program using AVX-512 could be loaded on a host without it.
Entries therefore live in `<base>/jax-<v>_jaxlib-<v>/<arch>-<CPU fingerprint>/`: another jax
version or machine writes its own folder and never reads this one.
"""

import hashlib
import importlib.util
import os
import pathlib
import platform
import sys
import tempfile

import jax
import jaxlib
import ml_collections
from jax.experimental.compilation_cache import compilation_cache

from jaxdl.checks import check, check_choice
from jaxdl.data.cache import cache_root
from jaxdl.errors import ConfigError

ENV = "JAXDL_COMPILE_CACHE"  # a folder, "auto" or "off"; overrides runtime.compile_cache
MATMUL_PRECISIONS = ("default", "high", "highest")

# Programs that compile faster than this are not written: in the README's train run the small
# ones (random-key splits, casts, broadcasts: 20-100 ms each) are 20 of 24 programs but 10 % of
# the compile time, and every entry costs two files and a slot in the eviction scan.
MIN_COMPILE_SECONDS = 0.1
# Least recently used entries are deleted beyond this (JAX's LRU bound, which needs `filelock`;
# its lock also serialises the folder's readers and writers across processes). Every write scans
# all entries (~70 us each): at 256 MiB of CPU entries (10-160 kB) that is ~0.3 s per write.
MAX_BYTES = 256 << 20
# Set through jax's own variables, these win over jaxdl's values (the test suite caches all).
_TUNABLES = {
    "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS,
    "jax_compilation_cache_max_size": MAX_BYTES,
}
# The precision jax started with ($JAX_DEFAULT_MATMUL_PRECISION or none), which "default" keeps.
_START_PRECISION = jax.config.jax_default_matmul_precision
# /proc/cpuinfo fields that say which instructions compiled code may use and what it is tuned for.
_CPU_FIELDS = (
    "vendor_id",
    "cpu family",
    "model",
    "model name",
    "flags",
    "CPU implementer",
    "CPU architecture",
    "CPU variant",
    "CPU part",
    "Features",
)


def check_config(config: ml_collections.ConfigDict) -> None:
    """runtime.compile_cache: "auto", "off" or a folder; runtime.matmul_precision: a choice."""
    value = config.runtime.compile_cache
    check(
        isinstance(value, str) and value.strip() != "",
        "runtime.compile_cache",
        value,
        "'auto' (beside the data cache), 'off', or a folder",
    )
    check_choice(config, "runtime.matmul_precision", MATMUL_PRECISIONS)


def cpu_fingerprint(cpuinfo: str | None = None) -> str:
    """12 hex digits naming this host's CPU model and instruction-set flags (the first processor of
    /proc/cpuinfo; elsewhere, what `platform` knows). `cpuinfo` is /proc/cpuinfo's text."""
    if cpuinfo is None:
        try:
            cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    first = cpuinfo.strip().split("\n\n")[0]
    fields = dict(line.partition(":")[::2] for line in first.splitlines())
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    described = [f"{key}={fields[key]}" for key in _CPU_FIELDS if key in fields]
    if not described:
        described = [platform.machine(), platform.processor()]
    return hashlib.sha256("\n".join(described).encode()).hexdigest()[:12]


def keyed_folder(base: pathlib.Path) -> pathlib.Path:
    """The folder under `base` for this jax, jaxlib and host CPU."""
    versions = f"jax-{jax.__version__}_jaxlib-{jaxlib.__version__}"
    return base / versions / f"{platform.machine()}-{cpu_fingerprint()}"


def cache_base(config: ml_collections.ConfigDict) -> pathlib.Path | None:
    """$JAXDL_COMPILE_CACHE, else runtime.compile_cache, as a folder: "auto" is `xla/` in the data
    cache root; "off" is None. ConfigError naming the setting if it names a file."""
    value = os.environ.get(ENV, "").strip()
    if value:
        source, fix = f"${ENV}", f"set ${ENV} to a folder or to off"
    else:
        value, source = config.runtime.compile_cache, "runtime.compile_cache"
        fix = "pass --config.runtime.compile_cache=<a folder> or =off"
    if value == "off":
        return None
    base = cache_root(config) / "xla" if value == "auto" else pathlib.Path(value).expanduser()
    existing = next(p for p in (base, *base.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"{source}={value!r} is invalid: expected 'auto', 'off' or a folder, and {existing} is "
            f"a file; {fix}"
        )
    return base.absolute()


def _writable(folder: pathlib.Path) -> str | None:
    """None if a file can be created in `folder` (created if missing), else why not. A real write,
    not os.access: root passes os.access on read-only folders, and read-only mounts fail only
    here."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as err:
        return err.strerror or str(err)


def use_compile_cache(folder: pathlib.Path | None) -> pathlib.Path | None:
    """Points JAX's persistent compilation cache at `folder` (None: off) for the programs compiled
    from now on, and returns the folder in use. A folder that cannot be written is left unused
    with one warning line: the run compiles as without a cache."""
    if folder is not None and (why := _writable(folder)) is not None:
        print(
            f"warning: compile cache {folder} is not writable ({why}): compiling without it; "
            f"point --config.runtime.compile_cache or ${ENV} to a writable folder, or set it "
            "to off",
            file=sys.stderr,
        )
        folder = None
    for name, value in _TUNABLES.items():
        if name.upper() not in os.environ:
            jax.config.update(name, value)
    if importlib.util.find_spec("filelock") is None:  # JAX's LRU bound cannot lock without it
        jax.config.update("jax_compilation_cache_max_size", -1)
    jax.config.update("jax_enable_compilation_cache", folder is not None)
    jax.config.update("jax_compilation_cache_dir", None if folder is None else str(folder))
    compilation_cache.reset_cache()  # JAX opens its cache once; the next compile reopens it here
    return folder


def set_matmul_precision(precision: str) -> None:
    """jax's default precision of float32 matmuls and convolutions ("default": the backend's)."""
    jax.config.update(
        "jax_default_matmul_precision", _START_PRECISION if precision == "default" else precision
    )


def configure(config: ml_collections.ConfigDict, compiles: bool = True) -> None:
    """Applies `config.runtime`; the compilation cache only for a mode that `compiles` (the others
    leave no cache folder behind)."""
    set_matmul_precision(config.runtime.matmul_precision)
    if compiles:
        base = cache_base(config)
        use_compile_cache(None if base is None else keyed_folder(base))
