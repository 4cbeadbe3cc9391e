"""Multi-process detection from the environment, SLURM GPU selection, grid layouts for simulated
process/device counts, and the process helpers on one process (the real multi-process runs and
training on simulated hosts are in tests/scale)."""

import jax
import numpy as np
import pytest

from jaxdl.errors import ConfigError
from jaxdl.utils import distributed, preemption

_SLURM_STEP = {
    "SLURM_JOB_ID": "4242",
    "SLURM_NTASKS": "8",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "3",
    "SLURM_STEP_NODELIST": "gpu[01-02]",
}


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        ({"HOME": "/home/me", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, None),  # one node, one process
        (_SLURM_STEP, {}),  # srun, 8 tasks: jax reads the rest from SLURM_*
        ({**_SLURM_STEP, "SLURM_NTASKS": "1"}, None),  # srun with one task
        (
            {k: v for k, v in _SLURM_STEP.items() if k != "SLURM_STEP_NODELIST"},
            None,
        ),  # sbatch shell
        (
            {
                "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": "1",
            },
            {"num_processes": 2, "process_id": 1},
        ),
        ({**_SLURM_STEP, "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, {}),  # explicit wins
        ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3", "TPU_WORKER_ID": "2"}, {}),  # TPU pod (GKE)
        ({"TPU_PROCESS_ADDRESSES": "t0:8476,t1:8476"}, {}),
        ({"TPU_WORKER_HOSTNAMES": "localhost", "TPU_WORKER_ID": "0"}, None),  # single-host TPU VM
        ({"MEGASCALE_NUM_SLICES": "2"}, {}),  # multislice
        (
            {"JAXDL_DISTRIBUTED": "1"},
            {},
        ),  # TPU VM pod via gcloud ... --worker=all (metadata server)
        ({"JAXDL_DISTRIBUTED": "0"}, None),
        ({**_SLURM_STEP, "JAXDL_DISTRIBUTED": "0"}, None),  # opted out: independent runs
    ],
)
def test_multi_process_jobs_are_detected_from_the_environment(env, expected):
    assert distributed.initialize_arguments(env) == expected


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, {}),  # a TPU VM pod via gcloud ... --worker=all: jax reads the metadata server
        ({"TPU_WORKER_HOSTNAMES": "localhost", "TPU_WORKER_ID": "0"}, None),  # GKE, one host
        ({"TPU_SKIP_MDS_QUERY": "1"}, None),  # no metadata server to ask
        ({"JAXDL_DISTRIBUTED": "0"}, None),
    ],
)
def test_a_cloud_tpu_vm_joins_its_pod_without_an_opt_in(env, expected):
    assert distributed.initialize_arguments(env, cloud_tpu_vm=True) == expected


