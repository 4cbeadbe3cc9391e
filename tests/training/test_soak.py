"""Soak (opt-in, `JAXDL_SOAK=1 pytest tests/training/test_soak.py`, a few minutes): a grid of
four members in two groups trains for several epochs, is killed with SIGKILL in the middle of
its second group, and the rerun of the same command ends with the summary of a grid never
interrupted: nothing lost, nothing retrained twice into different numbers."""

import csv
import os
import signal

import pytest

from tests.training import test_resume as resume

pytestmark = pytest.mark.skipif(
    os.environ.get("JAXDL_SOAK") != "1", reason="soak test: set JAXDL_SOAK=1 to run it"
)

_GRID = (
    "--mode=grid_search",
    "--config.grid.lr=(0.01,0.003)",
    "--config.grid.weight_decay=(0.0001,)",
    "--config.grid.model.channels=((8,16,16),)",
    "--config.grid.model.kernel_size=(3,1)",
    "--config.grid.epochs=6",
    "--config.grid.strategy=sequential",
)


def _summary(workdir):
    (grid_dir,) = (workdir / "logs").iterdir()
    rows = list(csv.DictReader((grid_dir / "summary.csv").open()))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_a_grid_killed_in_its_second_group_resumes_to_the_same_summary(tmp_path):
    cache = tmp_path / "cache"
    reference = resume.run_command(tmp_path / "reference", cache, *_GRID)
    assert reference.returncode == 0, reference.stderr[-2000:]

    workdir = tmp_path / "interrupted"
    # Each group: 6 epochs x 7 steps = 42 steps; a checkpoint past step 10 of the second group.
    killed = resume.start_and_signal(
        workdir, cache, signal.SIGKILL, 10, *_GRID, checkpoint_glob="*/*kernel_size-1*"
    )
    assert killed.returncode == -signal.SIGKILL
    resumed = resume.run_command(workdir, cache, *_GRID)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stdout
    assert _summary(workdir) == _summary(tmp_path / "reference")
