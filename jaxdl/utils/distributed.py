"""Mesh, shardings and processes: the same code on 1 CPU, N GPUs, a TPU slice or several hosts.

Batches are sharded over the `data` axis, parameters replicated; grid members over `config`.
Meshes use Auto axis types: `jax.make_mesh` defaults to Explicit in jax 0.10, which breaks a plain
linen train step.

Several processes (multi-host): each process's devices hold one contiguous block of the `data`
axis (meshes order devices by process), so each process loads only that block of every global
batch (`data/pipeline.py`) and `training/loop.to_device` assembles the global arrays. Every process
computes; only the primary one (process 0) writes logs, summaries and figures (`is_primary`),
while Orbax coordinates checkpoint writes across processes itself.
"""

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import ConfigError

_EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# Cloud TPU pods list their workers here on GKE and queued resources; plain TPU VMs keep it in
# the metadata server only, hence the opt-in JAXDL_DISTRIBUTED=1 (docs/scaling.md).
_TPU_WORKER_LISTS = ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")


def _by_process(devices: Sequence[jax.Device]) -> np.ndarray:
    """Devices as a (processes, local devices) array, processes in index order."""
    devices = sorted(devices, key=lambda d: d.process_index)  # stable: keeps each host's order
    processes = len({d.process_index for d in devices})
    if len(devices) % processes:
        raise ConfigError(
            f"the {len(devices)} devices are unevenly spread over {processes} "
            "processes; give every process the same number of devices"
        )
    return np.array(devices).reshape(processes, -1)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D `("data",)` mesh over `devices` (default: every device of every host)."""
    grid = _by_process(jax.devices() if devices is None else devices)
    return Mesh(grid.reshape(-1), ("data",), axis_types=(AxisType.Auto,))


def make_grid_mesh(members: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `("config", "data")` mesh: members spread over as many devices as divide their number.

    With 8 devices and 4 members: config 4 x data 2; with 3 members: config 1 x data 8. The
    `config` axis stays within a host and `data` spans the hosts, so each process still loads
    one block of every batch (a member's gradients are reduced across hosts).
    """
    grid = _by_process(jax.devices() if devices is None else devices)
    processes, local = grid.shape
    config_size = max(d for d in range(1, local + 1) if local % d == 0 and members % d == 0)
    grid = grid.reshape(processes, config_size, local // config_size).transpose(1, 0, 2)
    return Mesh(
        grid.reshape(config_size, -1), ("config", "data"), axis_types=(AxisType.Auto, AxisType.Auto)
    )


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
            f"{key}={batch_size} must be a positive multiple of the {devices} devices of the "
            "data axis"
        )


def _identity(tree: Any) -> Any:
    return tree


def put(tree: Any, sharding: NamedSharding) -> Any:
    """`jax.device_put` that also places host values onto the devices of several processes.

    There device_put refuses some values (a fresh state's PRNG key) and a jitted identity places
    them; every process must pass the same values (same seeds).
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.jit(_identity, out_shardings=sharding)(tree)


def fetch(tree: Any) -> Any:
    """`jax.device_get` that also fetches arrays spread over the devices of several processes.

    A multi-host grid's member-sharded sums are such arrays; device_get refuses them.
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def one(value):
        if isinstance(value, jax.Array) and not value.is_fully_addressable:
            return multihost_utils.process_allgather(value, tiled=True)
        return jax.device_get(value)

    return jax.tree.map(one, tree)


def initialize_arguments(env: Mapping[str, str]) -> dict[str, Any] | None:
    """Arguments of `jax.distributed.initialize` if `env` describes a multi-process job, else None.

    - explicit: `JAX_COORDINATOR_ADDRESS` (jax reads it), `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`
      (passed on: jax does not read these two itself);
    - SLURM: `SLURM_NTASKS` > 1 inside an `srun` step (`SLURM_STEP_NODELIST`, which jax needs to
      find the coordinator; a batch script's own shell is one process);
    - Cloud TPU pod: several workers in `TPU_PROCESS_ADDRESSES` / `TPU_WORKER_HOSTNAMES`, or
      several slices (`MEGASCALE_NUM_SLICES`);
    - `JAXDL_DISTRIBUTED=1`: any environment jax detects by itself (a TPU VM pod's metadata).
    Only the explicit values are returned; jax detects the rest from the same environment.
    """
    if any(key in env for key in _EXPLICIT):
        return {
            name: int(env[key])
            for name, key in (
                ("num_processes", "JAX_NUM_PROCESSES"),
                ("process_id", "JAX_PROCESS_ID"),
            )
            if key in env
        }
    slurm = int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in env
    tpu = (
        any(len(env.get(key, "").split(",")) > 1 for key in _TPU_WORKER_LISTS)
        or int(env.get("MEGASCALE_NUM_SLICES", "1")) > 1
    )
    return {} if slurm or tpu or env.get("JAXDL_DISTRIBUTED") == "1" else None


def initialize(env: Mapping[str, str] = os.environ) -> bool:
    """Joins the other processes of a multi-process job (before any other JAX call); True if so."""
    arguments = initialize_arguments(env)
    if arguments is None:
        return False
    jax.distributed.initialize(**arguments)
    return True


def is_primary() -> bool:
    """Whether this process writes the shared outputs (logs, summaries, figures): process 0.

    In a multi-host run every process computes the same numbers; one copy of each file is enough,
    and event files or appended JSON lines from several writers would duplicate every curve.
    """
    return jax.process_index() == 0


def from_primary(compute: Callable[[], Any]) -> Any:
    """`compute()` run on process 0 only, its JSON-serialisable result handed to every process.

    For choices made on the shared file system (claiming a new run directory, finding a run to
    resume) that processes making them on their own could make differently (timestamps, races).
    Every process must call it at the same point of the program; with one process it is `compute()`.
    """
    if jax.process_count() == 1:
        return compute()
    payload = np.frombuffer(json.dumps(compute()).encode(), np.uint8) if is_primary() else None
    size = int(
        multihost_utils.broadcast_one_to_all(np.int32(0 if payload is None else payload.size))
    )
    received = multihost_utils.broadcast_one_to_all(
        np.zeros(size, np.uint8) if payload is None else payload
    )
    return json.loads(bytes(np.asarray(received, np.uint8)))
