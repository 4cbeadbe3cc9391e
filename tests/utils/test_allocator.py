"""The command line runs under mimalloc on Linux (jaxdl/utils/allocator.py): the same process,
re-executed once with the library preloaded and purging off; `JAXDL_ALLOCATOR=system` keeps
glibc's malloc, and a wrong value is refused before anything runs."""

import json
import os
import platform
import subprocess
import sys

import pytest

from jaxdl.utils import allocator
from tests.helpers import REPO

SHIPPED = sys.platform == "linux" and platform.machine() == "x86_64"  # pyproject.toml's marker

# What a process reports about itself once `run_under_mimalloc` has returned.
PROBE = (
    "import os; from jaxdl.utils import allocator; pid = os.getpid(); "
    "allocator.run_under_mimalloc(); "
    "print(allocator.in_use(), os.environ.get('MIMALLOC_PURGE_DELAY'), pid == os.getpid())"
)


def _probe(**env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "JAXDL_ALLOCATOR")
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=environment | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_library_is_installed_where_pyproject_ships_it():
    assert (allocator.mimalloc_library() is not None) == SHIPPED


@pytest.mark.skipif(not SHIPPED, reason="cmeel-mimalloc is installed on Linux x86_64 only")
def test_the_process_reexecutes_itself_under_mimalloc_with_purging_off():
    result = _probe()
    assert result.returncode == 0, result.stderr
    # Same pid: exec, not a child; the caller's exit status and signals stay its own.
    assert result.stdout.split() == ["mimalloc", "-1", "True"]
    assert allocator.in_use() == "system"  # pytest itself was not touched


def test_system_keeps_glibc_malloc():
    result = _probe(JAXDL_ALLOCATOR="system")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["system", "None", "True"]


def test_a_wrong_choice_is_refused_with_the_variable_and_the_choices():
    result = _probe(JAXDL_ALLOCATOR="jemalloc")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: JAXDL_ALLOCATOR='jemalloc': expected mimalloc or system"
    )
    assert result.stdout == ""


@pytest.mark.skipif(not SHIPPED, reason="cmeel-mimalloc is installed on Linux x86_64 only")
def test_bench_from_the_command_line_records_mimalloc():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdl.main",
            "--config",
            "configs/celeba.py",
            "--mode=bench",
            "--config.train.batch_size=4",
            "--config.bench.warmup=1",
            "--config.bench.steps=1",
            "--config.bench.grid=False",
            "--config.bench.pipeline=False",
        ],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "JAXDL_ALLOCATOR"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["allocator"] == "mimalloc"
