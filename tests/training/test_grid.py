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
