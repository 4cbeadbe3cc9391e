"""Multi-process detection from the environment, and the process helpers on one process
(the real multi-process runs are in tests/scale)."""

import jax
import numpy as np
import pytest

from jaxdl.utils import distributed

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
    ],
)
def test_multi_process_jobs_are_detected_from_the_environment(env, expected):
    assert distributed.initialize_arguments(env) == expected


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
