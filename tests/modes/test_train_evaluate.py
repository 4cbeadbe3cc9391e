"""End to end on synthetic ESC-50: train learns, outputs are complete (the test scores in
`scores.json`), evaluate reproduces it in `logs/evaluate/`, under the same keys."""

import csv
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxdl.modes import ModeArgs, evaluate, train
from jaxdl.training import evaluation
from tests.helpers import tensorboard_scalars, tiny_esc50_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_esc50_config(workdir, epochs=8)
    summary = train.train_and_evaluate(config, workdir)
    return config, workdir, summary


def test_short_training_beats_chance_by_a_wide_margin(trained):
    _, _, summary = trained
    chance = 1 / 10
    assert summary["val/accuracy"] >= 4 * chance
    assert summary["test/accuracy"] >= 3 * chance


def test_train_writes_the_test_scores_to_scores_json_and_its_json_line(trained):
    """One key style: `val/*` and `test/*` as in TensorBoard and metrics.jsonl, in the JSON line
    and in `logs/<run>/test/scores.json` beside predictions.csv."""
    _, workdir, summary = trained
    test_dir = workdir / "logs" / summary["run"] / "test"
    assert summary["test_outputs"] == str(test_dir)
    scores = json.loads((test_dir / "scores.json").read_text())
    metrics = ("loss", "accuracy", "macro_f1", "top5_accuracy")
    assert scores == {
        "split": "test",
        "checkpoint": summary["checkpoint"],
        "epoch": summary["best_epoch"],
        "examples": 40,
        **{f"test/{m}": summary[f"test/{m}"] for m in metrics},
    }
    assert (test_dir / "predictions.csv").is_file()
    keys = {k for k in summary if "/" in k}
    assert keys == {f"{s}/{m}" for s in ("val", "test") for m in metrics} | {"final/train/loss"}
    (record,) = [json.loads(line) for line in (test_dir / "metrics.jsonl").read_text().splitlines()]
    assert record == {
        "epoch": summary["best_epoch"],
        **{f"test/{m}": scores[f"test/{m}"] for m in metrics},
    }


def test_run_directory_holds_config_metrics_and_event_tags(trained):
    config, workdir, summary = trained
    log_dir = workdir / "logs" / summary["run"]
    saved = json.loads((log_dir / "config.json").read_text())
    assert saved["train"]["lr"] == config.train.lr and saved["task"] == "esc50"
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 9))
    scalars = tensorboard_scalars(log_dir)
    for tag in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/accuracy"):
        assert tag in scalars, tag
    assert [step for step, _ in scalars["val/accuracy"]] == list(range(1, 9))
    np.testing.assert_allclose(
        [v for _, v in scalars["val/loss"]], [r["val/loss"] for r in records], rtol=1e-6
    )
    best = max(reversed(records), key=lambda r: r["val/accuracy"])  # a tie goes to the later
    assert summary["best_epoch"] == best["epoch"]


def test_evaluate_scores_the_best_epoch_logged_with_its_logged_val_metrics(trained, tmp_path):
    """The epoch evaluate restores is the argmax of val accuracy in metrics.jsonl (a tie: the
    later), and `--split=val` reproduces that epoch's logged val metrics."""
    config, workdir, summary = trained
    log_dir = workdir / "logs" / summary["run"]
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    best = max(reversed(records), key=lambda r: r["val/accuracy"])
    assert best["epoch"] < records[-1]["epoch"]  # else "keep the latest" would pass as well
    result = evaluate.run(config, tmp_path, ModeArgs(checkpoint=summary["checkpoint"], split="val"))
    assert result["epoch"] == best["epoch"] == summary["best_epoch"]
    for key in ("val/accuracy", "val/macro_f1", "val/top5_accuracy"):  # counts: equal exactly
        assert result[key] == best[key] == summary[key], key
    assert result["val/loss"] == pytest.approx(best["val/loss"], rel=1e-6)
    out = tmp_path / "logs" / "evaluate" / f"{summary['run']}_val"
    assert result["examples"] == 40 and result["outputs"] == str(out)
    scores = json.loads((out / "scores.json").read_text())
    assert scores == {k: v for k, v in result.items() if k not in ("mode", "outputs")}
    assert scores["split"] == "val" and scores["checkpoint"] == summary["checkpoint"]
    again = evaluate.run(config, tmp_path, ModeArgs(checkpoint=summary["checkpoint"], split="val"))
    assert again["outputs"] == f"{out}-2"  # never reused


