"""Mesh, shardings and processes: the same code on 1 CPU, N GPUs, a TPU slice or several hosts.

Batches are sharded over the `data` axis, parameters replicated; grid members over `config`.
Meshes use Auto axis types: `jax.make_mesh` defaults to Explicit in jax 0.10, which breaks a plain
linen train step.

Several processes (multi-host): each process's devices hold one contiguous block of the `data`
axis, so each process loads only that block of every global batch (`data_block`,
`data/pipeline.py`) and `training/loop.to_device` assembles the global arrays. A grid mesh lays
members across hosts and keeps `data` within one where it can (`grid_layout`): a member's
gradients are then reduced over a host's own links, not the network. Every process computes;
only the primary one (process 0) writes logs, summaries and figures (`is_primary`), while Orbax
coordinates checkpoint writes across processes itself.
"""

import dataclasses
import json
import math
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import ConfigError

_EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# Cloud TPU pods list their workers here on GKE and queued resources; plain TPU VMs keep them in
# the metadata server only, which jax reads when jaxdl sees it runs on a TPU VM.
_TPU_WORKER_LISTS = ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")
_VISIBLE_GPUS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


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


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Where a vmapped group of `members` sits on `processes` x `local` devices.

    The mesh is `config` x `data`; each process holds a `host_config` x `host_data` block of it
    (processes numbered row by row over the blocks). A member's gradients are reduced over the
    `data` devices of its config slot, which span `data // host_data` processes.
    """

    members: int
    processes: int
    local: int
    config: int
    data: int
    host_config: int
    host_data: int

    def owners(self) -> np.ndarray:
        """The process holding each (config, data) position of the mesh."""
        blocks = np.arange(self.processes).reshape(
            self.config // self.host_config, self.data // self.host_data
        )
        return np.kron(blocks, np.ones((self.host_config, self.host_data), int))

    def members_of(self, process: int) -> range:
        """The members whose parameters `process` holds."""
        per_slot = self.members // self.config
        row = process // (self.data // self.host_data)
        return range(row * self.host_config * per_slot, (row + 1) * self.host_config * per_slot)

    def arrange(self, device_grid: np.ndarray) -> np.ndarray:
        """A (processes, local) array of devices laid out as the (config, data) mesh."""
        rows, cols = self.config // self.host_config, self.data // self.host_data
        blocks = device_grid.reshape(rows, cols, self.host_config, self.host_data)
        return blocks.transpose(0, 2, 1, 3).reshape(self.config, self.data)


def grid_layout(members: int, processes: int, local: int) -> GridLayout:
    """The `config` x `data` layout of a vmapped group: a pure function of the three counts.

    - `config` = gcd(members, devices): as many member slots as split both evenly. Each device
      then holds members / config members, so the per-device work is the same for every choice
      and more slots only lower parameter memory and gradient traffic. Members are not padded: a
      dummy member costs a device as much as a real one, so a grid of a size that divides the
      devices (a real extra value) is the better fix (docs/scaling.md).
    - Each process holds host_data = gcd(local, data) positions of `data`, the most that divide
      both, and the rest of its devices on `config`: a member's data devices share one host
      whenever data <= local, and its gradients never cross the network. A host then loads
      data / host_data times the rows a host of plain data parallelism would, for host_config
      slots of members: never more input per unit of device work than `train` asks.
    On one process this is config gcd(members, local) x data, as it always was.
    """
    config = math.gcd(members, processes * local)
    data = processes * local // config
    host_data = math.gcd(local, data)  # local // host_data divides config (config * data = P * L)
    return GridLayout(members, processes, local, config, data, local // host_data, host_data)


def make_grid_mesh(members: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `("config", "data")` mesh laid out by `grid_layout` over `devices` (default: all).

    With 8 devices on one host and 6 members: config 2 x data 4; with 3 members: config 1 x
    data 8. On 8 hosts of 1 GPU, 6 members: config 2 x data 4, hosts 0-3 holding members 0-2.
    """
    grid = _by_process(jax.devices() if devices is None else devices)
    return layout_mesh(grid_layout(members, *grid.shape), grid)


