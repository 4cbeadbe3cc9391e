"""A vmapped grid group is checked against the memory budget before it trains: over it, the group
trains in chunks (each member's numbers unchanged); one member over it alone is refused."""

import contextlib
import csv
import io
import os
import re

import jax
import numpy as np
import pytest

from jaxdl import config as config_lib
from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, grid_search
from jaxdl.training import grid, group
from jaxdl.training.data import training_data
from tests.helpers import counting_compilations, tiny_esc50_config


def _vmap_grid(tmp_path, **grid_keys):
    """Two members of one small architecture vmapped over the 4 simulated devices, one step per
    epoch (a 16-example overfit subset). SGD: its updates keep float-rounding differences at
    rounding level (see test_grid_search)."""
    config = tiny_esc50_config(tmp_path, optimizer="sgd", overfit_n=16, log_every_steps=0)
    config.model.channels = (4, 8, 8)
    config.model.kernel_size = 1
    config.grid.update(lr=(1e-2, 3e-3), weight_decay=(1e-4,), seeds=(config.seed,), epochs=2)
    config.grid.model.update(channels=(config.model.channels,), kernel_size=(1,))
    config.grid.strategy = "vmap"
    config.grid.update(grid_keys)
    config_lib.validate(config)
    return config


def _run(config, workdir) -> tuple[list[dict], str]:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        summary = grid_search.run(config, workdir, ModeArgs())
    rows = list(csv.DictReader((workdir / "logs" / summary["run"] / "summary.csv").open()))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows], printed.getvalue()


def _step_bytes(config, members: int) -> int:
    data = training_data(config, jax.device_count())
    configs = grid.expand(config)[:members]
    return grid.step_bytes(group.build(configs, data.names, "vmap"), data)


def test_a_group_over_the_budget_trains_in_chunks_with_the_same_numbers(tmp_path):
    config = _vmap_grid(tmp_path)
    whole, printed = _run(config, tmp_path / "whole")  # the host's memory: one group of 2
    assert "GiB budget" not in printed
    two, one = _step_bytes(config, 2), _step_bytes(config, 1)
    assert one < two
    budget = (one + two) / 2
    config.grid.memory_limit_gb = budget / group.GIB
    chunked, printed = _run(config, tmp_path / "chunked")
    assert (
        f"  group 1/1: 2 members need {two / group.GIB:.3g} GiB per device in one vmapped train "
        f"step, more than the {round(budget) / group.GIB:.3g} GiB budget (grid.memory_limit_gb): "
        f"trained in 2 chunks of at most 1 ({one / group.GIB:.3g} GiB each)"
    ) in printed.splitlines()
    # Each member's figures, rank and best epoch; the losses up to float rounding: a chunk of one
    # is another program (the batch over 4 devices, no member axis; it gives the sequential
    # strategy's figures exactly), measured 7e-5 relative from the pair's. Members swapped between
    # chunks or a chunk trained with another's lr would differ by far more.
    numeric = ("val/accuracy", "val/loss", "final/train/loss")
    for a, b in zip(chunked, whole, strict=True):
        assert {k: float(a[k]) for k in numeric} == pytest.approx(
            {k: float(b[k]) for k in numeric}, rel=2e-4
        )
        assert {k: v for k, v in a.items() if k not in numeric} == {
            k: v for k, v in b.items() if k not in numeric
        }


def test_a_member_over_the_budget_alone_is_refused_before_training(tmp_path):
    config = _vmap_grid(tmp_path, memory_limit_gb=1e-6)
    with pytest.raises(ConfigError) as raised:
        grid_search.run(config, tmp_path, ModeArgs())
    message = str(raised.value)
    assert message.startswith("group 1/1: one member alone needs ")
    assert (
        "more than the 1e-06 GiB budget (grid.memory_limit_gb): lower train.batch_size" in message
    )
    assert not list((tmp_path / "checkpoints").rglob("*"))  # nothing trained, nothing saved


def test_the_measured_program_runs_and_the_next_chunk_shares_it(tmp_path):
    """The check compiles the step the run calls (no second compilation), and a chunk's group
    for the next members reuses it."""
    config = _vmap_grid(tmp_path)
    data = training_data(config, jax.device_count())
    first, second = grid.expand(config)
    trainer = group.build([first], data.names, "vmap")
    totals, batch = grid.step_arguments(trainer, data)
    assert trainer.train_step_bytes(totals, batch) > 0
    with counting_compilations() as compiled:
        trainer.train(trainer.states, totals, batch)
        following = trainer.with_members([second])
    assert compiled == []
    alone = group.build([second], data.names, "vmap").states  # its own fresh state
    for a, b in zip(jax.tree.leaves(following.states), jax.tree.leaves(alone), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
    with counting_compilations() as compiled:
        states, _ = following.train(following.states, *grid.step_arguments(following, data))
    assert compiled == []
    assert int(states.step[0]) == 1


def test_the_budget_is_the_limit_set_else_the_devices_memory():
    assert group.memory_budget(2.5) == (round(2.5 * group.GIB), "grid.memory_limit_gb")
    budget, source = group.memory_budget(0.0)  # CPU: no allocator limit; the host's memory
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert budget == host // 4 and source == "the host's memory, shared by 4 CPU device(s)"


def test_a_negative_memory_limit_is_refused_by_name(tmp_path):
    config = _vmap_grid(tmp_path)
    config.grid.memory_limit_gb = -1.0
    with pytest.raises(
        ConfigError,
        match=re.escape("grid.memory_limit_gb=-1.0 is invalid: expected a number in [0.0, inf)"),
    ):
        config_lib.validate(config)
