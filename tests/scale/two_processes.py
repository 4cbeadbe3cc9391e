"""One of the two real JAX processes of tests/scale/test_scale.py (2 simulated CPU devices each,
joined through `jax.distributed` on localhost, as `srun` or a TPU pod would start them).

The parent sets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, so the start-up
detection of `jaxdl.main` is what joins the processes. Each process loads only its rows of every
batch; the global batches the devices see are compared with the single-process ones. Then process
1 alone gets SIGTERM, and both must stop at the same step. Prints, as its last line, one JSON
object of what it saw.

    python -m tests.scale.two_processes SHARED_DIR
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)  # last one wins

import json  # noqa: E402
import pathlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl.data import pipeline  # noqa: E402
from jaxdl.training import loop  # noqa: E402
from jaxdl.utils import distributed, files, preemption  # noqa: E402
from jaxdl.utils.logging import RunLogger  # noqa: E402
from tests.data.test_pipeline import TASK, Numbers, numbers_config  # noqa: E402

BATCH = 8


def _rows_held(mesh) -> list[int]:
    """Rows of a global batch that this process's devices hold."""
    held = distributed.data_sharded(mesh).addressable_devices_indices_map((BATCH,)).values()
    return sorted({row for (rows,) in held for row in range(BATCH)[rows]})


def _global_batches_match(mesh, source, config) -> bool:
    """Every global training batch the devices see is the one a single process would load, when
    each process loads its block of `mesh`'s `data` axis."""
    block = distributed.data_block(mesh)
    local = pipeline.train_batches(source, TASK, config, 1, BATCH, augment=True, process=block)
    alone = pipeline.train_batches(source, TASK, config, 1, BATCH, augment=True, process=(0, 1))
    return all(
        all(
            np.array_equal(distributed.fetch(loop.to_device(mine, mesh)[k]), whole[k])
            for k in loop.MODEL_KEYS
        )
        for mine, whole in zip(local, alone, strict=True)
    )


def _preempted_at() -> int:
    """The step both processes stop at when process 1 alone gets SIGTERM after step 3."""
    with preemption.watch_sigterm() as watcher:
        for step in range(1, 200):
            if jax.process_index() == 1 and step == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            if watcher.stop_at(step):
                return step
            time.sleep(0.05)  # a training step
    return -1


@jax.jit
def _masked_sums(state, sums, batch):
    del state
    return {
        "count": sums["count"] + batch["mask"].sum(),
        "total": sums["total"] + (batch["x"][:, 0, 0, 0] * batch["mask"]).sum(),
    }


def _zeros(mesh) -> dict:
    return distributed.put(
        {"count": np.float32(0), "total": np.float32(0)}, distributed.replicated(mesh)
    )


def main(shared: pathlib.Path) -> dict:
    joined = distributed.initialize()
    index = jax.process_index()
    data_mesh, grid_mesh = distributed.make_mesh(), distributed.make_grid_mesh(2)
    source, config = Numbers(26), numbers_config()
    eval_batches = pipeline.eval_batches(source, TASK, config, BATCH)
    eval_sums = loop.evaluate(
        _masked_sums, None, _zeros(data_mesh), eval_batches, data_mesh, "eval"
    )

    def values(state, sums, batch):
        return _masked_sums(state, sums, batch), batch["x"][:, 0, 0, 0]

    predict = jax.jit(values, out_shardings=distributed.replicated(data_mesh))
    _, predicted = loop.predict(
        predict,
        None,
        _zeros(data_mesh),
        pipeline.eval_batches(source, TASK, config, BATCH),
        data_mesh,
    )
    members = distributed.put(jnp.arange(6.0).reshape(2, 3), distributed.config_sharded(grid_mesh))
    key = distributed.put(jax.random.key(7), distributed.replicated(data_mesh))

    run_dir = files.unique_dir(shared / "logs", "run")  # one claim, by the primary
    with RunLogger(run_dir, {"process": index}) as logger:
        logger.scalars(1, {"train/loss": 1.0 + index})
        logger.log_epoch({"epoch": 1, "process": index})
    files.write_text_atomic(shared / "written_by.txt", str(index))
    files.write_text_atomic(shared / f"cache_{index}.txt", "built", every_process=True)
    return {
        "joined": joined,
        "index": index,
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "grid_mesh": dict(grid_mesh.shape),
        "rows_held": {"data": _rows_held(data_mesh), "grid": _rows_held(grid_mesh)},
        "blocks": {
            "data": distributed.data_block(data_mesh),
            "grid": distributed.data_block(grid_mesh),
        },
        "members_held": sorted(
            {i for s in members.addressable_shards for i in range(2)[s.index[0]]}
        ),
        "train_batches_match": {
            "data": _global_batches_match(data_mesh, source, config),
            "grid": _global_batches_match(grid_mesh, source, config),
        },
        "eval": {k: float(v) for k, v in eval_sums.items()},
        "predicted": predicted.tolist(),
        "member_sharded_fetch": distributed.fetch(members).tolist(),
        "key_draw": float(jax.random.uniform(key)),
        "agreed": distributed.from_primary(lambda: {"chosen_by": index}),
        "run_dir": str(run_dir),
        "preempted_at": _preempted_at(),
    }


if __name__ == "__main__":
    print(json.dumps(main(pathlib.Path(sys.argv[1]))))
