"""LR finder end to end on synthetic ESC-50: trace, events, figure, suggestion (its rule named),
progress and the stop reason shown, divergence stop."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from jaxdl.modes import ModeArgs, lr_finder, run_mode
from jaxdl.training import lr_sweep
from jaxdl.utils import plots
from tests.helpers import tensorboard_scalars, tiny_esc50_config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One synthetic dataset and feature cache for every test of the module."""
    return tmp_path_factory.mktemp("esc50")


@pytest.fixture(scope="module")
def sweep(data_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    config = tiny_esc50_config(data_root)
    config.lr_finder.update(dict(start=1e-5, end=1.0, steps=24, smoothing=0.5))
    summary = run_mode("lr_finder", config, workdir, ModeArgs())
    return config, workdir, summary


def _trace(summary) -> list[dict]:
    return [
        {k: float(v) for k, v in row.items()}
        for row in csv.DictReader(open(summary["outputs"]["csv"]))
    ]


def test_sweep_trace_is_geometric_and_cycles_epochs(sweep):
    config, _, summary = sweep
    rows = _trace(summary)
    # 120 training clips / batch 16 = 7 batches per epoch: 24 steps span 4 epochs.
    assert summary["stop_reason"] == "completed" and not summary["stopped_early"]
    assert len(rows) == summary["steps_run"] == 24
    assert [r["step"] for r in rows] == list(range(1, 25))
    expected = 1e-5 * (1.0 / 1e-5) ** (np.arange(24) / 23)
    np.testing.assert_allclose([r["lr"] for r in rows], expected, rtol=1e-6)
    assert rows[0]["lr"] == np.float32(1e-5) and rows[-1]["lr"] == 1.0
    np.testing.assert_allclose(
        [r["smoothed_loss"] for r in rows], lr_sweep.smooth([r["loss"] for r in rows], 0.5)
    )
    assert 1.5 < rows[0]["loss"] < 3.5  # near ln 10 = 2.30 for 10 synthetic classes


def test_events_hold_the_same_trace(sweep):
    _, _, summary = sweep
    rows = _trace(summary)
    scalars = tensorboard_scalars(summary["outputs"]["events"])
    assert [s for s, _ in scalars["lr_finder/lr"]] == list(range(1, 25))
    assert [v for _, v in scalars["lr_finder/lr"]] == [r["lr"] for r in rows]  # float32 exact
    np.testing.assert_allclose(
        [v for _, v in scalars["lr_finder/loss"]], [r["loss"] for r in rows], rtol=1e-6
    )


def test_summary_suggestion_and_figure(sweep):
    config, workdir, summary = sweep
    saved = json.loads(open(summary["outputs"]["summary"]).read())
    assert saved == json.loads(json.dumps(summary))
    assert saved["mode"] == "lr_finder"
    rows = _trace(summary)
    # The suggestion is the rule's on the smoothed curve of the CSV (smoothing 0.5: the rule's too).
    suggestion = lr_sweep.suggest(
        np.array([r["lr"] for r in rows]), np.array([r["smoothed_loss"] for r in rows])
    )
    assert summary["rule"] == suggestion.rule == "valley" and summary["rule_smoothing"] == 0.5
    assert summary["suggested_lr"] == suggestion.lr
    low, high = summary["window"]
    assert config.lr_finder.start <= low <= summary["suggested_lr"] <= high <= config.lr_finder.end
    best = min(rows, key=lambda r: r["smoothed_loss"])
    assert (summary["lr_at_min"], summary["min_loss"]) == (best["lr"], best["smoothed_loss"])
    assert 0 < summary["steps_per_s"] and summary["seconds"] > 23 / summary["steps_per_s"]
    with Image.open(summary["outputs"]["png"]) as image:
        assert image.format == "PNG" and 600 <= image.width <= 1200 and 350 <= image.height <= 800
    assert (workdir / "logs" / summary["run"] / "config.json").is_file()


def test_figure_shows_both_curves_and_the_suggestion(sweep, tmp_path):
    _, _, summary = sweep
    rows = _trace(summary)
    labels = plots.plot_lr_finder(
        [r["lr"] for r in rows],
        [r["loss"] for r in rows],
        [r["smoothed_loss"] for r in rows],
        summary["suggested_lr"],
        tmp_path / "lr_finder.png",
        window=tuple(summary["window"]),
        rule=summary["rule"],
        smoothing=summary["rule_smoothing"],
    )
    low, high = summary["window"]
    assert labels == [
        "loss (raw)",
        "smoothed loss (EMA β = 0.5)",
        f"valley {low:.2e} – {high:.2e}",
        f"suggested lr {summary['suggested_lr']:.2e} (valley)",
    ]
    # The mode drew the same figure.
    mode_png = open(summary["outputs"]["png"], "rb").read()
    assert (tmp_path / "lr_finder.png").read_bytes() == mode_png


def test_sweep_stops_on_divergence(data_root, tmp_path, capsys):
    config = tiny_esc50_config(data_root, optimizer="sgd")
    config.lr_finder.update(dict(start=1e-3, end=1e3, steps=40, min_steps=5))
    summary = lr_finder.run(config, tmp_path, ModeArgs())
    rows = _trace(summary)
    assert summary["stopped_early"] and summary["stop_reason"] in ("divergence", "non-finite")
    assert len(rows) == summary["steps_run"] < 40
    last, before = rows[-1], rows[:-1]
    # smoothing 0: the stop rule reads the raw loss
    where = f"  stopped at step {len(rows)}/40 (lr {last['lr']:.3g}): "
    if summary["stop_reason"] == "divergence":
        best = min(r["loss"] for r in before)
        assert last["loss"] > 4 * best
        reason = (
            f"divergence, the loss {last['loss']:.4g} exceeds lr_finder.divergence_factor=4 × "
            f"its best {best:.4g}"
        )
    else:
        assert not np.isfinite(last["smoothed_loss"])
        reason = "the loss or the gradients are not finite"
    # No earlier step met the rule: the sweep stopped at the first divergent step.
    running_best = np.minimum.accumulate([r["loss"] for r in before])
    assert all(r["loss"] <= 4 * b for r, b in zip(before[5:], running_best[5:], strict=True))
    assert config.lr_finder.start <= summary["suggested_lr"] <= last["lr"]
    # The bar is closed at the step the sweep stopped, then the reason is printed.
    output = capsys.readouterr()
    bar = output.err.split("\r")[-1]
    assert bar.startswith("lr_finder: ") and f"| {len(rows)}/40 [" in bar
    assert where + reason + "\n" in output.out
