"""Interrupted runs resume exactly: SIGTERM saves and stops, SIGKILL loses nothing checkpointed,
and the rerun of the same command ends with the numbers of a run never interrupted (bitwise)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from jaxdl.training import checkpoint
from tests.helpers import REPO

# A tiny synthetic ESC-50: 120 train clips in batches of 16 = 7 steps per epoch, 2 epochs.
_OVERRIDES = ("--config.data.source=synthetic", "--config.data.synthetic.num_classes=10",
              "--config.data.synthetic.clips_per_class_per_fold=4", "--config.model.channels=(8,16,16)",
              "--config.model.kernel_size=3", "--config.train.batch_size=16",
              "--config.train.epochs=2", "--config.train.lr=0.01", "--config.train.log_every_steps=2",
              "--config.train.checkpoint_every_steps=1", "--config.train.evaluate_test=False")


def _command(workdir: pathlib.Path, cache: pathlib.Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jaxdl.main", "--config", "configs/esc50.py",
            f"--workdir={workdir}", f"--config.data.cache_dir={cache}", *_OVERRIDES, *extra]


def _env() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    return env


def _steps(workdir: pathlib.Path, checkpoint_glob: str = "*") -> list[int]:
    """Finalised checkpoint steps of the run directories matching `checkpoint_glob`."""
    runs = [p for p in (workdir / "checkpoints").glob(checkpoint_glob) if p.is_dir()]
    return sorted(int(p.name) for run in runs for p in run.iterdir() if p.name.isdigit())


def start_and_signal(workdir, cache, sig: int, after_step: int, *extra: str,
                     checkpoint_glob: str = "*") -> subprocess.CompletedProcess:
    """Starts the command, waits until a checkpoint past `after_step` exists, sends `sig`.

    A grid's members checkpoint under `checkpoints/<grid>/<member>/`: `checkpoint_glob="*/*"`.
    """
    process = subprocess.Popen(_command(workdir, cache, *extra), cwd=REPO, env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if any(step > after_step for step in _steps(workdir, checkpoint_glob)):
            process.send_signal(sig)
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_command(workdir, cache, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(workdir, cache, *extra), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=900)


def _records(workdir: pathlib.Path) -> list[dict]:
    (log_dir,) = (workdir / "logs").iterdir()
    lines = (log_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _final_params(workdir: pathlib.Path):
    (directory,) = (workdir / "checkpoints").iterdir()
    with checkpoint.Checkpoints(directory, "accuracy", "max", read_only=True) as checkpoints:
        step = checkpoints.latest_step()
        meta = checkpoints.read_meta(step)
        restored = checkpoints._manager.restore(step)  # raw arrays, no template needed
    return step, meta, jax.tree.leaves(restored["state"]["params"])


def test_sigterm_then_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path):
    cache = tmp_path / "cache"
    reference = run_command(tmp_path / "reference", cache)
    assert reference.returncode == 0, reference.stderr[-2000:]

    workdir = tmp_path / "interrupted"
    # SIGTERM in epoch 1: a checkpoint at the current step, exit code 143, a resume hint.
    stopped = start_and_signal(workdir, cache, signal.SIGTERM, after_step=2)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "SIGTERM at step" in stopped.stderr and "rerun the same command" in stopped.stderr
    # SIGKILL in epoch 2, mid-epoch; then a simulated half-written step Orbax never finalised.
    killed = start_and_signal(workdir, cache, signal.SIGKILL, after_step=9)
    assert killed.returncode == -signal.SIGKILL
    assert "resuming from step" in killed.stdout
    (run_dir,) = (workdir / "checkpoints").iterdir()
    latest = max(_steps(workdir))
    partial = run_dir / f"{latest + 1}.orbax-checkpoint-tmp-1234567890"
    shutil.copytree(run_dir / str(latest), partial)
    for item in partial.rglob("*"):
        if item.is_file():
            item.write_bytes(item.read_bytes()[:7])
            break

    resumed = run_command(workdir, cache)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from step {latest}" in resumed.stdout
    assert len(list((workdir / "logs").iterdir())) == 1  # the same run, not a new one

    assert _records(workdir) == _records(tmp_path / "reference")
    step, meta, params = _final_params(workdir)
    ref_step, ref_meta, ref_params = _final_params(tmp_path / "reference")
    assert step == ref_step == 14 and meta["epoch"] == ref_meta["epoch"] == 2
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a, b)
    status = json.loads(next((workdir / "logs").iterdir()).joinpath("run_status.json").read_text())
    assert status["status"] == "finished"
