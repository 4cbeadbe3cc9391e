"""The software and devices of the machine that writes the report (template §0).

Runs do not record their environment, so the report states the one it was generated on and says
so; on the machine that trained, that is the training environment.
"""

import collections
import importlib.metadata
import platform

import jax

# Always listed (the course asks for these); accelerator plugins only where installed.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")
OPTIONAL_PACKAGES = ("jax-cuda12-plugin", "jax-cuda13-plugin", "libtpu")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """python, package versions, platform, JAX backend, device kinds with their counts."""
    versions = {name: _version(name) for name in PACKAGES}
    versions |= {name: v for name in OPTIONAL_PACKAGES if (v := _version(name)) is not None}
    kinds = collections.Counter(device.device_kind for device in jax.devices())
    return {
        "python": platform.python_version(),
        "packages": versions,
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": dict(kinds),
        "process_count": jax.process_count(),
    }
