"""jaxdl's persistent compilation cache and matmul precision (`config.runtime`, utils/runtime.py).

The runs are real train runs in fresh subprocesses on their own cache folders: a warm run loads
every program the cold run wrote and repeats its numbers bit for bit, and a cache it cannot trust
(corrupt entries, a folder it cannot write, folders of another jax version or machine) costs
compile time only, never the run or its numbers.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import jaxlib
import pytest
from jax.experimental.compilation_cache import compilation_cache

from jaxdl import config as config_lib
from jaxdl.errors import ConfigError
from jaxdl.utils import runtime
from tests.helpers import REPO, SESSION_CACHE, tiny_esc50_config
from tests.test_cli_errors import _error_line, folders  # noqa: F401 (a fixture)

# One epoch of the tiny ESC-50 through the Python API, counting JAX's compilation-cache events.
_TRAIN = """
import json, sys
import jax
counts = {}
def count(name, **kwargs):
    counts[name.rpartition("/")[2]] = counts.get(name.rpartition("/")[2], 0) + 1
jax.monitoring.register_event_listener(count)
import jaxdl
from tests.helpers import tiny_esc50_config
config = tiny_esc50_config(None, epochs=1)
config.data.cache_dir = sys.argv[1]
result = jaxdl.run("train", config, workdir=sys.argv[2])
print(json.dumps({"result": result, "counts": counts}))
"""


def _train(cache: pathlib.Path, data: pathlib.Path, workdir: pathlib.Path, prefix=()) -> dict:
    """The run's numbers, its cache event counts and its stderr; asserts it succeeded."""
    env = {**os.environ, runtime.ENV: str(cache)}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _TRAIN, str(data), str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    numbers = {k: v for k, v in out["result"].items() if isinstance(v, float)}
    assert "test/accuracy" in numbers and "final/train/loss" in numbers
    return {"numbers": numbers, "counts": out["counts"], "stderr": done.stderr}


def _about_compiling(stderr: str) -> list[str]:
    """The lines of `stderr` on compiling or warnings (not the progress bars)."""
    return [line for line in stderr.splitlines() if "compil" in line or "arning" in line]