def layout_mesh(layout: GridLayout, device_grid: np.ndarray) -> Mesh:
    """The mesh of `layout` over a (processes, local) array of devices.

    `make_grid_mesh` passes the real processes; tests pass one process's devices as if they
    were several hosts, to train on a multi-host layout in one process.
    """
    return Mesh(
        layout.arrange(np.asarray(device_grid)),
        ("config", "data"),
        axis_types=(AxisType.Auto, AxisType.Auto),
    )


def data_block(mesh: Mesh, process: int | None = None) -> tuple[int, int]:
    """(index, count): `process`'s row block of every global batch on `mesh` (default: this one).

    The rows its devices hold on the `data` axis, for `data/pipeline.py`'s `process` argument.
    Processes holding the same columns (other members of a grid) load the same rows.
    """
    process = jax.process_index() if process is None else process
    owners = np.vectorize(lambda d: d.process_index)(mesh.devices)
    return block_of(np.moveaxis(owners, mesh.axis_names.index("data"), -1), process)


def block_of(owners: np.ndarray, process: int) -> tuple[int, int]:
    """(index, count) of the contiguous, equal block of the last (`data`) axis `process` holds."""
    columns = np.flatnonzero((owners.reshape(-1, owners.shape[-1]) == process).any(axis=0))
    width, data = len(columns), owners.shape[-1]
    if not width or data % width or columns[0] % width or columns[-1] - columns[0] + 1 != width:
        raise ValueError(f"process {process} holds data positions {columns.tolist()} of {data}")
    return int(columns[0] // width), data // width


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


def initialize_arguments(
    env: Mapping[str, str], cloud_tpu_vm: bool = False
) -> dict[str, Any] | None:
    """Arguments of `jax.distributed.initialize` if `env` describes a multi-process job, else None.

    - explicit: `JAX_COORDINATOR_ADDRESS` (jax reads it), `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`
      (passed on: jax does not read these two itself);
    - SLURM: `SLURM_NTASKS` > 1 inside an `srun` step (`SLURM_STEP_NODELIST`, which jax needs to
      find the coordinator; a batch script's own shell is one process);
    - Cloud TPU pod: several workers in `TPU_PROCESS_ADDRESSES` / `TPU_WORKER_HOSTNAMES`, or
      several slices (`MEGASCALE_NUM_SLICES`);
    - a Cloud TPU VM without such a list (`cloud_tpu_vm`: jax found TPU chips and libtpu when
      imported): jax asks the metadata server for the pod's workers (a single-host VM becomes a
      job of one). Without this a pod's hosts run as processes with no distributed client, and a
      pre-emption SIGTERM could not be shared (`preemption.check_shared_stop`);
    - `JAXDL_DISTRIBUTED=1`: any environment jax detects by itself (MPI, Kubernetes);
      `JAXDL_DISTRIBUTED=0`: never join (independent single-process runs).
    Returned: the explicit values and a SLURM task's GPUs (`local_device_ids`); jax detects the
    rest from the same environment.
    """
    if env.get("JAXDL_DISTRIBUTED") == "0":
        return None
    if any(key in env for key in _EXPLICIT):
        arguments = {
            name: int(env[key])
            for name, key in (
                ("num_processes", "JAX_NUM_PROCESSES"),
                ("process_id", "JAX_PROCESS_ID"),
            )
            if key in env
        }
    else:
        slurm = int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in env
        workers = [env[key].split(",") for key in _TPU_WORKER_LISTS if key in env]
        pod = any(len(w) > 1 for w in workers) or int(env.get("MEGASCALE_NUM_SLICES", "1")) > 1
        tpu_vm = cloud_tpu_vm and not workers and "TPU_SKIP_MDS_QUERY" not in env
        if not (slurm or pod or tpu_vm or env.get("JAXDL_DISTRIBUTED") == "1"):
            return None
        arguments = {}
    ids = local_device_ids(env)
    return arguments if ids is None else {**arguments, "local_device_ids": ids}


def local_device_ids(env: Mapping[str, str]) -> list[int] | None:
    """The GPUs (ordinals among those it sees) a task of a SLURM step uses, or None: jax's choice.

    jax gives each SLURM task the one GPU numbered by its `SLURM_LOCALID`: right for one task
    per GPU that sees all of the node's, but one task per node then uses GPU 0 alone, two tasks
    on 8 GPUs use 2, and a task bound to its own GPU (`--gpus-per-task`) is sent to a number it
    does not see. Here a task bound to its own GPUs (it sees fewer than the node's) uses all of
    them, and tasks sharing the node's GPUs take equal blocks in `SLURM_LOCALID` order.
    `JAX_LOCAL_DEVICE_IDS` (read by jax) overrides; no GPU in sight (CPU, TPU): None.
    """
    if "JAX_LOCAL_DEVICE_IDS" in env or not {"SLURM_LOCALID", "SLURM_STEP_NODELIST"} <= set(env):
        return None
    visible_key = next((key for key in _VISIBLE_GPUS if key in env), None)
    node = _node_gpus(env)
    visible = _count_listed(env[visible_key]) if visible_key else node
    if not visible:
        return None
    if node is not None and visible < node:  # SLURM bound GPUs to this task
        return list(range(visible))
    tasks = _tasks_on_node(env)
    if tasks is None:
        return None
    if visible % tasks:
        seen = f" ({visible_key}={env[visible_key]})" if visible_key else ""
        raise ConfigError(
            f"SLURM runs {tasks} tasks on this node, which has {visible} GPUs{seen}: give every "
            "task the same number of GPUs (--ntasks-per-node dividing --gpus-per-node, or "
            "--gpus-per-task)"
        )
    share = visible // tasks
    first = int(env["SLURM_LOCALID"]) * share
    return list(range(first, first + share))


def _count_listed(value: str) -> int:
    """Entries of a comma-separated GPU list (indices or UUIDs); none when empty or "NoDevFiles"."""
    return 0 if value.strip() in ("", "NoDevFiles") else len(value.split(","))


def _node_gpus(env: Mapping[str, str]) -> int | None:
    """The GPUs SLURM gave this step on this node, if it says."""
    for key in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if key in env:
            return _count_listed(env[key])
    return int(env["SLURM_GPUS_ON_NODE"]) if "SLURM_GPUS_ON_NODE" in env else None


def _tasks_on_node(env: Mapping[str, str]) -> int | None:
    """This node's entry of `SLURM_STEP_TASKS_PER_NODE` ("4(x2)", "2,1"), if it can be told."""
    counts: list[int] = []
    for part in env.get("SLURM_STEP_TASKS_PER_NODE", "").split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match is None:
            return None
        counts += [int(match[1])] * int(match[2] or 1)
    if len(set(counts)) == 1:
        return counts[0]
    node = int(env.get("SLURM_NODEID", "-1"))
    return counts[node] if 0 <= node < len(counts) else None


def _on_cloud_tpu_vm() -> bool:
    """Whether jax found TPU chips and libtpu when imported (its own flag; no public API)."""
    from jax._src import cloud_tpu_init

    return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


def describe_process() -> str:
    """One line naming this process, its host and the devices it uses (printed at start-up)."""
    devices = jax.local_devices()
    kinds = "/".join(sorted({d.device_kind for d in devices}))
    ids = ", ".join(str(d.local_hardware_id) for d in devices)
    visible = next((f" ({k}={os.environ[k]})" for k in _VISIBLE_GPUS if k in os.environ), "")
    return (
        f"process {jax.process_index()} of {jax.process_count()} on {socket.gethostname()}: "
        f"{len(devices)} {kinds} device(s), local ids {ids}{visible}"
    )


def initialize(env: Mapping[str, str] = os.environ) -> bool:
    """Joins the other processes of a multi-process job (before any other JAX call); True if so.

    Each joined process prints the devices it uses, so a task left with one GPU shows at once.
    """
    arguments = initialize_arguments(env, _on_cloud_tpu_vm())
    if arguments is None:
        return False
    jax.distributed.initialize(**arguments)
    print(describe_process(), flush=True)
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
