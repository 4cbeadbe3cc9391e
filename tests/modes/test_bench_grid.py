"""bench times a grid group's train step beside the single-member one: its members, how they are
stepped, member-samples/s and the speed-up; a vmapped group is timed as the chunk that fits, as a
grid would train it, and one member over the budget is refused rather than run out of memory."""

import jax
import pytest

from jaxdl.errors import ConfigError
from jaxdl.modes import bench
from jaxdl.training import grid, group
from jaxdl.training.data import training_data
from tests.helpers import tiny_esc50_config


def _config(tmp_path, **grid_keys):
    config = tiny_esc50_config(tmp_path)
    config.model.channels = (4, 8, 8)
    config.model.kernel_size = 1
    config.bench.update(warmup=1, steps=2)
    config.grid.update(lr=(1e-2, 3e-3), weight_decay=(1e-4,), seeds=(1,))
    config.grid.update(grid_keys)
    return config


def test_bench_times_the_grid_group_beside_the_single_member_step(tmp_path):
    result = bench.benchmark(_config(tmp_path))
    assert result["grid_members"] == result["grid_members_per_step"] == 2
    assert result["grid_strategy"] == "sequential"  # auto on CPU
    rate = 2 * 16 / result["grid_step_ms_median"] * 1000
    assert result["grid_member_samples_per_s"] == pytest.approx(rate)
    assert result["grid_speedup"] == pytest.approx(rate / result["train_samples_per_s"])
    keys = list(result)
    assert keys.index("eval_step_ms_median") < keys.index("grid_members") < keys.index("devices")


def test_a_vmapped_group_is_timed_as_the_chunk_that_fits(tmp_path):
    config = _config(tmp_path, strategy="vmap")
    data = training_data(config, jax.device_count())
    members = grid.group_members(config, 1)
    one, two = (grid.step_bytes(group.build(members[:n], data.names, "vmap"), data) for n in (1, 2))
    config.grid.memory_limit_gb = (one + two) / 2 / group.GIB
    result = bench.benchmark(config)
    assert (result["grid_strategy"], result["grid_members"], result["grid_members_per_step"]) == (
        "vmap",
        2,
        1,
    )
    assert result["grid_member_samples_per_s"] == pytest.approx(
        16 / result["grid_step_ms_median"] * 1000
    )
    config.grid.memory_limit_gb = 1e-9
    with pytest.raises(ConfigError, match="^bench's grid group: one member alone needs "):
        bench.benchmark(config)


def test_the_model_steps_alone_when_the_grid_and_pipeline_are_turned_off(tmp_path):
    """What benchmarks/run.py asks for: the torch twin has no grid group and no pipeline."""
    config = _config(tmp_path)
    config.bench.update(grid=False, pipeline=False)
    result = bench.run(config, tmp_path, None)
    assert result["train_samples_per_s"] > 0
    assert not [key for key in result if key.startswith(("grid_", "pipeline_"))]
