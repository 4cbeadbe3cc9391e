"""Ordinary command-line mistakes end in one line `error: …` naming the file, key or folder, with
exit status 2 and no traceback, before any compute (each was once a Python traceback)."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import REPO

# A valid tiny run: what the folder and torch cases add their one mistake to.
SYNTHETIC = [
    "--config",
    "configs/esc50.py:synthetic",
    "--config.data.synthetic.num_classes=2",
    "--config.data.synthetic.clips_per_class_per_fold=1",
    "--config.train.epochs=1",
]


def _jaxdl(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "jaxdl.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a clean failure (rc 2, no traceback), without its prefix."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    return errors[0].removeprefix("error: ")


def test_missing_config_file():
    assert _error_line(_jaxdl("--config", "nope.py")) == (
        f"--config nope.py: nope.py does not exist; expected a config file such as "
        f"configs/esc50.py (the task configs are in {REPO / 'configs'})"
    )


def test_config_file_with_a_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "my_config.py"
    path.write_text("import ml_collections\n\n\ndef get_config(preset=None:\n    return 1\n")
    assert _error_line(_jaxdl("--config", str(path))) == (
        f"--config {path}: syntax error in {path} line 4 in 'def get_config(preset=None:': "
        "invalid syntax; fix the file"
    )


def test_config_file_raising_names_file_and_line(tmp_path):
    path = tmp_path / "my_config.py"
    path.write_text("def get_config(preset=None):\n    return CONFIG\n")
    assert _error_line(_jaxdl(f"--config={path}", "--config.train.lr=0.1")) == (
        f"--config {path}: running {path} line 2 raised NameError: name 'CONFIG' is not defined; "
        "fix the file"
    )


def test_unknown_preset_names_the_presets():
    assert _error_line(_jaxdl("--config", "configs/esc50.py:nonsense")) == (
        "--config configs/esc50.py:nonsense: unknown preset 'nonsense'; the presets are "
        "['synthetic'], given after the file name (configs/<task>.py:synthetic), or none for the "
        "task's defaults"
    )


def test_unknown_key_names_only_that_key_and_the_closest_one():
    """Not a repr of every override: the other override (with its quote) is not echoed."""
    result = _jaxdl(
        "--config", "configs/esc50.py", "--config.run_name=it's", "--config.train.learning_rate=0.1"
    )
    assert _error_line(result) == (
        "unknown config key 'train.learning_rate' "
        "(--config.train.learning_rate); did you mean train.lr?"
    )


def test_non_finite_learning_rate():
    """Every float key refuses inf and nan (tests/test_config.py); this is the command line."""
    assert _error_line(_jaxdl("--config", "configs/esc50.py", "--config.train.lr=1e400")) == (
        "train.lr=inf is invalid: expected a finite number (not inf or nan)"
    )


def test_run_name_with_a_slash_is_refused_before_anything_is_written(tmp_path):
    line = _error_line(_jaxdl(*SYNTHETIC, "--config.run_name=exp/1", "--workdir", str(tmp_path)))
    assert line.startswith(
        "run_name='exp/1' is invalid: expected at most 200 letters, digits "
        "and . _ - + = , @ (no spaces, quotes or '/')"
    )
    assert list(tmp_path.iterdir()) == []


def test_overriding_the_task_points_to_the_tasks_config_file():
    line = _error_line(_jaxdl("--config", "configs/esc50.py", "--config.task=celeba"))
    assert line.startswith(
        "model.name='esc50_cnn' is invalid: expected 'celeba_cnn', the model "
        "of task 'celeba': to run another task, pass its config file"
    )


def test_missing_config_flag_and_stray_arguments():
    assert _error_line(_jaxdl()) == (
        "--config is required, e.g. --config configs/esc50.py or configs/esc50.py:synthetic"
    )
    assert _error_line(_jaxdl("--config", "configs/esc50.py", "train")).startswith(
        "unexpected arguments ['train']"
    )


def test_missing_flagfile_is_named_without_a_traceback():
    line = _error_line(_jaxdl("--flagfile=no_such_flags.txt", "--config", "esc50"))
    assert "Unable to open flagfile" in line and "no_such_flags.txt" in line


def test_workdir_that_is_a_file(tmp_path):
    workdir = tmp_path / "results"
    workdir.write_text("not a folder")
    assert _error_line(_jaxdl(*SYNTHETIC, "--workdir", str(workdir))) == (
        f"--workdir {workdir}: {workdir} is a file, not a folder; pass --workdir=<a folder you can "
        "write> (it is created if missing) or change its permissions"
    )
    assert workdir.read_text() == "not a folder"


# --- Folders without write permission ---------------------------------------------------------
# Root ignores permissions, so as root the command runs as `nobody`, with CAP_DAC_READ_SEARCH so
# that it can still read everything (the interpreter may live under /root, mode 0700) but writes
# only where permissions let it. As another user, chmod takes the write permission away.

_NOBODY = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
)


@pytest.fixture
def folders():
    """(a folder writable by the command, a folder it cannot write, the command's prefix), in a
    fresh folder under the system temp dir (pytest's tmp_path is 0700 root's, which `nobody`
    cannot search when checking access)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="jaxdl-perm-"))
    base.chmod(0o755)
    writable, locked = base / "writable", base / "locked"
    writable.mkdir(mode=0o777)
    writable.chmod(0o777)  # mkdir's mode is masked by the umask
    locked.mkdir()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux) to drop to nobody")
        locked.chmod(0o755)  # root's: nobody may read and search it, not write
        prefix = _NOBODY
    else:
        locked.chmod(0o555)
        prefix = ()
    yield writable, locked, prefix
    locked.chmod(0o755)
    shutil.rmtree(base)


