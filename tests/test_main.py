"""The command line: clean errors for bad overrides and values, before any compute."""

import subprocess
import sys

import pytest

from jaxdl import config as config_lib
from jaxdl import main
from tests.helpers import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxdl.main", "--config", "configs/esc50.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_config_key_is_a_clean_error_naming_the_key():
    result = _run("--config.train.learning_rate=0.1")
    assert result.returncode == 2
    assert "unknown config key" in result.stderr and "train.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--config.train.lr=-0.1", "train.lr=-0.1 is invalid: expected a number in (0.0, inf)"),
        # A bare number for a tuple key arrives as a 1-tuple, then fails validation.
        (
            "--config.model.channels=32",
            "model.channels=(32,) is invalid: expected three positive widths",
        ),
    ],
)
def test_bad_value_names_the_key_and_the_allowed_values(override, message):
    result = _run(override)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_overlapping_folds_are_rejected():
    result = _run("--config.data.val_folds=(3,)")
    assert result.returncode == 2
    assert "data.train_folds" in result.stderr and "shared: [3]" in result.stderr


def test_wrong_type_is_a_flags_error_naming_the_key_and_type():
    result = _run("--config.train.lr=abc")
    assert result.returncode == 2
    assert "--config.train.lr=abc: could not convert string to float" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_task_name_is_handed_to_config_flags_as_its_config_file():
    """`--config esc50:synthetic` reaches config_flags as the file's path with the preset kept; a
    path is passed on as written, and the last `--config` counts, as in absl."""
    esc50 = config_lib.CONFIG_DIR / "esc50.py"
    assert main._check_config(["jaxdl", "--config=esc50:synthetic", "--mode=bench"]) == [
        "jaxdl",
        f"--config={esc50}:synthetic",
        "--mode=bench",
    ]
    assert main._check_config(["jaxdl", "--config", "esc50", "--config.train.lr=0.1"]) == [
        "jaxdl",
        "--config",
        str(esc50),
        "--config.train.lr=0.1",
    ]
    argv = ["jaxdl", "--config", "celeba", "--config", "configs/esc50.py:synthetic"]
    assert main._check_config(argv) == argv


def test_a_task_name_works_from_any_folder(tmp_path):
    """From a folder without configs/: the task's config is loaded (the bad value is its key's),
    and an unknown name lists the task configs."""

    def jaxdl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jaxdl.main", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = jaxdl("--config=esc50:synthetic", "--config.train.lr=-0.1")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "error: train.lr=-0.1 is invalid: expected a number in (0.0, inf)" in result.stderr
    result = jaxdl("--config", "esc5")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: --config esc5: no config file for task 'esc5': the task configs are "
        f"{', '.join(config_lib.task_config_names())} (in {config_lib.CONFIG_DIR}); a config file "
        "elsewhere is passed by its path, e.g. --config my_configs/my_task.py"
    )
    assert list(tmp_path.iterdir()) == []