def _entries(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*-cache")}


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A cold run on an empty cache folder: (the folder it filled, a copy of it as it left it, the
    run). JAX's keys hold the folder's path (the GPU autotuning cache inside it is a compile
    option), so later runs use the same folder, restored from the copy."""
    base = tmp_path_factory.mktemp("cold") / "xla"
    run = _train(base, SESSION_CACHE, tmp_path_factory.mktemp("cold-run"))
    pristine = tmp_path_factory.mktemp("pristine") / "xla"
    shutil.copytree(base, pristine)
    return base, pristine, run


def _restored(cold) -> pathlib.Path:
    """The cold run's cache folder as the cold run left it; its keyed folder."""
    base, pristine, _ = cold
    shutil.rmtree(base)
    shutil.copytree(pristine, base)
    return runtime.keyed_folder(base)


def test_a_cold_run_writes_every_program_into_its_keyed_folder(cold):
    base, _, run = cold
    keyed = runtime.keyed_folder(base)
    assert [p for p in base.rglob("*-cache") if p.parent != keyed] == []
    assert run["counts"].get("cache_hits", 0) == 0
    assert run["counts"]["cache_misses"] == len(_entries(keyed)) > 3  # all written (suite: ≥0 s)
    assert _about_compiling(run["stderr"]) == []  # a normal run says nothing about its cache


def test_a_warm_run_loads_every_sound_program_compiles_damaged_ones_and_repeats_the_numbers(
    cold, tmp_path
):
    """One warm run checks both sides of reading the cache: every intact entry is loaded, and
    garbage, truncated and empty entries make JAX warn and compile them again; the numbers are
    the cold run's bit for bit. Folders of another jax version and another
    machine hold garbage under the same entry names beside it: they are never read."""
    base, _, first = cold
    keyed = _restored(cold)
    written = _entries(keyed)
    strangers = [
        base / "jax-0.9.0_jaxlib-0.9.0" / keyed.name,  # another version
        keyed.parent / f"{keyed.name.split('-')[0]}-0123456789ab",  # another CPU
    ]
    for folder in strangers:
        folder.mkdir(parents=True)
        for name in written:
            (folder / name).write_bytes(b"not an executable")
    damaged = sorted(written)[:3]
    garbage = (b"\x00garbage" * 100, written[damaged[1]][:100], b"")
    for name, content in zip(damaged, garbage, strict=True):
        (keyed / name).write_bytes(content)
    run = _train(base, SESSION_CACHE, tmp_path / "run")
    assert run["numbers"] == first["numbers"]
    assert run["counts"]["compile_requests_use_cache"] == len(written)
    assert run["counts"]["cache_hits"] == len(written) - len(damaged)
    # JAX's warnings (Python shows each distinct one once), and nothing else on compiling.
    said = [line for line in _about_compiling(run["stderr"]) if line.strip() != "warnings.warn("]
    assert said and all("Error reading persistent compilation cache entry" in x for x in said)
    assert sorted(_entries(keyed)) == sorted(written)
    for folder in strangers:
        assert set(_entries(folder).values()) == {b"not an executable"}


def test_a_cache_folder_it_cannot_write_is_left_alone_with_one_warning(cold, folders):  # noqa: F811
    """As a user (`nobody` when root) who may read but not write a populated cache folder."""
    writable, locked, prefix = folders
    shutil.copytree(cold[1], locked / "xla")
    keyed, first = runtime.keyed_folder(locked / "xla"), cold[2]
    (locked / "xla").chmod(0o755)
    before = _entries(keyed)
    shutil.copytree(SESSION_CACHE, writable / "data")
    for path in (writable / "data", *(writable / "data").rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    run = _train(locked / "xla", writable / "data", writable / "run", prefix)
    assert run["numbers"] == first["numbers"]
    assert _about_compiling(run["stderr"]) == [
        f"warning: compile cache {keyed} is not writable (Permission denied): compiling without "
        f"it; point --config.runtime.compile_cache or ${runtime.ENV} to a writable folder, or "
        "set it to off"
    ]
    assert _entries(keyed) == before


# --- several processes --------------------------------------------------------------------------

# A two-process job: each process sums a global array spread over both (a program both compile).
_PROCESS = """
import json, pathlib, sys
import jax, jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.experimental import multihost_utils
from jaxdl.utils import distributed, runtime
distributed.initialize()
counts = {}
def count(name, **kwargs):
    counts[name.rpartition("/")[2]] = counts.get(name.rpartition("/")[2], 0) + 1
jax.monitoring.register_event_listener(count)
runtime.use_compile_cache(runtime.keyed_folder(pathlib.Path(sys.argv[1])))
mesh = distributed.make_mesh()
local = jnp.arange(4.0) + 4 * jax.process_index()
spread = multihost_utils.host_local_array_to_global_array(local, mesh, P("data"))
total = jax.jit(jnp.sum)(spread).addressable_shards[0].data
print(json.dumps({"total": float(total), "counts": counts}))
"""


def _two_processes(cache: pathlib.Path) -> list[dict]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, str(cache)],
            cwd=REPO,
            env={
                **os.environ,
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": str(index),
            },
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stdout + stderr[-3000:]
    return [json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs]


def test_in_a_multi_process_job_only_process_0_writes(tmp_path):
    """JAX writes entries from process 0 only: never two writers of one file in a shared folder.
    On CPU the other processes' keys differ (their devices are part of them), so they compile
    every time, reading nothing process 0 wrote; on GPU JAX leaves the devices out of the key."""
    first = _two_processes(tmp_path / "xla")
    assert [run["total"] for run in first] == [sum(range(8))] * 2
    assert first[0]["counts"]["cache_misses"] > 0 and "cache_misses" not in first[1]["counts"]
    written = _entries(runtime.keyed_folder(tmp_path / "xla"))
    second = _two_processes(tmp_path / "xla")
    assert [run["total"] for run in second] == [sum(range(8))] * 2
    assert second[0]["counts"]["cache_hits"] == first[0]["counts"]["cache_misses"]
    assert all("cache_misses" not in run["counts"] for run in second)
    assert "cache_hits" not in second[1]["counts"]
    assert _entries(runtime.keyed_folder(tmp_path / "xla")) == written


# --- where the cache is, in-process -----------------------------------------------------------


# What runtime.configure sets in jax's config, put back after each in-process test.
_JAX_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_enable_compilation_cache",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_compilation_cache_max_size",
    "jax_default_matmul_precision",
)


@pytest.fixture
def restored():
    """The session's cache and jax's matmul precision, as they were before the test."""
    before = {name: getattr(jax.config, name) for name in _JAX_SETTINGS}
    yield
    for name, value in before.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def _config(tmp_path: pathlib.Path, **runtime_keys):
    config = tiny_esc50_config(tmp_path)
    config.data.cache_dir = str(tmp_path / "data")
    config.runtime.update(runtime_keys)
    return config


