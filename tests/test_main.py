"""The command line: clean errors for bad overrides and values, before any compute."""

import subprocess
import sys

from tests.helpers import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxdl.main", "--config", "configs/esc50.py", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_unknown_config_key_is_a_clean_error_naming_the_key():
    result = _run("--config.train.learning_rate=0.1")
    assert result.returncode == 2
    assert "unknown config key" in result.stderr and "train.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_value_names_the_key_and_the_expected_range():
    result = _run("--config.train.lr=-0.1")
    assert result.returncode == 2
    assert "train.lr=-0.1 is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_overlapping_folds_are_rejected():
    result = _run("--config.data.val_folds=(3,)")
    assert result.returncode == 2
    assert "data.train_folds" in result.stderr and "shared: [3]" in result.stderr


def test_wrong_type_is_a_flags_error():
    result = _run("--config.train.epochs=abc")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
