"""Reading a run's metrics.jsonl back: what RunLogger wrote, a cut-short last line skipped with a
warning, any other damaged line or a folder without the file refused by name."""

import pytest

from jaxdl.errors import DataError
from jaxdl.utils import run_metrics
from jaxdl.utils.logging import RunLogger

RECORDS = [
    {"epoch": 1, "train/loss": 2.0, "val/loss": 2.5, "val/accuracy": 0.25},
    {"epoch": 2, "train/loss": 1.5, "val/loss": 2.25},
    {"epoch": 3, "train/loss": 1.0, "val/loss": 2.0, "val/accuracy": 0.5},
]


@pytest.fixture
def run_dir(tmp_path):
    with RunLogger(tmp_path / "run", {"task": "esc50"}) as logger:
        for record in RECORDS:
            logger.log_epoch(record)
    return tmp_path / "run"


def test_history_is_what_run_logger_wrote_and_curves_skip_epochs_without_the_key(run_dir):
    history = run_metrics.read_history(run_dir)
    assert history == RECORDS
    assert run_metrics.curve(history, "val/accuracy") == [(1, 0.25), (3, 0.5)]
    assert run_metrics.curve(history, "train/loss") == [(1, 2.0), (2, 1.5), (3, 1.0)]


def test_a_cut_short_last_line_is_skipped_with_a_warning(run_dir, capsys):
    path = run_dir / "metrics.jsonl"
    with open(path, "a") as handle:
        handle.write('{"epoch": 4, "train/lo')  # killed mid-write: no closing brace, no newline
    assert run_metrics.read_history(run_dir) == RECORDS
    assert capsys.readouterr().err == (
        f"warning: {path}, line 4: cut short (no newline after it; "
        "a run stopped while writing it?): ignored\n"
    )


def test_a_complete_last_line_without_newline_is_kept(run_dir, capsys):
    path = run_dir / "metrics.jsonl"
    path.write_text(path.read_text().rstrip("\n"))
    assert run_metrics.read_history(run_dir) == RECORDS
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            b'{"epoch": 2, "train/loss": 1.5\n',
            "line 2: not JSON (Expecting ',' delimiter, column 31)",
        ),
        (b"\xff\xfe garbage\n", "line 2: not JSON (Expecting value, column 1)"),  # not UTF-8
        (b"[2, 1.5]\n", "line 2: expected a JSON object with an integer 'epoch'"),
        (b'{"train/loss": 1.5}\n', "line 2: expected a JSON object with an integer 'epoch'"),
    ],
)
def test_a_damaged_middle_line_is_refused_with_file_and_line(run_dir, damage, message):
    path = run_dir / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + damage + lines[2])
    with pytest.raises(DataError) as raised:
        run_metrics.read_history(run_dir)
    assert str(raised.value).startswith(f"{path}, {message}")


def test_a_damaged_last_line_ending_in_a_newline_is_refused(run_dir):
    path = run_dir / "metrics.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]) + '{"epoch": 3, "val\n')
    with pytest.raises(DataError, match="metrics.jsonl, line 3: not JSON"):
        run_metrics.read_history(run_dir)


def test_a_folder_without_metrics_is_not_a_training_run(tmp_path):
    with pytest.raises(DataError) as raised:
        run_metrics.read_history(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path} holds no metrics.jsonl: not a jaxdl training run "
        "(train, grid_search and compare write one line per epoch there)"
    )
