"""Scale: 8 devices give the numbers of 1 (train, evaluate, grid_search), and two real processes
joined by `jax.distributed` each load only their rows of every batch, yet see every example once.

Both run in processes of their own (XLA's device count is fixed at start-up; this session has 4):
`eight_devices.py` once, `two_processes.py` twice side by side.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.helpers import REPO, SESSION_CACHE

RTOL = 1e-5  # reduction order differs between meshes; SGD keeps it at rounding level
VMAP_VAL_RTOL = 2e-4


def _last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    root = tmp_path_factory.mktemp("eight")
    done = subprocess.run(
        [sys.executable, "-m", "tests.scale.eight_devices", str(root), str(SESSION_CACHE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _last_json_line(done.stdout)


def _assert_same_curves(curves: dict, reference: dict, val_rtol: float = RTOL) -> None:
    for key, values in curves["epochs"].items():
        if key.endswith("accuracy"):
            assert values == reference["epochs"][key], key
        else:
            rtol = val_rtol if key.startswith("val/") else RTOL
            np.testing.assert_allclose(values, reference["epochs"][key], rtol=rtol, err_msg=key)
    assert len(curves["steps"]) == 7  # train/loss_step every 2 of the 14 steps
    np.testing.assert_allclose(curves["steps"], reference["steps"], rtol=RTOL)


def test_the_tests_draw_random_numbers_as_users_do(eight):
    """jax's default partitionable threefry (the stream users get), here and in subprocesses:
    a pin to False would make every number these tests compare differ from a user's."""
    assert jax.config.jax_threefry_partitionable
    assert eight["threefry_partitionable"]


def test_data_parallel_training_on_8_devices_follows_the_1_device_curve(eight):
    assert eight["devices"] == 8
    _assert_same_curves(eight["train"]["curves"], eight["one"][0])
    assert max(eight["one"][0]["epochs"]["val/accuracy"]) > 0.1  # it learns: not a flat curve


def test_evaluation_on_8_devices_scores_like_1_device(eight):
    test = eight["train"]["test"]
    assert test["eight"]["examples"] == test["one"]["examples"] == 40  # 2 batches of 24, 8 padded
    assert test["eight"]["accuracy"] == test["one"]["accuracy"]
    assert test["eight"]["macro_f1"] == test["one"]["macro_f1"]
    assert test["eight"]["loss"] == pytest.approx(test["one"]["loss"], rel=RTOL)
    probabilities = eight["train"]["probabilities"]
    np.testing.assert_allclose(probabilities["eight"], probabilities["one"], atol=2e-6)  # CSV: 6 dp


def test_a_vmapped_grid_on_a_config_x_data_mesh_equals_its_members_one_by_one(eight):
    grid = eight["grid"]
    assert grid["strategy"] == "vmap" and grid["mesh"] == {"config": 2, "data": 4}
    for member, reference in zip(grid["curves"], eight["one"], strict=True):
        # Vmapped members reduce in another order; eval-mode BatchNorm amplifies that in val/loss
        # (3e-5 measured), while train losses and every accuracy stay equal.
        _assert_same_curves(member, reference, val_rtol=VMAP_VAL_RTOL)
    assert grid["curves"][0]["epochs"]["train/loss"] != grid["curves"][1]["epochs"]["train/loss"]


def test_simulated_hosts_get_members_across_hosts_and_train_as_before(eight):
    layouts, grid = eight["layouts"], eight["grid"]
    # 2 members on 8 hosts x 1 device or 4 x 2: a config slot per 4 devices, data within the
    # fewest hosts; in this process's device order that is the grid run's own mesh.
    assert layouts["new"]["8x1"] == layouts["new"]["4x2"] == grid["mesh_ids"]
    assert grid["mesh_ids"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # Before, config stayed within a host: 8 x 1 gave config 1 x data 8.
    assert layouts["old_shapes"] == {"8x1": [1, 8], "4x2": [2, 4]}
    for before, now in zip(layouts["before_8x1"], grid["curves"], strict=True):
        _assert_same_curves(now, before, val_rtol=VMAP_VAL_RTOL)


def test_a_batch_that_does_not_split_over_the_devices_is_refused_by_name(eight):
    assert eight["refused_batch"] == (
        "train.batch_size=12 must be a positive multiple of the 8 devices of the data axis"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    shared = tmp_path_factory.mktemp("two")
    port = _free_port()
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(index),
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.scale.two_processes", str(shared)],
                cwd=REPO,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    return shared, [
        _last_json_line(stdout) | {"stdout": stdout.splitlines()[:-1]} for stdout, _ in outputs
    ]


def test_processes_join_and_each_holds_one_block_of_every_batch(two):
    _, seen = two
    for index, process in enumerate(seen):
        assert process["joined"] and process["index"] == index
        assert process["processes"] == 2 and process["devices"] == 4
        block = list(range(4 * index, 4 * index + 4))  # batch 8 over 2 hosts
        # A grid of 2 members: one per host, each host holding the whole batch on its 2 devices
        # (data within a host, no gradient traffic between hosts).
        assert process["grid_mesh"] == {"config": 2, "data": 2}
        assert process["members_held"] == [index]
        assert process["rows_held"] == {"data": block, "grid": list(range(8))}
        assert process["blocks"] == {"data": [index, 2], "grid": [0, 1]}


def test_each_process_prints_the_devices_it_uses_at_start_up(two):
    _, seen = two
    for index, process in enumerate(seen):
        assert [line for line in process["stdout"] if line.startswith("process ")] == [
            f"process {index} of 2 on {socket.gethostname()}: 2 cpu device(s), local ids 0, 1"
        ]


def test_loading_only_local_rows_gives_the_single_process_batches_and_exact_eval(two):
    _, seen = two
    for process in seen:
        assert process["train_batches_match"] == {"data": True, "grid": True}
        assert process["eval"] == {"count": 26.0, "total": float(sum(range(26)))}  # each once
        assert process["predicted"] == list(range(26))  # source order, padding dropped
        assert process["member_sharded_fetch"] == [[0, 1, 2], [3, 4, 5]]
    assert seen[0]["key_draw"] == seen[1]["key_draw"]


def test_only_the_primary_process_writes_and_both_share_its_run_directory(two):
    shared, seen = two
    assert seen[0]["agreed"] == seen[1]["agreed"] == {"chosen_by": 0}
    assert seen[0]["run_dir"] == seen[1]["run_dir"] == str(shared / "logs" / "run")
    assert sorted(p.name for p in (shared / "logs").iterdir()) == ["run"]
    run = shared / "logs" / "run"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert [json.loads(line)["process"] for line in (run / "metrics.jsonl").open()] == [0]
    assert json.loads((run / "config.json").read_text()) == {"process": 0}
    assert (shared / "written_by.txt").read_text() == "0"
    assert (shared / "cache_0.txt").is_file() and (shared / "cache_1.txt").is_file()


def test_a_sigterm_to_one_process_stops_every_process_at_the_same_step(two):
    _, seen = two
    assert seen[0]["preempted_at"] == seen[1]["preempted_at"] > 3
