"""compare on existing runs: two short real trainings on synthetic ESC-50 that differ in lr,
overlaid and tabulated; values checked against each run's metrics.jsonl; runs without curves or
with a damaged metrics.jsonl fail before anything is written. (compare.run=True and bad globs:
test_compare_runs.py.)"""

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxdl.errors import DataError
from jaxdl.modes import ModeArgs, run_mode, train
from jaxdl.report import comparison
from jaxdl.utils.logging import RunLogger
from tests.helpers import tiny_esc50_config

LRS = (1e-2, 3e-3)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("compare")
    summaries = [
        train.train_and_evaluate(tiny_esc50_config(workdir, lr=lr, evaluate_test=False), workdir)
        for lr in LRS
    ]
    config = tiny_esc50_config(workdir)
    result = run_mode("compare", config, workdir, ModeArgs(runs=("esc50_train_*",)))
    return workdir, summaries, result


def _records(log_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]


def test_table_values_are_those_of_each_runs_metrics(compared):
    workdir, summaries, result = compared
    assert result["mode"] == "compare" and result["metric"] == "accuracy"
    assert result["differing_keys"] == ["train.lr"]
    rows = {row["run"]: row for row in result["runs"]}
    assert set(rows) == {s["run"] for s in summaries}
    for summary, lr in zip(summaries, LRS, strict=True):
        row, records = rows[summary["run"]], _records(workdir / "logs" / summary["run"])
        best = max(reversed(records), key=lambda r: r["val/accuracy"])  # the later of equal bests
        assert row["label"] == f"lr={lr}" and row["train.lr"] == lr
        assert row["epochs"] == 2 and row["best_epoch"] == best["epoch"]
        expected = {
            "best_val_accuracy": best["val/accuracy"],
            "val_loss_at_best": best["val/loss"],
            "final_val_accuracy": records[-1]["val/accuracy"],
            "final_train_loss": records[-1]["train/loss"],
            "final_val_loss": records[-1]["val/loss"],
            "train_val_gap": records[-1]["val/loss"] - records[-1]["train/loss"],
        }
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


def test_csv_and_markdown_hold_the_table(compared):
    _, _, result = compared
    rows = list(csv.DictReader(open(result["outputs"]["csv"])))
    assert [r["run"] for r in rows] == [r["run"] for r in result["runs"]]
    assert list(rows[0])[:3] == ["run", "label", "train.lr"]
    for saved, row in zip(rows, result["runs"], strict=True):
        assert float(saved["best_val_accuracy"]) == row["best_val_accuracy"]
        assert int(saved["best_epoch"]) == row["best_epoch"]
    lines = pathlib.Path(result["outputs"]["markdown"]).read_text().splitlines()
    assert len(lines) == 2 + len(LRS) and lines[0].startswith("| run | label | train.lr |")
    assert sorted(line.split(" | ")[1] for line in lines[2:]) == ["lr=0.003", "lr=0.01"]


def test_overlay_figures(compared):
    _, _, result = compared
    figures = result["outputs"]["figures"]
    assert set(figures) == {"train/loss", "val/loss", "val/accuracy"}
    pixels = []
    for path in figures.values():
        assert pathlib.Path(path).parent == pathlib.Path(result["dir"])
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert 600 <= image.width <= 1200 and 350 <= image.height <= 800
            pixels.append(np.asarray(image.convert("L")))
    assert not np.array_equal(pixels[0], pixels[1])  # train and val curves differ


def test_runs_by_name_and_by_directory_resolve_alike(compared, tmp_path):
    workdir, summaries, _ = compared
    logs = workdir / "logs"
    by_name = comparison.resolve_runs([summaries[0]["run"], str(logs / summaries[1]["run"])], logs)
    assert by_name == [(logs / s["run"]).resolve() for s in summaries]
    # A glob expands in sorted order; a run named again is kept once.
    assert comparison.resolve_runs(["esc50_train_*", summaries[0]["run"]], logs) == sorted(by_name)


def test_labels_name_only_the_keys_that_differ():
    a = {"train.lr": 0.01, "model.channels": [16, 32, 64], "data.cache_dir": "/a", "seed": 1}
    b = {"train.lr": 0.003, "model.channels": [32, 64, 128], "data.cache_dir": "/b", "seed": 1}
    keys = comparison.differing_hyperparameters([a, b])
    assert keys == ["model.channels", "train.lr"]
    labels = comparison.labels([pathlib.Path("x"), pathlib.Path("y")], [a, b], keys)
    assert labels == ["channels=[16,32,64], lr=0.01", "channels=[32,64,128], lr=0.003"]
    # Same hyper-parameters (a repeated run): the run names tell them apart.
    assert comparison.labels([pathlib.Path("x"), pathlib.Path("y")], [a, a], []) == ["x", "y"]


def test_runs_without_curves_are_named_and_nothing_is_written(compared, tmp_path):
    workdir, summaries, _ = compared
    config = tiny_esc50_config(workdir)
    before = sorted((workdir / "logs").iterdir())
    empty = tmp_path / "no_metrics"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(DataError, match=f"{empty} holds no metrics.jsonl: not a jaxdl training"):
        run_mode("compare", config, workdir, ModeArgs(runs=(summaries[0]["run"], str(empty))))
    with RunLogger(tmp_path / "sweep_only", {"task": "esc50"}) as logger:
        logger.scalars(1, {"lr_finder/loss": 2.3})
    with pytest.raises(DataError, match="sweep_only: no 'train/loss' in its metrics.jsonl"):
        run_mode("compare", config, workdir, ModeArgs(runs=(str(tmp_path / "sweep_only"),)))
    assert sorted((workdir / "logs").iterdir()) == before  # nothing written on failure


def test_a_damaged_metrics_line_is_named_and_a_cut_short_last_one_skipped(
    compared, tmp_path, capsys
):
    workdir, summaries, _ = compared
    config = tiny_esc50_config(workdir)
    before = sorted((workdir / "logs").iterdir())
    run = shutil.copytree(workdir / "logs" / summaries[0]["run"], tmp_path / "damaged")
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0][:-10] + "\n" + lines[1])  # a middle line cut short
    with pytest.raises(DataError, match=f"{metrics}, line 1: not JSON"):
        run_mode("compare", config, workdir, ModeArgs(runs=(str(run),)))
    assert sorted((workdir / "logs").iterdir()) == before
    # Killed while writing epoch 2: epoch 1 is compared, the partial line named in a warning.
    metrics.write_text(lines[0] + lines[1][:-10])
    result = run_mode("compare", config, tmp_path, ModeArgs(runs=(str(run),)))
    assert f"warning: {metrics}, line 2: cut short" in capsys.readouterr().err
    assert result["runs"][0]["epochs"] == 1
    assert result["runs"][0]["final_val_loss"] == json.loads(lines[0])["val/loss"]
