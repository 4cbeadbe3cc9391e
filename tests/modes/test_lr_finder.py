"""LR finder: the sweep, its stop rule and suggestion on hand-made curves, and end to end on
synthetic ESC-50 (trace, events, figure, divergence stop)."""

import contextlib
import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdl.data import pipeline
from jaxdl import tasks
from jaxdl.modes import ModeArgs, lr_finder, run_mode
from jaxdl.training import group, loop
from jaxdl.utils import distributed
from tests.helpers import tensorboard_scalars, tiny_esc50_config


def test_learning_rates_are_geometric_from_start_to_end():
    lrs = lr_finder.learning_rates(1e-6, 1.0, 7)
    assert lrs.dtype == np.float32
    np.testing.assert_allclose(lrs, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)


def test_ema_is_bias_corrected():
    # a1 = 0.5, s1 = 0.5 / 0.5 = 1; a2 = 0.25 + 1 = 1.25, s2 = 1.25 / 0.75 = 5/3
    np.testing.assert_allclose(lr_finder.smooth([1.0, 2.0], 0.5), [1.0, 5 / 3])
    # Without the correction a constant curve would start at (1 - β)·c = 0.06.
    np.testing.assert_allclose(lr_finder.smooth([3.0] * 5, 0.98), [3.0] * 5)
    np.testing.assert_array_equal(lr_finder.smooth([3.0, 1.0, 2.0], 0.0), [3.0, 1.0, 2.0])


def test_monitor_stops_on_divergence_after_min_steps_and_on_non_finite():
    monitor = lr_finder.LossMonitor(0.0, divergence_factor=4.0, min_steps=3)
    reasons = [monitor.update(loss)[1] for loss in (1.0, 0.5, 2.5, 1.0, 1.9, 2.1)]
    # 2.5 > 4 × 0.5 at step 3 is still within min_steps; 2.1 > 2.0 at step 6 stops.
    assert reasons == [None, None, None, None, None, "divergence"]
    assert lr_finder.LossMonitor(0.0, 4.0, 10).update(float("nan"))[1] == "non-finite"
    # Finite loss but non-finite gradients (the step's flag) also stops.
    assert lr_finder.LossMonitor(0.0, 4.0, 10).update(2.0, finite=False)[1] == "non-finite"


