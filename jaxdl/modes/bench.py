"""`--mode=bench`: train and eval step throughput on random input of the model's shape.

Median over `bench.steps` timed steps, after `bench.warmup` steps that absorb compilation. The
JSON line has the same keys as the PyTorch twin's in `benchmarks/`, so the two compare directly.

It also times the input pipeline alone on the train split (`pipeline_*` keys; `bench.warmup`
batches, then `bench.steps` timed), on `data.dir` when set and on generated data otherwise (bench
never downloads), so the host's rate shows beside the step's appetite.

The `grid_*` keys time the train step of a grid group of this architecture (grid.lr x
grid.weight_decay x grid.seeds members, stepped by `grid.strategy`, cut to the chunk that fits in
memory as a grid would) on the same batch: member-samples/s, and the speed-up over training the
members one by one with the single-member step. A group step does a step of every member, so it is
timed over about `bench.steps` member-steps (3 group steps at least), after one warm-up step.
"""

import math
import statistics
import time

import jax
import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.training import grid, group
from jaxdl.training.state import count_params
from jaxdl.utils import allocator, distributed


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
    host = {
        "x": rng.standard_normal(shape, np.float32),
        "y": labels.astype(np.int32),
        "mask": np.ones(batch_size, np.float32),
    }
    batch = jax.device_put(host, distributed.data_sharded(parts.mesh))

    params = count_params(parts.state.params)  # before the first step donates the state
    state, sums = parts.state, {"epoch": parts.zero_sums()[0]}
    eval_sums = parts.zero_sums(train=False)[0]

    def train_once():
        nonlocal state, sums
        state, sums = parts.steps.train(state, sums, batch)
        return sums

    def eval_once():
        nonlocal eval_sums
        eval_sums = parts.steps.eval(state, eval_sums, batch)
        return eval_sums

    train_ms = _median_ms(train_once, config.bench.warmup, config.bench.steps)
    eval_ms = _median_ms(eval_once, config.bench.warmup, config.bench.steps)
    return {
        "framework": "jax",
        "model": config.task,
        "batch_size": batch_size,
        "params": params,
        "train_samples_per_s": batch_size / train_ms * 1000,
        "eval_samples_per_s": batch_size / eval_ms * 1000,
        "train_step_ms_median": train_ms,
        "eval_step_ms_median": eval_ms,
        **(
            _grid_group(config, names, host, batch_size / train_ms * 1000)
            if config.bench.grid
            else {}
        ),
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        "allocator": allocator.in_use(),
    }


def _grid_group(
    config: ml_collections.ConfigDict, names: tuple[str, ...], host: dict, single_rate: float
) -> dict:
    """The grid keys: a group's train step on `host` (the single-member step's batch), timed as
    that step is; `single_rate` is the single-member step's samples/s."""
    configs = grid.group_members(config, 1)

    def on_device(trainer: group.Group) -> tuple[dict, dict]:
        batch = jax.device_put(host, distributed.data_sharded(trainer.mesh))
        return {"epoch": trainer.zero_sums()}, batch

    trainer, _ = grid.fitting_group(
        configs,
        names,
        config.grid.strategy,
        config.grid.memory_limit_gb,
        "bench's grid group",
        lambda trainer: trainer.train_step_bytes(*on_device(trainer)),
    )
    states, (totals, batch) = trainer.states, on_device(trainer)

    def train_once():
        nonlocal states, totals
        states, totals = trainer.train(states, totals, batch)
        return totals

    # A group step is `size` member-steps: about bench.steps member-steps are timed (3 group
    # steps at least) after one warm-up step (its compilation), so bench stays short.
    group_ms = _median_ms(train_once, 1, max(3, math.ceil(config.bench.steps / trainer.size)))
    rate = trainer.size * len(host["mask"]) / group_ms * 1000
    return {
        "grid_members": len(configs),
        "grid_strategy": trainer.strategy,
        "grid_members_per_step": trainer.size,  # fewer than grid_members: a chunk that fits
        "grid_step_ms_median": group_ms,
        "grid_member_samples_per_s": rate,
        "grid_speedup": rate / single_rate,
    }


def input_pipeline(config: ml_collections.ConfigDict) -> dict:
    """Host rate of the train split's pipeline (augmentation included, no model)."""
    data_config = config
    if config.data.source == "auto" and not config.data.dir:
        data_config = ml_collections.ConfigDict(config.to_dict())
        data_config.data.source = "synthetic"
    task = tasks.get(data_config)
    rate = pipeline.throughput(
        task.load_split(data_config, "train").source,
        task,
        data_config,
        config.train.batch_size,
        bool(config.augment.enabled),
        config.bench.steps,
        config.bench.warmup,
    )
    return {
        "pipeline_batches_per_s": rate.batches_per_s,
        "pipeline_samples_per_s": rate.samples_per_s,
        "pipeline_first_batch_s": rate.first_batch_s,
        "pipeline_workers": rate.loading.workers,
        "pipeline_prefetch": rate.loading.prefetch,
        "pipeline_data": data_config.data.dir or data_config.data.source,
    }


def run(config: ml_collections.ConfigDict, workdir, args) -> dict:
    del workdir, args  # bench writes nothing
    result = benchmark(config)
    line = f"train step {result['train_samples_per_s']:.0f} samples/s"
    if config.bench.pipeline:
        result |= input_pipeline(config)
        line += (
            f"; input pipeline {result['pipeline_samples_per_s']:.0f} samples/s "
            f"({result['pipeline_workers']} workers, {result['pipeline_data']} data)"
        )
    print(line, flush=True)
    return result