_NODE_OF_4 = {**_SLURM_STEP, "SLURM_STEP_GPUS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}


@pytest.mark.parametrize(
    "env, expected",
    [
        # one task per node (4 GPUs): all 4; jax alone would give it GPU 0 only
        ({**_NODE_OF_4, "SLURM_LOCALID": "0", "SLURM_STEP_TASKS_PER_NODE": "1(x8)"}, [0, 1, 2, 3]),
        # one task per GPU, all GPUs visible to each: the LOCALID-th (what jax does too)
        ({**_NODE_OF_4, "SLURM_STEP_TASKS_PER_NODE": "4(x2)"}, [3]),
        # two tasks on 8 GPUs: half each (jax: GPU 1 alone for the second)
        (
            {
                **_SLURM_STEP,
                "SLURM_LOCALID": "1",
                "SLURM_STEP_TASKS_PER_NODE": "2(x4)",
                "SLURM_GPUS_ON_NODE": "8",
            },
            [4, 5, 6, 7],
        ),
        # --gpus-per-task=1: each task sees its own GPU as 0 (jax: GPU 3, which it does not see)
        ({**_NODE_OF_4, "CUDA_VISIBLE_DEVICES": "2", "SLURM_STEP_TASKS_PER_NODE": "4(x2)"}, [0]),
        # uneven steps: this node's entry (node 1 of "4,2" runs 2 tasks)
        (
            {**_NODE_OF_4, "SLURM_LOCALID": "1", "SLURM_NODEID": "1"}
            | {"SLURM_STEP_TASKS_PER_NODE": "4,2"},
            [2, 3],
        ),
        ({**_SLURM_STEP, "SLURM_STEP_TASKS_PER_NODE": "4(x2)"}, None),  # no GPU in sight
        ({**_NODE_OF_4, "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
        ({**_NODE_OF_4, "JAX_LOCAL_DEVICE_IDS": "0"}, None),  # the user's choice, read by jax
        ({"SLURM_LOCALID": "0", "CUDA_VISIBLE_DEVICES": "0,1"}, None),  # not an srun step
    ],
)
def test_a_slurm_task_uses_its_share_of_the_gpus_it_sees(env, expected):
    assert distributed.local_device_ids(env) == expected


def test_the_slurm_gpus_are_passed_to_jax_with_the_other_arguments():
    env = {**_NODE_OF_4, "SLURM_LOCALID": "0", "SLURM_STEP_TASKS_PER_NODE": "1(x8)"}
    assert distributed.initialize_arguments(env) == {"local_device_ids": [0, 1, 2, 3]}
    explicit = {**env, "JAX_COORDINATOR_ADDRESS": "gpu01:1234", "JAX_NUM_PROCESSES": "8"}
    assert distributed.initialize_arguments(explicit) == {
        "num_processes": 8,
        "local_device_ids": [0, 1, 2, 3],
    }


def test_tasks_that_cannot_share_the_gpus_evenly_are_refused_naming_them():
    env = {**_NODE_OF_4, "SLURM_STEP_TASKS_PER_NODE": "3(x2)"}
    with pytest.raises(ConfigError) as raised:
        distributed.initialize_arguments(env)
    assert str(raised.value) == (
        "SLURM runs 3 tasks on this node, which has 4 GPUs (CUDA_VISIBLE_DEVICES=0,1,2,3): give "
        "every task the same number of GPUs (--ntasks-per-node dividing --gpus-per-node, or "
        "--gpus-per-task)"
    )


def test_several_processes_without_a_distributed_client_are_refused():
    preemption.check_shared_stop(1, joined=False)  # one process: its own SIGTERM handler
    preemption.check_shared_stop(4, joined=True)  # jax's preemption sync point
    with pytest.raises(ConfigError) as raised:
        preemption.check_shared_stop(4, joined=False)
    assert str(raised.value) == (
        "4 processes run this job but jax.distributed is not initialised, so a pre-emption "
        "(SIGTERM) would save no checkpoint: set JAXDL_DISTRIBUTED=1 on every process (jax then "
        "finds the others: TPU pod, SLURM, MPI, Kubernetes) or JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES and JAX_PROCESS_ID (docs/scaling.md)"
    )


def test_a_single_process_environment_initialises_nothing():
    assert distributed.initialize({"SLURM_NTASKS": "1"}) is False
    assert jax.process_count() == 1 and distributed.is_primary()


def test_on_one_process_the_helpers_are_the_plain_jax_calls():
    assert distributed.from_primary(lambda: {"run": "a", "resumed": [1, 2]}) == {
        "run": "a",
        "resumed": [1, 2],
    }
    mesh = distributed.make_mesh()
    placed = distributed.put(
        {"w": np.arange(4.0), "key": jax.random.key(3)}, distributed.replicated(mesh)
    )
    assert placed["w"].sharding == distributed.replicated(mesh)
    fetched = distributed.fetch(placed["w"])
    assert isinstance(fetched, np.ndarray)
    np.testing.assert_array_equal(fetched, np.arange(4.0))


def test_grid_meshes_spread_members_over_the_devices_that_divide_them():
    assert jax.device_count() == 4, "conftest sets 4 simulated CPU devices"
    assert dict(distributed.make_grid_mesh(4).shape) == {"config": 4, "data": 1}
    assert dict(distributed.make_grid_mesh(2).shape) == {"config": 2, "data": 2}
    assert dict(distributed.make_grid_mesh(3).shape) == {"config": 1, "data": 4}
    mesh = distributed.make_grid_mesh(2)
    assert [d.id for d in mesh.devices.flat] == [d.id for d in jax.devices()]


# (processes, local devices, members) -> mesh (config, data), the members each process holds
_LAYOUTS = [
    (1, 8, 6, (2, 4), [range(6)]),
    (1, 8, 8, (8, 1), [range(8)]),
    (1, 8, 7, (1, 8), [range(7)]),
    # 8 hosts x 1 GPU: before, config 1 x data 8 for any group (every GPU held every member)
    (8, 1, 6, (2, 4), [range(0, 3)] * 4 + [range(3, 6)] * 4),
    (8, 1, 8, (8, 1), [range(i, i + 1) for i in range(8)]),
    (8, 1, 4, (4, 2), [range(i // 2, i // 2 + 1) for i in range(8)]),
    (8, 1, 7, (1, 8), [range(7)] * 8),  # a prime: no slot count divides both
    (8, 1, 12, (4, 2), [range(3 * (i // 2), 3 * (i // 2) + 3) for i in range(8)]),
    # 2 hosts x 4: before, config 2 x data 4 with data over both hosts
    (2, 4, 6, (2, 4), [range(0, 3), range(3, 6)]),
    (2, 4, 2, (2, 4), [range(0, 1), range(1, 2)]),
    (2, 4, 4, (4, 2), [range(0, 2), range(2, 4)]),
    (2, 4, 5, (1, 8), [range(5)] * 2),
    (2, 4, 12, (4, 2), [range(0, 6), range(6, 12)]),
    # 4 hosts x 2
    (4, 2, 6, (2, 4), [range(0, 3)] * 2 + [range(3, 6)] * 2),
    (4, 2, 8, (8, 1), [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]),
    (4, 2, 11, (1, 8), [range(11)] * 4),
]


@pytest.mark.parametrize("processes, local, members, mesh, held", _LAYOUTS)
def test_grid_layouts_put_members_across_hosts(processes, local, members, mesh, held):
    layout = distributed.grid_layout(members, processes, local)
    assert (layout.config, layout.data) == mesh
    assert [layout.members_of(p) for p in range(processes)] == held


@pytest.mark.parametrize("processes, local", [(1, 8), (8, 1), (2, 4), (4, 2), (2, 6), (3, 4)])
@pytest.mark.parametrize("members", range(1, 13))
def test_every_grid_layout_is_a_tiling_of_equal_host_blocks(processes, local, members):
    layout = distributed.grid_layout(members, processes, local)
    owners = layout.owners()
    assert owners.shape == (layout.config, layout.data)
    assert members % layout.config == 0  # equal members per device, no padding
    assert layout.config == np.gcd(members, processes * local)  # the most slots that divide
    assert np.bincount(owners.ravel()).tolist() == [local] * processes
    hosts_per_member = layout.data // layout.host_data
    for process in range(processes):
        # a rectangle: the rows of every batch it loads are one block, read by the pipeline
        rows, cols = np.nonzero(owners == process)
        assert len(set(rows)) * len(set(cols)) == local
        index, count = distributed.block_of(owners, process)
        assert count == hosts_per_member and index == process % count
        assert len(layout.members_of(process)) == members // layout.config * layout.host_config
    if local % layout.data == 0:  # a member's data devices fit on one host: they are on one
        assert hosts_per_member == 1
    # every member on exactly the hosts of its config slot
    holders = [[p for p in range(processes) if m in layout.members_of(p)] for m in range(members)]
    assert all(len(h) == hosts_per_member for h in holders)


def test_a_grid_mesh_over_simulated_hosts_places_their_devices_as_the_layout_says():
    devices = np.array(jax.devices()).reshape(2, 2)  # 4 session devices seen as 2 hosts x 2
    layout = distributed.grid_layout(2, 2, 2)
    mesh = distributed.layout_mesh(layout, devices)
    assert dict(mesh.shape) == {"config": 2, "data": 2}
    assert [[d.id for d in row] for row in mesh.devices] == [[0, 1], [2, 3]]
    assert layout.owners().tolist() == [[0, 0], [1, 1]]  # member p on host p, data within it
    assert distributed.data_block(distributed.make_mesh()) == (0, 1)  # one process: every row


def test_a_block_that_is_not_a_contiguous_share_of_data_is_an_error():
    with pytest.raises(ValueError, match=r"process 1 holds data positions \[0, 2\] of 4"):
        distributed.block_of(np.array([[1, 0, 1, 0]]), 1)