def test_auto_is_beside_the_data_cache_and_bounded(tmp_path, monkeypatch, restored):
    for name in (
        runtime.ENV,
        "JAX_COMPILATION_CACHE_MAX_SIZE",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    ):
        monkeypatch.delenv(name)  # the suite's settings (tests/conftest.py)
    runtime.configure(_config(tmp_path))
    expected = runtime.keyed_folder(tmp_path / "data" / "xla")
    assert jax.config.jax_compilation_cache_dir == str(expected) and expected.is_dir()
    assert jax.config.jax_enable_compilation_cache
    assert jax.config.jax_compilation_cache_max_size == runtime.MAX_BYTES
    assert jax.config.jax_persistent_cache_min_compile_time_secs == runtime.MIN_COMPILE_SECONDS


def test_jax_own_variables_win_over_the_size_bound_and_threshold(tmp_path, monkeypatch, restored):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    jax.config.update("jax_compilation_cache_max_size", -1)  # as jax read them at import
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    runtime.configure(_config(tmp_path))
    assert jax.config.jax_compilation_cache_max_size == -1
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0


def test_a_folder_setting_and_the_environment_override(tmp_path, monkeypatch, restored):
    monkeypatch.delenv(runtime.ENV)
    runtime.configure(_config(tmp_path, compile_cache=str(tmp_path / "mine")))
    assert jax.config.jax_compilation_cache_dir == str(runtime.keyed_folder(tmp_path / "mine"))
    monkeypatch.setenv(runtime.ENV, str(tmp_path / "env"))
    runtime.configure(_config(tmp_path, compile_cache="off"))
    assert jax.config.jax_compilation_cache_dir == str(runtime.keyed_folder(tmp_path / "env"))


def test_off_turns_the_cache_off_and_creates_no_folder(tmp_path, monkeypatch, restored):
    monkeypatch.delenv(runtime.ENV)
    runtime.configure(_config(tmp_path, compile_cache="off"))
    assert not jax.config.jax_enable_compilation_cache
    assert jax.config.jax_compilation_cache_dir is None
    monkeypatch.setenv(runtime.ENV, "off")
    runtime.configure(_config(tmp_path))  # "auto" in the config, "off" in the environment
    assert not jax.config.jax_enable_compilation_cache
    assert not (tmp_path / "data").exists()


def test_modes_that_compile_nothing_leave_no_cache_folder(tmp_path, monkeypatch, restored):
    monkeypatch.delenv(runtime.ENV)
    runtime.configure(_config(tmp_path), compiles=False)
    assert not (tmp_path / "data").exists()


def test_the_folder_is_keyed_by_versions_and_the_cpu():
    assert runtime.keyed_folder(pathlib.Path("/c")).parent == pathlib.Path(
        f"/c/jax-{jax.__version__}_jaxlib-{jaxlib.__version__}"
    )
    intel = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: sse avx2"
    with_avx512 = intel + " avx512f"
    second_core = "\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t: x"
    assert runtime.cpu_fingerprint(intel) == runtime.cpu_fingerprint(intel + second_core)
    assert runtime.cpu_fingerprint(intel) != runtime.cpu_fingerprint(with_avx512)
    assert runtime.cpu_fingerprint(intel) != runtime.cpu_fingerprint(intel.replace("Xeon", "EPYC"))
    assert len(runtime.cpu_fingerprint()) == 12


# --- matmul precision and bad values ------------------------------------------------------------


def _dot_precision() -> str:
    a = jnp.ones((4, 4))
    text = jax.jit(jnp.dot).lower(a, a).as_text()
    return text.split("precision = [")[1].split(",")[0]


def test_matmul_precision_reaches_the_compiled_dot(tmp_path, restored):
    for setting, in_hlo in (("highest", "HIGHEST"), ("high", "HIGH"), ("default", "DEFAULT")):
        runtime.configure(_config(tmp_path, matmul_precision=setting), compiles=False)
        assert _dot_precision() == in_hlo


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("matmul_precision", "fast", "one of ['default', 'high', 'highest']"),
        ("compile_cache", "", "'auto' (beside the data cache), 'off', or a folder"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as refused:
        config_lib.validate(_config(tmp_path, **{key: value}))
    assert str(refused.value) == f"runtime.{key}={value!r} is invalid: expected {expected}"


def test_a_cache_setting_naming_a_file_is_one_line_exit_2(tmp_path):
    not_a_folder = tmp_path / "cache.txt"
    not_a_folder.write_text("mine")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdl.main",
            "--config=configs/esc50.py:synthetic",
            f"--config.data.cache_dir={tmp_path}",
            f"--workdir={tmp_path}",
        ],
        cwd=REPO,
        env={**os.environ, runtime.ENV: str(not_a_folder)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert _error_line(done) == (
        f"${runtime.ENV}={str(not_a_folder)!r} is invalid: expected 'auto', 'off' or a folder, "
        f"and {not_a_folder} is a file; set ${runtime.ENV} to a folder or to off"
    )
    assert not_a_folder.read_text() == "mine"
