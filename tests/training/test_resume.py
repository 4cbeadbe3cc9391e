"""Interrupted runs resume exactly: SIGTERM and Ctrl-C save and stop, SIGKILL loses nothing
checkpointed, and the rerun of the same command ends with the numbers of a run never interrupted
(bitwise). A second command started while a run trains is refused and writes nothing.

The runs follow a cosine lr schedule with warmup, so the schedule's step count is resumed too (the
default constant lr adds no state to the optimizer's): the first interruption falls in the
warmup, the second in the cosine."""

import json
import math
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxdl.training import checkpoint
from tests.helpers import REPO, SESSION_CACHE, tensorboard_scalars

# A tiny synthetic ESC-50: 120 train clips in batches of 16 = 7 steps per epoch, 2 epochs; lr
# 0.01 reached after 3 warmup steps, then a cosine over the 11 steps left.
_OVERRIDES = (
    "--config.data.source=synthetic",
    "--config.data.synthetic.num_classes=10",
    "--config.data.synthetic.clips_per_class_per_fold=4",
    "--config.model.channels=(8,16,16)",
    "--config.model.kernel_size=3",
    "--config.train.batch_size=16",
    "--config.train.epochs=2",
    "--config.train.lr=0.01",
    "--config.train.log_every_steps=2",
    "--config.train.checkpoint_every_steps=1",
    "--config.train.evaluate_test=False",
    "--config.train.schedule=cosine",
    "--config.train.warmup_steps=3",
)


def _scheduled_lr(step: int) -> float:
    """The lr of step 1..14, written out: count/3 of the peak for count = step - 1 < 3, then
    (1 + cos(π · (count - 3) / 11)) / 2."""
    count = step - 1
    factor = count / 3 if count < 3 else (1 + math.cos(math.pi * (count - 3) / 11)) / 2
    return 0.01 * factor


def _command(workdir: pathlib.Path, cache: pathlib.Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxdl.main",
        "--config",
        "configs/esc50.py",
        f"--workdir={workdir}",
        f"--config.data.cache_dir={cache}",
        *_OVERRIDES,
        *extra,
    ]


def _env() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"
    return env


def _steps(workdir: pathlib.Path, checkpoint_glob: str = "*") -> list[int]:
    """Finalised checkpoint steps of the run directories matching `checkpoint_glob`."""
    runs = [p for p in (workdir / "checkpoints").glob(checkpoint_glob) if p.is_dir()]
    return sorted(int(p.name) for run in runs for p in run.iterdir() if p.name.isdigit())