def test_evaluate_writes_predictions_per_class_and_confusion_outputs(trained, tmp_path):
    config, workdir, summary = trained
    again = evaluation.evaluate_checkpoint(config, summary["checkpoint"], "test", tmp_path / "eval")
    for key in ("test/loss", "test/accuracy", "test/macro_f1", "test/top5_accuracy"):
        assert again[key] == summary[key], key
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert len(rows) == 40 and set(rows[0]) == {
        "filename",
        "true_label",
        "predicted_label",
        "probability",
    }
    accuracy = np.mean([r["true_label"] == r["predicted_label"] for r in rows])
    assert accuracy == pytest.approx(again["test/accuracy"])
    per_class = list(csv.DictReader((tmp_path / "eval" / "per_class.csv").open()))
    assert len(per_class) == 10 and sum(int(r["support"]) for r in per_class) == 40
    width, height = Image.open(tmp_path / "eval" / "confusion_matrix_test.png").size
    assert width > 300 and height > 300
    assert tensorboard_scalars(tmp_path / "eval")["test/accuracy"][0][1] == pytest.approx(
        again["test/accuracy"]
    )


def test_evaluate_needs_only_the_test_fold(trained, tmp_path):
    config, workdir, summary = trained
    from jaxdl.data import esc50

    source_dir = esc50.resolve_data_dir(config)
    only_test = tmp_path / "ESC-50-master"
    (only_test / "audio").mkdir(parents=True)
    (only_test / "meta").mkdir()
    (only_test / "meta" / "esc50.csv").write_bytes((source_dir / "meta" / "esc50.csv").read_bytes())
    for wav in (source_dir / "audio").glob("5-*.wav"):
        (only_test / "audio" / wav.name).write_bytes(wav.read_bytes())
    eval_config = tiny_esc50_config(tmp_path)
    eval_config.data.source = "auto"
    eval_config.data.dir = str(only_test)
    result = evaluation.evaluate_checkpoint(
        eval_config, summary["checkpoint"], "test", tmp_path / "e"
    )
    assert result["test/accuracy"] == summary["test/accuracy"]


def test_a_checkpoint_is_scored_whatever_optimizer_and_schedule_the_command_line_names(tmp_path):
    """The optimizer state's layout (optimizer, schedule, warmup) comes from the checkpoint."""
    config = tiny_esc50_config(tmp_path, epochs=1, schedule="cosine", warmup_steps=2)
    summary = train.train_and_evaluate(config, tmp_path)
    plain = tiny_esc50_config(tmp_path, optimizer="sgd")  # schedule "none", no warmup
    result = evaluate.run(plain, tmp_path, ModeArgs(checkpoint=summary["checkpoint"]))
    assert result["test/accuracy"] == summary["test/accuracy"]
    assert result["test/loss"] == pytest.approx(summary["test/loss"], rel=1e-6)


def test_overfit_mode_drives_the_train_loss_down_on_the_subset(tmp_path):
    # One step an epoch: accuracy 1.0 from epoch 8, the loss under 0.2x its first from epoch 10.
    config = tiny_esc50_config(tmp_path, overfit_n=8, epochs=15, lr=1e-2)
    summary = train.train_and_evaluate(config, tmp_path)
    assert summary["mode"] == "overfit"
    records = [
        json.loads(line)
        for line in (tmp_path / "logs" / summary["run"] / "metrics.jsonl").read_text().splitlines()
    ]
    assert records[-1]["train/loss"] < 0.2 * records[0]["train/loss"]
    assert records[-1]["train/accuracy"] == 1.0
    assert not (tmp_path / "logs" / summary["run"] / "test").exists()


def test_runs_are_never_overwritten(tmp_path):
    config = tiny_esc50_config(tmp_path, epochs=1, evaluate_test=False)
    config.run_name = "fixed"
    first = train.train_and_evaluate(config, tmp_path)
    second = train.train_and_evaluate(config, tmp_path)
    assert first["run"] == "fixed" and second["run"] == "fixed-2"
    assert (
        pathlib.Path(first["checkpoint"]).is_dir() and pathlib.Path(second["checkpoint"]).is_dir()
    )