def test_unwritable_workdir_is_named_before_compute(folders):
    writable, locked, prefix = folders
    workdir = locked / "experiments"
    result = _jaxdl(
        *SYNTHETIC, f"--config.data.cache_dir={writable}", "--workdir", str(workdir), prefix=prefix
    )
    assert _error_line(result).startswith(
        f"--workdir {workdir}: folder {locked} is not writable by "
    )
    assert list(locked.iterdir()) == [] and list(writable.iterdir()) == []  # nothing generated


def test_unwritable_data_cache_is_named_before_compute(folders):
    writable, locked, prefix = folders
    result = _jaxdl(
        *SYNTHETIC, f"--config.data.cache_dir={locked}", "--workdir", str(writable), prefix=prefix
    )
    line = _error_line(result)
    assert line.startswith(
        f"data cache {locked} (data.cache_dir, else $JAXDL_CACHE, else "
        f"~/.cache/jaxdl): folder {locked} is not writable by "
    )
    assert line.endswith(
        "pass --config.data.cache_dir=<a folder you can write> or change its permissions"
    )
    assert list(locked.iterdir()) == []


# --- import_torch -----------------------------------------------------------------------------


def test_import_torch_without_torch_says_how_to_install_it(tmp_path):
    """torch made unimportable in the child (the third-party package only, not jaxdl's code)."""
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    args = [
        *SYNTHETIC,
        f"--config.data.cache_dir={tmp_path}",
        "--workdir",
        str(tmp_path),
        "--mode=import_torch",
        f"--torch_checkpoint={checkpoint}",
    ]
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['jaxdl.main', *sys.argv[1:]]; "
        "from absl import app; from jaxdl import main; "
        "app.run(main.main, flags_parser=main.parse_flags)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    line = _error_line(result)
    assert line.startswith(
        f"reading the PyTorch checkpoint {checkpoint} needs torch, which is not installed ("
    )
    assert line.endswith("): pip install 'jaxdl[torch]'")


# --- Ctrl-C -----------------------------------------------------------------------------------


@pytest.fixture
def ctrl_c_as_from_a_terminal():
    """Children start with Ctrl-C handled, as under an interactive shell, even when the suite
    itself runs as a background job: a shell starts those with SIGINT ignored, children inherit
    that, and Python then leaves it ignored (the child would train on, rc 0)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_as_from_a_terminal")
def test_ctrl_c_while_building_the_cache_exits_130_keeping_no_partial_cache(tmp_path):
    """Outside the training loop (which saves and stops itself) Ctrl-C is one line and rc 130;
    the cache build it interrupted leaves nothing a later run would take for complete."""
    args = [
        "--config",
        "configs/esc50.py:synthetic",
        "--config.data.synthetic.num_classes=10",
        "--config.data.synthetic.clips_per_class_per_fold=8",
        # Never meant to train; if the Ctrl-C were lost, one short epoch, not the preset's 15.
        "--config.train.epochs=1",
        f"--config.data.cache_dir={tmp_path / 'cache'}",
        "--workdir",
        str(tmp_path),
    ]
    child = subprocess.Popen(
        [sys.executable, "-u", "-m", "jaxdl.main", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stdout:
        if line.startswith("building the log-mel cache"):
            child.send_signal(signal.SIGINT)
            break
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted (Ctrl-C); files and checkpoints already complete are kept, rerun the "
        "same command to go on"
    )
    built = list((tmp_path / "cache").rglob("dataset_info.json"))
    assert built == []  # the interrupted fold's features were not renamed into place
