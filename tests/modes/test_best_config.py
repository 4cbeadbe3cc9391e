"""best_config.py embeds user strings as literals: loading it runs none of their text."""

import importlib.util

from jaxdl.modes import grid_search
from tests.helpers import load_config

_HOSTILE = 'g""" if __import__("os").system("touch PWNED") else """'


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
    grid_search.write_best_config(path, best, best, f"Best of grid {_HOSTILE}: {_HOSTILE}")
    module = _load(path)
    loaded = module.get_config()
    assert not (tmp_path / "PWNED").exists()
    assert loaded.run_name == _HOSTILE and loaded.data.dir == best.data.dir
    assert module.__doc__ == f"Best of grid {_HOSTILE}: {_HOSTILE}"
