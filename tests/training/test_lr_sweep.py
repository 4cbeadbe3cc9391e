"""The LR sweep's parts: geometric lrs, the bias-corrected EMA, the stop rule and the suggestion
rule on hand-made curves, and the injected lr as data of the one compiled step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.training import group, loop, lr_sweep
from jaxdl.utils import distributed
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


def test_suggestion_rule_on_a_hand_made_curve():
    lrs = 10.0 ** np.arange(-6.0, 0.5, 0.5)  # 1e-6 … 1, 13 points
    # plateau at 4 with one noisy dip at 1e-5.5 (must not open the window), a descent from
    # 1e-4 to the minimum 1.0 at 1e-2, then divergence and a NaN.
    losses = np.array([4.0, 3.5, 4.1, 3.9, 3.6, 3.0, 2.0, 1.5, 1.0, 1.6, 3.0, 9.0, np.nan])
    suggestion = lr_sweep.suggest(lrs, losses)
    # threshold = 4 − 0.1·(4 − 1) = 3.7: the last point above it before the minimum is 1e-4.5.
    assert suggestion.window == pytest.approx((1e-4, 1e-2))
    assert suggestion.lr_at_min == pytest.approx(1e-2) and suggestion.min_loss == 1.0
    assert suggestion.lr == pytest.approx(1e-3)  # 1e-2 / 10, inside the window
    # A minimum close to the window's start clamps the suggestion into the window.
    steep = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 1.0, 9.0, 20.0, 30.0])
    clamped = lr_sweep.suggest(lrs, steep)
    assert clamped.window == pytest.approx((10**-2.0, 10**-1.5))
    assert clamped.lr == pytest.approx(1e-2)
    # A loss that never decreases gives the start as the window and the suggestion.
    flat = lr_sweep.suggest(lrs[:4], np.array([1.0, 1.2, 1.5, 3.0]))
    assert flat.window == pytest.approx((1e-6, 1e-6)) and flat.lr == pytest.approx(1e-6)


def test_injected_learning_rate_is_used_by_the_compiled_step(tmp_path):
    config = tiny_esc50_config(tmp_path, optimizer="sgd", momentum=0.0, weight_decay=0.0)
    task = tasks.get(config)
    train = task.load_split(config, "train")
    parts = group.build([config], train.class_names)
    batch = loop.to_device(
        next(pipeline.train_batches(train.source, task, config, 1, 16, False)), parts.mesh
    )
    gradients, compilations = [], []
    for lr in (np.float32(0.05), np.float32(0.5)):
        state = lr_sweep.with_learning_rate(
            jax.tree.map(jnp.copy, parts.state),
            jax.device_put(lr, distributed.replicated(parts.mesh)),
        )
        with counting_compilations() as compiled:
            new_state = jax.block_until_ready(parts.steps.train(state, batch)[0])
        compilations.append(len(compiled))
        assert new_state.opt_state.hyperparams["learning_rate"] == lr
        # Plain SGD: Δθ = −lr·g, so Δθ / lr is the same gradient for both rates.
        new_params = jax.tree.leaves(new_state.params)
        old_params = jax.tree.leaves(parts.state.params)
        gradients.append(
            [np.asarray(new - old) / lr for new, old in zip(new_params, old_params, strict=True)]
        )
    for a, b in zip(*gradients, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert compilations[0] >= 1 and compilations[1] == 0  # the lr is data, not a constant
