"""A skip not listed in tests/allowed_skips.txt fails the run and is named; `without torch` lines
stop holding once torch is expected. Checked by running pytest on a tiny generated test file."""

import subprocess
import sys

import pytest

from tests import skip_policy
from tests.helpers import REPO

SAMPLE = """
import pytest

def test_runs():
    pass

def test_listed():
    pytest.skip("listed on purpose")

def test_needs_torch():
    pytest.importorskip("torch")

def test_unlisted():
    pytest.skip("a check silently not run")

@pytest.mark.xfail(reason="an expected failure is no skip")
def test_expected_failure():
    assert False
"""
LIST = """
# comment lines and blank lines are ignored
test_sample.py::test_listed | always | listed on purpose
test_sample.py::*torch* | without torch | compares with torch
test_missing_dep.py* | always | a dependency this sample does without
"""
# Runs pytest with torch unimportable (find_spec and import both see it missing) and without the
# repository's conftest: only the policy's hooks, through the sample folder's own conftest.
RUN_WITHOUT_TORCH = "import sys, pytest; sys.modules['torch'] = None; sys.exit(pytest.main())"


def _run(tmp_path, allowed: str, expect_torch: bool) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(
        "from tests.skip_policy import (pytest_collectreport, pytest_configure, "
        "pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary)\n"
    )
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "test_missing_dep.py").write_text(
        'import pytest\npytest.importorskip("no_such_module_for_jaxdl")\n'
        "def test_never_collected():\n    pass\n"
    )
    (tmp_path / "allowed.txt").write_text(allowed)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "JAXDL_ALLOWED_SKIPS": str(tmp_path / "allowed.txt"),
    }
    if expect_torch:
        env["JAXDL_EXPECT_TORCH"] = "1"
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TORCH, "-p", "no:cacheprovider", "-rN", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unlisted_skip_fails_the_run_and_is_named(tmp_path):
    result = _run(tmp_path, LIST, expect_torch=False)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 passed, 4 skipped, 1 xfailed" in out  # the tests themselves all did as told
    assert "error: 1 skipped test(s) not allowed by" in out
    assert "test_sample.py::test_unlisted (Skipped: a check silently not run)" in out
    refused = out.split("skips not allowed")[1]
    for allowed in ("test_listed", "test_needs_torch", "test_missing_dep", "test_expected_failure"):
        assert allowed not in refused


def test_torch_skips_are_refused_when_torch_is_expected(tmp_path):
    result = _run(tmp_path, LIST, expect_torch=True)
    assert result.returncode == 1
    assert "error: 2 skipped test(s)" in result.stdout
    assert (
        "test_sample.py::test_needs_torch (Skipped: could not import 'torch': import of torch "
        "halted; None in sys.modules; listed 'without torch', which does not hold in this "
        "run)"
    ) in result.stdout


def test_a_module_skipped_at_collection_is_named_by_its_path(tmp_path):
    listed = LIST.replace(
        "test_missing_dep.py* | always | a dependency this sample does without", ""
    )
    result = _run(
        tmp_path, listed + "test_sample.py::test_unlisted | always | sample\n", expect_torch=False
    )
    assert result.returncode == 1
    assert (
        "test_missing_dep.py (Skipped: could not import 'no_such_module_for_jaxdl'" in result.stdout
    )


def test_every_skip_listed_passes(tmp_path):
    result = _run(
        tmp_path, LIST + "test_sample.py::test_unlisted | always | sample\n", expect_torch=False
    )
    assert result.returncode == 0, result.stdout
    assert "skips not allowed" not in result.stdout


def test_malformed_line_stops_pytest_naming_the_line(tmp_path):
    result = _run(tmp_path, "test_sample.py::test_listed | sometimes | why\n", expect_torch=False)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "allowed.txt:1: expected 'node id or pattern | when | reason'" in result.stderr


def test_every_listed_file_exists():
    """A renamed or deleted test file leaves no stale line behind."""
    for entry in skip_policy.read_allowed_skips(skip_policy.DEFAULT_LIST):
        path = entry.pattern.split("::")[0].rstrip("*")
        assert (REPO / path).is_file(), f"{entry.pattern}: no file {path}"


def test_the_repository_list_holds_torch_and_root_skips_to_their_conditions():
    entries = skip_policy.read_allowed_skips(skip_policy.DEFAULT_LIST)
    ci, laptop = {"always"}, {"always", "without torch", "without root"}
    for torch_test in (
        "tests/test_torch_twins.py",
        "tests/test_training_parity.py",
        "tests/training/test_optim.py::test_five_steps_match_torch[adamw]",
    ):
        assert skip_policy.is_allowed(torch_test, entries, laptop), torch_test
        assert not skip_policy.is_allowed(torch_test, entries, ci), torch_test
    full_disk = (
        "tests/training/test_checkpoint.py::test_a_full_disk_during_a_save_is_one_clear_"
        "error_and_keeps_the_complete_steps"
    )
    assert skip_policy.is_allowed(full_disk, entries, laptop)
    assert not skip_policy.is_allowed(full_disk, entries, ci)
    soak = (
        "tests/training/test_soak.py::test_a_grid_killed_in_its_second_group_resumes_to_the_"
        "same_summary"
    )
    assert skip_policy.is_allowed(soak, entries, ci)
    assert not skip_policy.is_allowed("tests/test_main.py::test_anything", entries, laptop)
