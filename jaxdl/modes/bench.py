"""`--mode=bench`: train and eval step throughput on random input of the model's shape.

Median over `bench.steps` timed steps, after `bench.warmup` steps that absorb compilation. The
JSON line has the same keys as the PyTorch twin's in `benchmarks/`, so the two compare directly.
"""

import statistics
import time

import jax
import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.training import group
from jaxdl.training.state import count_params
from jaxdl.utils import distributed


def _median_ms(step, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        jax.block_until_ready(step())
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def benchmark(config: ml_collections.ConfigDict) -> dict:
    task = tasks.get(config)
    names = tuple(f"class{i}" for i in range(task.num_classes))
    parts = group.build([config], names)
    batch_size = config.train.batch_size
    distributed.check_batch_size("train.batch_size", batch_size, parts.mesh)
    rng = np.random.default_rng(config.seed)
    shape = (batch_size, *task.input_shape(config))
    labels = (
        rng.integers(0, len(names), batch_size)
        if task.objective_kind == "multiclass"
        else rng.integers(0, 2, (batch_size, len(names)))
    )
    batch = jax.device_put(
        {
            "x": rng.standard_normal(shape, np.float32),
            "y": labels.astype(np.int32),
            "mask": np.ones(batch_size, np.float32),
        },
        distributed.data_sharded(parts.mesh),
    )

    params = count_params(parts.state.params)  # before the first step donates the state
    state = parts.state

    def train_once():
        nonlocal state
        state, sums = parts.steps.train(state, batch)
        return sums

    train_ms = _median_ms(train_once, config.bench.warmup, config.bench.steps)
    eval_ms = _median_ms(
        lambda: parts.steps.eval(state, batch), config.bench.warmup, config.bench.steps
    )
    return {
        "framework": "jax",
        "model": config.task,
        "batch_size": batch_size,
        "params": params,
        "train_samples_per_s": batch_size / train_ms * 1000,
        "eval_samples_per_s": batch_size / eval_ms * 1000,
        "train_step_ms_median": train_ms,
        "eval_step_ms_median": eval_ms,
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }


def run(config: ml_collections.ConfigDict, workdir, args) -> dict:
    del workdir, args  # bench writes nothing
    return benchmark(config)
