"""Grid expansion (every member validated, grouped by architecture) and best_config.py, which
embeds user strings as literals: loading it runs none of their text."""

import importlib.util

import numpy as np
import pytest

from jaxdl.errors import ConfigError
from jaxdl.training import grid
from tests.helpers import load_config

_HOSTILE = 'g""" if __import__("os").system("touch PWNED") else """'


def test_a_grid_value_that_makes_no_valid_model_is_named():
    config = load_config("tiny_imagenet")
    config.grid.model.branch_channels = ((64, 64, 64), (64, 64, 32))
    with pytest.raises(ConfigError, match=r"grid member .*branch_channels.*sum"):
        grid.expand(config)
    config = load_config("cub200")
    members = grid.expand(config)
    assert len(members) == 3 * 2 * 2 * 2
    assert len({grid.architecture(m) for m in members}) == 4
    np.testing.assert_equal(sorted({m.train.lr for m in members}), [5e-4, 1e-3, 2e-3])


def _load(path):
    spec = importlib.util.spec_from_file_location("best_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hostile_run_name_and_paths_load_as_plain_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `touch PWNED` would land
    best = load_config("esc50")
    best.run_name = _HOSTILE
    best.data.dir = "x'''\nimport os; os.system('touch PWNED')\n'''"
    path = tmp_path / "best_config.py"
    grid.write_best_config(path, best, best, f"Best of grid {_HOSTILE}: {_HOSTILE}")
    module = _load(path)
    loaded = module.get_config()
    assert not (tmp_path / "PWNED").exists()
    assert loaded.run_name == _HOSTILE and loaded.data.dir == best.data.dir
    assert module.__doc__ == f"Best of grid {_HOSTILE}: {_HOSTILE}"


def test_the_plan_shows_that_overriding_one_axis_keeps_the_other_defaults():
    """`--config.grid.lr=0.01` on CelebA still trains 12 members: the plan says so, and why."""
    config = load_config("celeba", "synthetic")
    config.grid.lr = (0.01,)
    lines = grid.plan(config, grid.expand(config), steps_per_epoch=2544)
    assert lines == [
        "grid plan: 12 members = 1 lr x 2 weight_decay x 2 channels_block3 x 3 dropout x 1 seeds",
        "  lr: 0.01  (grid.lr, changed)",
        "  weight_decay: 1e-05, 0.0001  (grid.weight_decay, default of configs/celeba.py)",
        "  channels_block3: 192, 256  (grid.model.channels_block3, default of configs/celeba.py)",
        "  dropout: 0, 0.2, 0.4  (grid.model.dropout, default of configs/celeba.py)",
        "  seeds: 42  (grid.seeds, default of configs/celeba.py)",
        "  6 group(s) (one per architecture) of 2 member(s), each 3 epochs x 2,544 steps = "
        "7,632 steps",
        "  91,584 member-steps in all; each group's time and the time left are printed as it ends",
        "  an axis not set keeps its default above: set it too "
        "(e.g. --config.grid.weight_decay='(1e-05,)') to train fewer members",
    ]


def test_the_plan_names_a_model_key_the_grid_does_not_vary():
    config = load_config("esc50")
    config.grid.update(lr=(0.01,), weight_decay=(0.0,), seeds=(1, 2))
    config.grid.model = {"kernel_size": (3,)}
    lines = grid.plan(config, grid.expand(config), steps_per_epoch=10)
    assert (
        lines[0]
        == "grid plan: 2 members = 1 lr x 1 weight_decay x 1 channels x 1 kernel_size x 2 seeds"
    )
    assert lines[3] == "  channels: (32, 64, 128)  (model.channels, default of configs/esc50.py)"
    assert lines[4] == "  kernel_size: 3  (grid.model.kernel_size, changed)"
    assert not lines[-1].startswith("  an axis not set")  # no default axis has two values
