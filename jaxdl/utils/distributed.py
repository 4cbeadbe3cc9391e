"""Device mesh and shardings: the same code on 1 CPU, N GPUs or a TPU slice.

Batches are sharded over the `data` axis, parameters replicated. Meshes use Auto axis types:
`jax.make_mesh` defaults to Explicit in jax 0.10, which breaks a plain linen train step.
"""

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import ConfigError


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D `("data",)` mesh over `devices` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`."""
    return NamedSharding(mesh, PartitionSpec("data"))


def check_batch_size(key: str, batch_size: int, mesh: Mesh) -> None:
    """The batch must split evenly over the data axis."""
    devices = mesh.shape["data"]
    if batch_size <= 0 or batch_size % devices:
        raise ConfigError(
            f"{key}={batch_size} must be a positive multiple of the {devices} devices of the data axis"
        )
