"""The LR sweep's parts: geometric lrs, the bias-corrected EMA, the stop rule, the suggestion
rule (fastai's valley) on hand-made curves, the injected lr as data of the one compiled step, and
the sweep's progress bar."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.errors import DataError
from jaxdl.training import group, loop, lr_sweep, optim, steps
from jaxdl.utils import distributed
from jaxdl.utils.logging import RunLogger
from tests.helpers import counting_compilations, tiny_esc50_config


def test_learning_rates_are_geometric_from_start_to_end():
    lrs = lr_sweep.learning_rates(1e-6, 1.0, 7)
    assert lrs.dtype == np.float32
    np.testing.assert_allclose(lrs, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)


def test_ema_is_bias_corrected():
    # a1 = 0.5, s1 = 0.5 / 0.5 = 1; a2 = 0.25 + 1 = 1.25, s2 = 1.25 / 0.75 = 5/3
    np.testing.assert_allclose(lr_sweep.smooth([1.0, 2.0], 0.5), [1.0, 5 / 3])
    # Without the correction a constant curve would start at (1 - β)·c = 0.06.
    np.testing.assert_allclose(lr_sweep.smooth([3.0] * 5, 0.98), [3.0] * 5)
    np.testing.assert_array_equal(lr_sweep.smooth([3.0, 1.0, 2.0], 0.0), [3.0, 1.0, 2.0])


def test_monitor_stops_on_divergence_after_min_steps_and_on_non_finite():
    monitor = lr_sweep.LossMonitor(0.0, divergence_factor=4.0, min_steps=3)
    reasons = [monitor.update(loss)[1] for loss in (1.0, 0.5, 2.5, 1.0, 1.9, 2.1)]
    # 2.5 > 4 × 0.5 at step 3 is still within min_steps; 2.1 > 2.0 at step 6 stops.
    assert reasons == [None, None, None, None, None, "divergence"]
    assert lr_sweep.LossMonitor(0.0, 4.0, 10).update(float("nan"))[1] == "non-finite"
    # Finite loss but non-finite gradients (the step's flag) also stops.
    assert lr_sweep.LossMonitor(0.0, 4.0, 10).update(2.0, finite=False)[1] == "non-finite"


def test_longest_valley_is_fastais():
    # The longest strictly decreasing subsequence 5 > 4 > 3 > 2 > 1 (indices 0, 2, 3, 5, 6) skips
    # the bump at 1 and the repeat at 4; it ends at 6 and, by fastai's estimate, starts 5 earlier.
    assert lr_sweep.longest_valley(np.array([5.0, 6.0, 4.0, 3.0, 3.0, 2.0, 1.0, 7.0])) == (1, 6)
    # Of two valleys as long, the first; one ending at its length - 1 starts at 0, not -1.
    assert lr_sweep.longest_valley(np.array([3.0, 2.0, 1.0, 9.0, 8.0, 7.0])) == (0, 2)
    assert lr_sweep.longest_valley(np.array([1.0, 1.0, 2.0])) == (0, 0)  # no decrease


LRS = 10.0 ** (-6.0 + np.arange(61) / 10)  # 61 lrs, 1e-6 … 1, a tenth of a decade apart


def test_valley_ignores_a_last_dip_before_divergence():
    steps = np.arange(100)
    lrs = 10.0 ** (-6.0 + 6.0 * steps / 99)
    # A plateau rising slightly (so its points never chain) to 2.33 at step 30, a long descent to
    # 0.53 at step 90, a slow rise, one dip to 0.2 at step 93, and the divergence at step 99.
    raw = np.where(steps <= 30, 2.3 + 0.001 * steps, 2.33 - 0.03 * (steps - 30))
    raw[91:] = 0.53 + 0.1 * (steps[91:] - 90)
    raw[93], raw[99] = 0.2, 3.0
    # The former rule, a tenth of the lr of the lowest raw loss, is thrown by the dip.
    assert np.argmin(raw) == 93 and lrs[np.argmin(raw)] / 10 == pytest.approx(10**-1.3636, 1e-3)

    smoothed = lr_sweep.smooth(raw, lr_sweep.rule_smoothing(0.0))  # β = 0.98
    assert (np.diff(smoothed[:31]) > 0).all() and (np.diff(smoothed[30:95]) < 0).all()
    suggestion = lr_sweep.suggest(lrs, smoothed)
    # By hand: the rule reads steps 10 … 94 (the first tenth and the last 5 left out). Its longest
    # valley is step 30 (the plateau's top) then 31 … 94: 65 points ending at 94, so
    # start = 94 − 65 = 29 and L = 65; the suggestion is step 29 + ⌊65/3⌋ + ⌊65/6⌋ = 60.
    assert suggestion.rule == "valley"
    assert suggestion.window == pytest.approx((lrs[29], lrs[94]))
    assert suggestion.lr == pytest.approx(lrs[60]) == pytest.approx(10**-2.3636, 1e-3)
    # Without the dip, the same suggestion.
    raw[93] = 0.83
    assert lr_sweep.suggest(lrs, lr_sweep.smooth(raw, 0.98)).lr == suggestion.lr


def test_valley_of_a_clean_u_curve():
    curve = (np.log10(LRS) + 2.0) ** 2 + 1.0  # the minimum at 1e-2 (step 40)
    suggestion = lr_sweep.suggest(LRS, curve)
    # Steps 6 … 55 are read; the valley is 6 … 40 (starting at 6: fastai's 5 clamped to the
    # start), L = 34, suggestion step 6 + 11 + 5 = 22: half-way down, 1.8 decades below the
    # minimum.
    assert suggestion.window == pytest.approx((LRS[6], LRS[40]))
    assert suggestion.lr == pytest.approx(LRS[22]) == pytest.approx(10**-3.8)
    assert (suggestion.lr_at_min, suggestion.min_loss) == (pytest.approx(1e-2), 1.0)


def test_valley_of_a_flat_then_falling_curve():
    curve = np.where(np.arange(61) <= 40, 3.0, 3.0 - 0.1 * (np.arange(61) - 40))
    suggestion = lr_sweep.suggest(LRS, curve)
    # Equal plateau points do not chain: the valley is one of them then 41 … 55, 16 points
    # ending at 55, start 39, L = 16, suggestion step 39 + 5 + 2 = 46.
    assert suggestion.window == pytest.approx((LRS[39], LRS[55]))
    assert suggestion.lr == pytest.approx(LRS[46]) == pytest.approx(10**-1.4)
    assert suggestion.lr_at_min == pytest.approx(1.0)  # still falling at the end


def test_no_valley_falls_back_to_a_tenth_of_the_minimum():
    # Falling over the first tenth only (left out by the rule), then rising.
    curve = np.concatenate([[3.0, 2.5, 2.0, 1.5, 1.2, 1.1], 1.15 + 0.1 * np.arange(55)])
    suggestion = lr_sweep.suggest(LRS, curve)
    assert suggestion.rule == "minimum/10" and suggestion.lr_at_min == pytest.approx(LRS[5])
    # 10^-5.5 / 10 lies below the sweep: the first lr.
    assert suggestion.lr == pytest.approx(1e-6) and suggestion.window == pytest.approx((1e-6,) * 2)
    # A NaN ends the curve; a sweep too short to leave points out is read whole.
    short = lr_sweep.suggest(LRS[:5], np.array([2.0, 1.9, 1.0, 1.5, np.nan]))
    assert short.rule == "valley" and short.window == pytest.approx((LRS[0], LRS[2]))
    with pytest.raises(DataError, match="no finite loss: lower lr_finder.start"):
        lr_sweep.suggest(LRS[:2], np.array([np.nan, np.nan]))


def test_one_compiled_step_serves_the_whole_sweep(tmp_path, capsys):
    config = tiny_esc50_config(tmp_path, optimizer="sgd", momentum=0.0, weight_decay=0.0)
    config.lr_finder.update(dict(start=1e-4, end=1e-2, steps=6))
    task = tasks.get(config)
    train = task.load_split(config, "train")
    parts = group.build([optim.without_schedule(config)], train.class_names)
    initial = jax.tree.map(jnp.copy, parts.state)  # the sweep donates parts.state
    batch = loop.to_device(
        next(pipeline.train_batches(train.source, task, config, 1, 16, False)), parts.mesh
    )
    capsys.readouterr()
    with RunLogger(tmp_path / "run", config.to_dict()) as logger, counting_compilations() as c:
        result = lr_sweep.sweep(config, parts, train.source, 16, logger)
    assert len(c) == 1  # one train step for all 6 lrs
    assert result.stop_reason == "completed" and len(result.rows) == 6
    assert result.stop_message == "completed all 6 steps"
    assert result.steps_per_s > 0 and result.seconds > 5 / result.steps_per_s
    bar = capsys.readouterr().err.split("\r")[-1]  # the bar's last state, left on screen
    last = result.rows[-1]
    assert bar.startswith("lr_finder: 100%") and "6/6" in bar
    assert f"lr={last['lr']:.2e}, smoothed loss={last['smoothed_loss']:.4f}]" in bar

    # The injected lr is what the step applies: plain SGD, Δθ = −lr·g, so Δθ / lr is the same
    # gradient for two rates; and neither recompiles.
    gradients = []
    sweep_zeros = steps.zero_sums(
        parts.objective, keys=lr_sweep.STEP_KEYS
    )  # what the sweep adds to
    for lr in (np.float32(0.05), np.float32(0.5)):
        replicated = distributed.replicated(parts.mesh)
        state = lr_sweep.with_learning_rate(
            jax.tree.map(jnp.copy, initial), jax.device_put(lr, replicated)
        )
        zeros = {"step": jax.device_put(sweep_zeros, replicated)}
        with counting_compilations() as compiled:
            new_state = jax.block_until_ready(parts.steps.train(state, zeros, batch)[0])
        assert not compiled and new_state.opt_state.hyperparams["learning_rate"] == lr
        gradients.append(
            [
                np.asarray(new - old) / lr
                for new, old in zip(
                    jax.tree.leaves(new_state.params), jax.tree.leaves(initial.params), strict=True
                )
            ]
        )
    for a, b in zip(*gradients, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