def test_suggestion_rule_on_a_hand_made_curve():
    lrs = 10.0 ** np.arange(-6.0, 0.5, 0.5)  # 1e-6 … 1, 13 points
    # plateau at 4 with one noisy dip at 1e-5.5 (must not open the window), a descent from
    # 1e-4 to the minimum 1.0 at 1e-2, then divergence and a NaN.
    losses = np.array([4.0, 3.5, 4.1, 3.9, 3.6, 3.0, 2.0, 1.5, 1.0, 1.6, 3.0, 9.0, np.nan])
    suggestion = lr_finder.suggest(lrs, losses)
    # threshold = 4 − 0.1·(4 − 1) = 3.7: the last point above it before the minimum is 1e-4.5.
    assert suggestion.window == pytest.approx((1e-4, 1e-2))
    assert suggestion.lr_at_min == pytest.approx(1e-2) and suggestion.min_loss == 1.0
    assert suggestion.lr == pytest.approx(1e-3)  # 1e-2 / 10, inside the window
    # A minimum close to the window's start clamps the suggestion into the window.
    steep = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 1.0, 9.0, 20.0, 30.0])
    clamped = lr_finder.suggest(lrs, steep)
    assert clamped.window == pytest.approx((10 ** -2.0, 10 ** -1.5))
    assert clamped.lr == pytest.approx(1e-2)
    # A loss that never decreases gives the start as the window and the suggestion.
    flat = lr_finder.suggest(lrs[:4], np.array([1.0, 1.2, 1.5, 3.0]))
    assert flat.window == pytest.approx((1e-6, 1e-6)) and flat.lr == pytest.approx(1e-6)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One synthetic dataset and feature cache for every test of the module."""
    return tmp_path_factory.mktemp("esc50")


@contextlib.contextmanager
def _counting_compilations():
    """Counts XLA backend compilations inside the block."""
    names = []

    def listener(name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            names.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_injected_learning_rate_is_used_by_the_compiled_step(data_root):
    config = tiny_esc50_config(data_root, optimizer="sgd", momentum=0.0, weight_decay=0.0)
    task = tasks.get(config)
    train = task.load_split(config, "train")
    parts = group.build([config], train.class_names)
    batch = loop.to_device(next(pipeline.train_batches(train.source, task, config, 1, 16, False)),
                           parts.mesh)
    gradients, compilations = [], []
    for lr in (np.float32(0.05), np.float32(0.5)):
        state = lr_finder.with_learning_rate(jax.tree.map(jnp.copy, parts.state),
                                             jax.device_put(lr, distributed.replicated(parts.mesh)))
        with _counting_compilations() as compiled:
            new_state = jax.block_until_ready(parts.steps.train(state, batch)[0])
        compilations.append(len(compiled))
        assert new_state.opt_state.hyperparams["learning_rate"] == lr
        # Plain SGD: Δθ = −lr·g, so Δθ / lr is the same gradient for both rates.
        gradients.append([np.asarray(new - old) / lr for new, old in
                          zip(jax.tree.leaves(new_state.params), jax.tree.leaves(parts.state.params))])
    for a, b in zip(*gradients):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert compilations[0] >= 1 and compilations[1] == 0  # the lr is data, not a constant


@pytest.fixture(scope="module")
def sweep(data_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    config = tiny_esc50_config(data_root)
    config.lr_finder.update(dict(start=1e-5, end=1.0, steps=24, smoothing=0.5))
    summary = run_mode("lr_finder", config, workdir, ModeArgs())
    return config, workdir, summary


def _trace(summary) -> list[dict]:
    return [{k: float(v) for k, v in row.items()}
            for row in csv.DictReader(open(summary["outputs"]["csv"]))]


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
    np.testing.assert_allclose([r["smoothed_loss"] for r in rows],
                               lr_finder.smooth([r["loss"] for r in rows], 0.5))
    assert 1.5 < rows[0]["loss"] < 3.5  # near ln 10 = 2.30 for 10 synthetic classes


def test_events_hold_the_same_trace(sweep):
    _, _, summary = sweep
    rows = _trace(summary)
    scalars = tensorboard_scalars(summary["outputs"]["events"])
    assert [s for s, _ in scalars["lr_finder/lr"]] == list(range(1, 25))
    assert [v for _, v in scalars["lr_finder/lr"]] == [r["lr"] for r in rows]  # float32 exact
    np.testing.assert_allclose([v for _, v in scalars["lr_finder/loss"]],
                               [r["loss"] for r in rows], rtol=1e-6)


def test_summary_suggestion_and_figure(sweep):
    config, workdir, summary = sweep
    saved = json.loads(open(summary["outputs"]["summary"]).read())
    assert saved == json.loads(json.dumps(summary))
    assert saved["mode"] == "lr_finder"
    low, high = summary["window"]
    assert config.lr_finder.start <= low <= summary["suggested_lr"] <= high <= config.lr_finder.end
    rows = _trace(summary)
    best = min(rows, key=lambda r: r["smoothed_loss"])
    assert summary["lr_at_min"] == high == best["lr"]
    assert summary["min_loss"] == best["smoothed_loss"]
    with Image.open(summary["outputs"]["png"]) as image:
        assert image.format == "PNG" and 600 <= image.width <= 1200 and 350 <= image.height <= 800
    assert (workdir / "logs" / summary["run"] / "config.json").is_file()


def test_sweep_stops_on_divergence(data_root, tmp_path):
    config = tiny_esc50_config(data_root, optimizer="sgd")
    config.lr_finder.update(dict(start=1e-3, end=1e3, steps=40, min_steps=5))
    summary = lr_finder.run(config, tmp_path, ModeArgs())
    rows = _trace(summary)
    assert summary["stopped_early"] and summary["stop_reason"] in ("divergence", "non-finite")
    assert len(rows) == summary["steps_run"] < 40
    last, before = rows[-1], rows[:-1]
    if summary["stop_reason"] == "divergence":
        assert last["smoothed_loss"] > 4 * min(r["smoothed_loss"] for r in before)
    else:
        assert not np.isfinite(last["smoothed_loss"])
    # No earlier step met the rule: the sweep stopped at the first divergent step.
    running_best = np.minimum.accumulate([r["smoothed_loss"] for r in before])
    assert all(r["smoothed_loss"] <= 4 * b for r, b in zip(before[5:], running_best[5:]))
    assert config.lr_finder.start <= summary["suggested_lr"] <= last["lr"]
