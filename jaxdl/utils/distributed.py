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


def make_grid_mesh(members: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `("config", "data")` mesh: members spread over as many devices as divide their number.

    With 8 devices and 4 members: config 4 x data 2; with 3 members: config 1 x data 8.
    """
    devices = jax.devices() if devices is None else list(devices)
    config_size = max(d for d in range(1, len(devices) + 1) if len(devices) % d == 0 and members % d == 0)
    grid = np.array(devices).reshape(config_size, len(devices) // config_size)
    return Mesh(grid, ("config", "data"), axis_types=(AxisType.Auto, AxisType.Auto))


def config_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (member) axis split over `config`."""
    return NamedSharding(mesh, PartitionSpec("config"))


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