def _start_past(
    workdir, cache, after_step: int, *extra: str, checkpoint_glob: str = "*"
) -> subprocess.Popen:
    """Starts the command and returns once it has saved a checkpoint past `after_step`."""
    process = subprocess.Popen(
        _command(workdir, cache, *extra),
        cwd=REPO,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if any(step > after_step for step in _steps(workdir, checkpoint_glob)):
            break
        time.sleep(0.05)
    return process


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def start_and_signal(
    workdir, cache, sig: int, after_step: int, *extra: str, checkpoint_glob: str = "*"
) -> subprocess.CompletedProcess:
    """Starts the command, waits until a checkpoint past `after_step` exists, sends `sig`.

    A grid's members checkpoint under `checkpoints/<grid>/<member>/`: `checkpoint_glob="*/*"`.
    """
    process = _start_past(workdir, cache, after_step, *extra, checkpoint_glob=checkpoint_glob)
    process.send_signal(sig)
    return _finish(process)


def run_command(workdir, cache, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(workdir, cache, *extra),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
    """The workdir of the command run once, never interrupted."""
    workdir = tmp_path_factory.mktemp("reference")
    result = run_command(workdir, SESSION_CACHE)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


def _assert_same_as(workdir: pathlib.Path, reference: pathlib.Path) -> None:
    assert _records(workdir) == _records(reference)
    step, meta, params = _final_params(workdir)
    ref_step, ref_meta, ref_params = _final_params(reference)
    assert step == ref_step == 14 and meta["epoch"] == ref_meta["epoch"] == 2
    for a, b in zip(params, ref_params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_then_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, reference):
    cache = SESSION_CACHE
    workdir = tmp_path / "interrupted"
    # SIGTERM in epoch 1: a checkpoint at the current step, exit code 143, a resume hint.
    stopped = start_and_signal(workdir, cache, signal.SIGTERM, after_step=2)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "SIGTERM at step" in stopped.stderr and "rerun the same command" in stopped.stderr
    # SIGKILL once epoch 1's last step (7) is checkpointed, usually before step 8 or the epoch's
    # validation ends: the resume starts at an epoch boundary. Then a simulated half-written step
    # Orbax never finalised.
    killed = start_and_signal(workdir, cache, signal.SIGKILL, after_step=6)
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
    _assert_same_as(workdir, reference)
    status = json.loads(next((workdir / "logs").iterdir()).joinpath("run_status.json").read_text())
    assert status["status"] == "finished"
    # The lr logged each epoch (its last step) and every 2 steps follows the schedule.
    assert [r["train/lr"] for r in _records(workdir)] == pytest.approx(
        [_scheduled_lr(7), _scheduled_lr(14)], rel=1e-5
    )
    (reference_logs,) = (reference / "logs").iterdir()
    logged = tensorboard_scalars(reference_logs)["train/lr"]
    assert [step for step, _ in logged] == [2, 4, 6, 8, 10, 12, 14]
    assert [lr for _, lr in logged] == pytest.approx(
        [_scheduled_lr(s) for s, _ in logged], rel=1e-5
    )


def _tree(directory: pathlib.Path) -> dict:
    """Every file under `directory` with its content and modification time."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _stop(process: subprocess.Popen) -> None:
    """SIGSTOP, then wait until every thread has stopped: the signal is delivered
    asynchronously, and a checkpoint thread still writing would change the tree under the test."""
    process.send_signal(signal.SIGSTOP)
    tasks = pathlib.Path(f"/proc/{process.pid}/task")
    deadline = time.time() + 30
    while time.time() < deadline:
        states = []
        for task in tasks.iterdir():
            try:  # the state follows the command name in parentheses
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:  # a thread that has just exited
                continue
        if all(state in "tT" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {process.pid} did not stop within 30 s: thread states {states}")


def test_a_second_command_is_refused_while_the_run_trains_then_ctrl_c_saves(tmp_path, reference):
    workdir = tmp_path / "run"
    first = _start_past(workdir, SESSION_CACHE, after_step=2)
    _stop(first)  # held mid-training, its lock held
    try:
        (log_dir,) = (workdir / "logs").iterdir()
        before = _tree(workdir)
        second = run_command(workdir, SESSION_CACHE)  # the same command
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.splitlines()[-1] == (
            f"error: run {log_dir} is in use by host {socket.gethostname()} pid {first.pid} "
            f"(lock {log_dir / 'run.lock'}); wait for it to finish or stop it, then run again"
        )
        assert "Traceback" not in second.stderr
        assert _tree(workdir) == before  # no metrics line, no checkpoint, nothing
    finally:
        first.send_signal(signal.SIGCONT)

    first.send_signal(signal.SIGINT)  # Ctrl-C: save at the current step and stop
    stopped = _finish(first)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    step = int(
        re.search(
            r"SIGINT at step (\d+) \(epoch \d\): checkpoint saved in "
            rf"{workdir / 'checkpoints' / log_dir.name}; rerun the same command to "
            "resume",
            stopped.stderr,
        ).group(1)
    )
    assert max(_steps(workdir)) == step and "Traceback" not in stopped.stderr

    resumed = run_command(workdir, SESSION_CACHE)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from step {step} " in resumed.stdout
    _assert_same_as(workdir, reference)


def test_the_device_path_resumes_bitwise_with_its_own_draws(tmp_path, reference):
    """With the augmentation drawn in the step (data.augment_on=device), the draws follow the
    step, not the calls: a run stopped mid-epoch and rerun ends with the uninterrupted run's
    numbers, and those differ from the host path's (the step really draws)."""
    device = ("--config.data.augment_on=device",)
    uninterrupted = tmp_path / "device"
    assert run_command(uninterrupted, SESSION_CACHE, *device).returncode == 0
    workdir = tmp_path / "device-interrupted"
    stopped = start_and_signal(workdir, SESSION_CACHE, signal.SIGTERM, 9, *device)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    resumed = run_command(workdir, SESSION_CACHE, *device)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stdout
    _assert_same_as(workdir, uninterrupted)
    assert _records(uninterrupted) != _records(reference)
