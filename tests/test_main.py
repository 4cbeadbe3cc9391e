"""The command line: clean errors for bad overrides and values, before any compute."""

import subprocess
import sys

import pytest

from tests.helpers import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxdl.main", "--config", "configs/esc50.py", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


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
        ("--config.model.channels=32", "model.channels=(32,) is invalid: expected three positive "
                                       "widths"),
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
