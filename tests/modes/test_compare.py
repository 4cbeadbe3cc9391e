"""compare on existing runs, as the README's method runs it: two short real trainings on synthetic
ESC-50 that differ in lr, the first evaluated, then `--runs='esc50_train_*'`: overlaid and
tabulated against the first as baseline, the evaluation not among them; values checked against
each run's metrics.jsonl; a glob skips what is not a training run, naming it; runs without curves
or with a damaged metrics.jsonl fail before anything is written. (compare.run=True and bad globs:
test_compare_runs.py.)"""

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxdl.errors import ConfigError, DataError
from jaxdl.modes import ModeArgs, run_mode, train
from jaxdl.report import comparison
from jaxdl.utils.logging import RunLogger
from tests.helpers import tiny_esc50_config

LRS = (1e-2, 3e-3)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """The README's sequence: train twice, evaluate the first run's checkpoint, compare."""
    workdir = tmp_path_factory.mktemp("compare")
    summaries = [
        train.train_and_evaluate(tiny_esc50_config(workdir, lr=lr, evaluate_test=False), workdir)
        for lr in LRS
    ]
    config = tiny_esc50_config(workdir)
    evaluated = run_mode(
        "evaluate", config, workdir, ModeArgs(checkpoint=summaries[0]["checkpoint"])
    )
    result = run_mode("compare", config, workdir, ModeArgs(runs=("esc50_train_*",)))
    return workdir, summaries, result, evaluated


def test_the_readme_glob_compares_the_training_runs_not_the_evaluation(compared):
    workdir, summaries, result, evaluated = compared
    run = summaries[0]["run"]
    assert pathlib.Path(evaluated["outputs"]) == workdir / "logs" / "evaluate" / f"{run}_test"
    assert [row["run"] for row in result["runs"]] == sorted(s["run"] for s in summaries)
    assert result["skipped"] == []  # the evaluation is not even matched


def test_the_first_run_is_the_baseline_in_table_legend_and_json(compared):
    _, summaries, result, _ = compared
    first = min(s["run"] for s in summaries)  # the glob expands in sorted order
    assert result["baseline"] == first
    labels = {row["run"]: row["label"] for row in result["runs"]}
    assert [labels[first]] == [label for label in labels.values() if "(baseline)" in label]
    assert labels[first].endswith(" (baseline)")
    table = pathlib.Path(result["outputs"]["markdown"]).read_text()
    assert f"| {first} | {labels[first]} |" in table


def test_a_glob_skips_what_is_not_a_training_run_and_names_it(compared, tmp_path, capsys):
    workdir, summaries, first, _ = compared
    config = tiny_esc50_config(workdir)
    result = run_mode("compare", config, tmp_path, ModeArgs(runs=(str(workdir / "logs" / "*"),)))
    assert {row["run"] for row in result["runs"]} == {s["run"] for s in summaries}
    skipped = [pathlib.Path(p).name for p in result["skipped"]]
    assert sorted(skipped) == sorted(["evaluate", pathlib.Path(first["dir"]).name])
    note = "skipped 2 folder(s) --runs matched that are not training runs: " + ", ".join(skipped)
    assert note in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'compare_\\*' matches no training run, only compare_"):
        run_mode("compare", config, workdir, ModeArgs(runs=("compare_*",)))


def _records(log_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]


def test_table_values_are_those_of_each_runs_metrics(compared):
    workdir, summaries, result, _ = compared
    assert result["mode"] == "compare" and result["metric"] == "accuracy"
    assert result["differing_keys"] == ["train.lr"]
    rows = {row["run"]: row for row in result["runs"]}
    assert set(rows) == {s["run"] for s in summaries}
    for summary, lr in zip(summaries, LRS, strict=True):
        row, records = rows[summary["run"]], _records(workdir / "logs" / summary["run"])
        best = max(reversed(records), key=lambda r: r["val/accuracy"])  # the later of equal bests
        assert row["label"].removesuffix(" (baseline)") == f"lr={lr}" and row["train.lr"] == lr
        assert row["epochs"] == 2 and row["best_epoch"] == best["epoch"]
        expected = {
            "val/accuracy": best["val/accuracy"],
            "val/loss": best["val/loss"],
            "final/val/accuracy": records[-1]["val/accuracy"],
            "final/train/loss": records[-1]["train/loss"],
            "final/val/loss": records[-1]["val/loss"],
            "train_val_gap": records[-1]["val/loss"] - records[-1]["train/loss"],
        }
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


def test_csv_and_markdown_hold_the_table(compared):
    _, _, result, _ = compared
    rows = list(csv.DictReader(open(result["outputs"]["csv"])))
    assert [r["run"] for r in rows] == [r["run"] for r in result["runs"]]
    assert list(rows[0])[:3] == ["run", "label", "train.lr"]
    for saved, row in zip(rows, result["runs"], strict=True):
        assert float(saved["val/accuracy"]) == row["val/accuracy"]
        assert int(saved["best_epoch"]) == row["best_epoch"]
    lines = pathlib.Path(result["outputs"]["markdown"]).read_text().splitlines()
    assert len(lines) == 2 + len(LRS) and lines[0].startswith("| run | label | train.lr |")
    labels = sorted(line.split(" | ")[1].removesuffix(" (baseline)") for line in lines[2:])
    assert labels == ["lr=0.003", "lr=0.01"]


def test_overlay_figures(compared):
    _, _, result, _ = compared
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
    workdir, summaries, _, _ = compared
    logs = workdir / "logs"
    named = [summaries[0]["run"], str(logs / summaries[1]["run"])]
    by_name = comparison.resolve_runs(named, logs).runs
    assert by_name == [(logs / s["run"]).resolve() for s in summaries]
    # A glob expands in sorted order; a run named again is kept once.
    globbed = comparison.resolve_runs(["esc50_train_*", summaries[0]["run"]], logs)
    assert globbed == comparison.Selection(sorted(by_name), [])


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
    workdir, summaries, _, _ = compared
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
    workdir, summaries, _, _ = compared
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
    assert result["runs"][0]["final/val/loss"] == json.loads(lines[0])["val/loss"]
