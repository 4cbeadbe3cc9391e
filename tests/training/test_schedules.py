"""Learning-rate schedules (`train.schedule`, `train.warmup_steps`): the lr of every step against
formulas written out here (numpy, not optax), the optimizers' updates under a schedule against
numpy and torch, each grid member on its own peak lr (vmapped and sequential alike), and the
config errors. The bitwise resume of a cosine run and its logged `train/lr` are in test_resume.py.
"""

import csv
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, run_mode
from jaxdl.training import group, loop, optim
from tests.helpers import REPO, load_config, tiny_esc50_config
from tests.training.test_optim import (
    B1,
    B2,
    EPS,
    MOMENTUM,
    WD,
    _gradients,
    _params,
    assert_trees_close,
    jaxdl_steps,
    max_difference,
)

PEAK = 0.01


def _train(schedule: str = "none", **keys) -> ml_collections.ConfigDict:
    """The base config's train section with `schedule` and `keys` set."""
    train = config_lib.base_config("esc50").train
    train.update(dict(schedule=schedule, lr=PEAK, weight_decay=WD, momentum=MOMENTUM, **keys))
    return train


def _lrs(train: ml_collections.ConfigDict, steps_per_epoch: int, steps: int) -> list[float]:
    """The lr jaxdl reports for optimizer steps 1..steps."""
    return [optim.learning_rate(train, steps_per_epoch, step, PEAK) for step in range(1, steps + 1)]


def test_step_decays_by_gamma_every_step_size_epochs():
    """3 steps per epoch, a decay every 2 epochs: steps 1-6 at the peak, 7-12 halved, 13-18
    quartered. A decay counted in steps, or one step early (at step 6), ends elsewhere."""
    got = _lrs(_train("step", step_size=2, gamma=0.5, epochs=3), steps_per_epoch=3, steps=18)
    np.testing.assert_allclose(got, PEAK * np.repeat([1.0, 0.5, 0.25], 6), rtol=1e-6)


def test_cosine_with_warmup_rises_from_zero_then_decays_to_the_end_of_the_run():
    """3 warmup steps of a 12-step run (3 epochs of 4): lr 0, 1/3, 2/3 of the peak, then the
    cosine over the 9 remaining steps, whose last step is still above 0 (it reaches 0 after it)."""
    warmup, total = 3, 12
    got = _lrs(_train("cosine", warmup_steps=warmup, epochs=3), steps_per_epoch=4, steps=total)
    count = np.arange(total)  # steps done before each step
    expected = np.where(
        count < warmup,
        count / warmup,
        0.5 * (1 + np.cos(np.pi * (count - warmup) / (total - warmup))),
    )
    np.testing.assert_allclose(got, PEAK * expected, rtol=1e-6, atol=1e-12)
    assert got[0] == 0.0 and got[warmup] == pytest.approx(PEAK)
    assert got[-1] == pytest.approx(PEAK * (1 - math.cos(math.pi / 9)) / 2, rel=1e-5)


def test_warmup_applies_to_every_schedule():
    """`none` with 4 warmup steps: 0, 1/4, 2/4, 3/4 of the peak, then the peak; `step` with 2
    warmup steps multiplies its own decays (epoch 1 of 2 steps: 0, 1/2; then 1, 1; then gamma)."""
    np.testing.assert_allclose(
        _lrs(_train("none", warmup_steps=4), 5, 6),
        PEAK * np.array([0, 0.25, 0.5, 0.75, 1, 1]),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        _lrs(_train("step", warmup_steps=2, step_size=2, gamma=0.1), 2, 6),
        PEAK * np.array([0, 0.5, 1, 1, 0.1, 0.1]),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "keys",
    [
        dict(schedule="none", warmup_steps=4),
        dict(schedule="step", step_size=1, gamma=0.5, epochs=2),
        dict(schedule="cosine", warmup_steps=2, epochs=2),
    ],
    ids=["none+warmup", "step", "cosine+warmup"],
)
def test_the_optimizer_applies_the_reported_lr_at_every_step(keys):
    """Plain SGD on a constant gradient of 1 moves each parameter by exactly the lr of the step:
    the factor applied on device is the one `learning_rate` (and so `train/lr`) reports."""
    train = _train(**keys, optimizer="sgd")
    train.update(dict(momentum=0.0, weight_decay=0.0))
    steps_per_epoch, steps = 3, 6
    tx = optim.make_optimizer(train, steps_per_epoch)
    params = {"w": jnp.zeros(2, jnp.float32)}
    state, moves = tx.init(params), []
    for _ in range(steps):
        updates, state = tx.update({"w": jnp.ones(2, jnp.float32)}, state, params)
        moves.append(-float(updates["w"][0]))
    np.testing.assert_allclose(moves, _lrs(train, steps_per_epoch, steps), rtol=1e-6, atol=1e-12)


def test_schedule_none_leaves_the_optimizer_as_it_was():
    """`none` without warmup adds no state: checkpoints written before schedules still restore."""
    params = {"w": jnp.zeros(2, jnp.float32)}
    plain = optim.make_optimizer(_train("none"), 7).init(params)
    assert isinstance(plain, optax.InjectStatefulHyperparamsState)


# A 5-step run of 2 epochs of 3 steps (the last step never taken), with 2 warmup steps.
STEPS_PER_EPOCH, EPOCHS, WARMUP = 3, 2, 2


def _cosine_factors(steps: int = 5) -> list[float]:
    """The cosine-with-warmup factor of each step, written out (not optax)."""
    total, factors = STEPS_PER_EPOCH * EPOCHS, []
    for count in range(steps):
        if count < WARMUP:
            factors.append(count / WARMUP)
        else:
            factors.append(0.5 * (1 + math.cos(math.pi * (count - WARMUP) / (total - WARMUP))))
    return factors


def numpy_adamw(params: dict, gradients: list[dict], lrs: list[float], wd: float) -> dict:
    """torch AdamW's rule with the lr of each step: p -= lr_t · (m̂/(√v̂ + eps) + wd · p)."""
    flat = traverse_util.flatten_dict(params)
    m = {k: np.zeros_like(p) for k, p in flat.items()}
    v = {k: np.zeros_like(p) for k, p in flat.items()}
    for t, (grads, lr) in enumerate(zip(gradients, lrs, strict=True), start=1):
        grads = traverse_util.flatten_dict(grads)
        for k, p in flat.items():
            m[k] = B1 * m[k] + (1 - B1) * grads[k]
            v[k] = B2 * v[k] + (1 - B2) * grads[k] ** 2
            step = (m[k] / (1 - B1**t)) / (np.sqrt(v[k] / (1 - B2**t)) + EPS)
            flat[k] = p - lr * (step + wd * p)
    return traverse_util.unflatten_dict(flat)


def _cosine_train(optimizer: str) -> ml_collections.ConfigDict:
    return _train("cosine", optimizer=optimizer, warmup_steps=WARMUP, epochs=EPOCHS)


def test_adamw_with_cosine_and_warmup_matches_numpy_adamw_at_the_scheduled_lrs():
    """The decoupled decay is scaled by the scheduled lr too (torch AdamW's p *= 1 − lr_t · wd);
    the same run at the constant peak lr ends far away."""
    got = jaxdl_steps(
        optim.make_optimizer(_cosine_train("adamw"), STEPS_PER_EPOCH), _params(), _gradients()
    )
    scheduled = [PEAK * f for f in _cosine_factors()]
    assert_trees_close(got, numpy_adamw(_params(), _gradients(), scheduled, WD))
    assert max_difference(got, numpy_adamw(_params(), _gradients(), [PEAK] * 5, WD)) > 1e-3


def _torch_scheduled_steps(torch, optimizer: str, factors: list[float]) -> dict:
    """torch's optimizer for `optimizer` (as test_optim maps them) stepped under `LambdaLR` with
    `factors`; jaxdl's sgd decays decoupled, applied here as p *= 1 − lr_t · wd before the step."""
    flat = {
        k: torch.tensor(v, dtype=torch.float32, requires_grad=True)
        for k, v in traverse_util.flatten_dict(_params()).items()
    }
    tensors = list(flat.values())
    torch_optimizer = {
        "adamw": lambda: torch.optim.AdamW(tensors, PEAK, betas=(B1, B2), eps=EPS, weight_decay=WD),
        "adam_l2": lambda: torch.optim.Adam(
            tensors, PEAK, betas=(B1, B2), eps=EPS, weight_decay=WD
        ),
        "sgd": lambda: torch.optim.SGD(tensors, PEAK, momentum=MOMENTUM),
    }[optimizer]()
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch_optimizer, lambda count: factors[count])
    for grads in _gradients():
        for k, g in traverse_util.flatten_dict(grads).items():
            flat[k].grad = torch.tensor(g, dtype=torch.float32)
        if optimizer == "sgd":
            with torch.no_grad():
                for tensor in tensors:
                    tensor.mul_(1 - torch_optimizer.param_groups[0]["lr"] * WD)
        torch_optimizer.step()
        scheduler.step()
    return traverse_util.unflatten_dict({k: v.detach().numpy() for k, v in flat.items()})


@pytest.mark.parametrize("optimizer", ["adamw", "adam_l2", "sgd"])
def test_scheduled_updates_match_torch_lambda_lr(optimizer):
    """Scaling jaxdl's whole update by the factor is torch's optimizer at lr(t) for all three
    optimizers: Adam's L2 enters the moments unscaled, SGD's momentum buffer holds raw gradients."""
    torch = pytest.importorskip("torch")
    got = jaxdl_steps(
        optim.make_optimizer(_cosine_train(optimizer), STEPS_PER_EPOCH), _params(), _gradients()
    )
    assert_trees_close(got, _torch_scheduled_steps(torch, optimizer, _cosine_factors(6)))


@pytest.mark.parametrize(
    ("schedule", "build"),
    [
        ("step", lambda torch, opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)),
        ("cosine", lambda torch, opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)),
    ],
)
def test_lrs_match_torch_schedulers(schedule, build):
    """step = torch StepLR stepped once per epoch (3 steps each); cosine = CosineAnnealingLR over
    the run's 12 steps, stepped per step."""
    torch = pytest.importorskip("torch")
    steps_per_epoch, epochs = 3, 4
    train = _train(schedule, step_size=2, gamma=0.5, epochs=epochs)
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], PEAK)
    scheduler = build(torch, torch_optimizer)
    expected = []
    for step in range(1, steps_per_epoch * epochs + 1):
        expected.append(torch_optimizer.param_groups[0]["lr"])
        torch_optimizer.step()
        if schedule == "cosine" or step % steps_per_epoch == 0:
            scheduler.step()
    np.testing.assert_allclose(
        _lrs(train, steps_per_epoch, len(expected)), expected, rtol=1e-5, atol=1e-12
    )


def _member_config(tmp_path, lr: float) -> ml_collections.ConfigDict:
    """A narrow ESC-50 model under cosine with warmup over 2 epochs of 3 steps, at peak `lr`.

    SGD: Adam would turn the float noise in the gradients of the conv biases (cancelled by the
    BatchNorm after them) into lr-sized steps, which differ between vmapped and sequential programs.
    """
    config = tiny_esc50_config(
        tmp_path, optimizer="sgd", lr=lr, schedule="cosine", warmup_steps=2, epochs=2
    )
    config.model.channels = (4, 8, 8)
    return config


def _train_group(configs: list, strategy: str) -> list:
    """Each member's params and optimizer state after the 6 steps of 2 epochs of 3 steps, on the
    same random batches."""
    trainer = group.build(configs, [str(i) for i in range(10)], strategy, steps_per_epoch=3)
    rng = np.random.default_rng(0)
    shape = tasks.get(configs[0]).input_shape(configs[0])
    states, sums = trainer.states, {"epoch": trainer.zero_sums()}
    for _ in range(6):
        batch = {
            "x": rng.normal(size=(8, *shape)).astype(np.float32),
            "y": rng.integers(0, 10, 8).astype(np.int32),
            "mask": np.ones(8, np.float32),
        }
        states, sums = trainer.train(states, sums, loop.to_device(batch, trainer.mesh))
    return jax.device_get(trainer.member_states(states))


def test_grid_members_follow_their_own_peak_lr_vmapped_and_sequential(tmp_path):
    """Two members (peaks 0.1 and 0.03, same seed) trained together end where the second one
    trained alone ends: its schedule scales its own peak, not the first member's; vmapped and
    sequential alike. Each state holds its peak and the schedule's count, so `train/lr` (the peak
    through the schedule at the step) is the lr each member applied."""
    members = [_member_config(tmp_path, 0.1), _member_config(tmp_path, 0.03)]
    (alone,) = _train_group(members[1:], "sequential")
    for strategy in ("sequential", "vmap"):
        states = _train_group(members, strategy)
        for state, config in zip(states, members, strict=True):
            assert optax.tree_utils.tree_get(state.opt_state, "learning_rate") == pytest.approx(
                config.train.lr
            )
            assert int(state.opt_state[1].count) == 6  # the schedule's own step count
        for got, expected in zip(
            jax.tree.leaves(states[1].params), jax.tree.leaves(alone.params), strict=True
        ):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=strategy)
        assert max_difference(states[0].params, states[1].params) > 1e-2  # the peaks matter


def _lr_finder_trace(tmp_path, **train) -> list[dict]:
    config = tiny_esc50_config(tmp_path, **train)
    config.model.channels = (4, 8, 8)
    config.lr_finder.update(dict(start=1e-3, end=1e-1, steps=4))
    summary = run_mode("lr_finder", config, tmp_path / train.get("schedule", "none"), ModeArgs())
    with open(summary["outputs"]["csv"]) as trace:
        return list(csv.DictReader(trace))


def test_lr_finder_ignores_the_schedule(tmp_path):
    """The sweep is the finder's schedule: a cosine with a long warmup configured for training
    changes none of its steps (applied, it would start every sweep at lr 0)."""
    swept = _lr_finder_trace(tmp_path)
    assert _lr_finder_trace(tmp_path, schedule="cosine", warmup_steps=1000) == swept


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("schedule", "linear", "one of ['none', 'step', 'cosine']"),
        ("warmup_steps", -1, "a whole number of optimizer steps >= 0 (0: no warmup)"),
        ("gamma", 0.0, "a decay factor in (0, 1]"),
        ("gamma", 1.5, "a decay factor in (0, 1]"),
        ("optimizer", "rmsprop", "one of ['adamw', 'adam_l2', 'sgd']"),
    ],
)
def test_bad_schedule_values_are_config_errors_naming_the_key(key, value, expected):
    config = load_config("esc50")
    with config.unlocked():
        config.train[key] = value
    with pytest.raises(ConfigError) as raised:
        config_lib.validate(config)
    assert str(raised.value) == f"train.{key}={value!r} is invalid: expected {expected}"


def test_step_without_step_size_is_refused_by_the_command_line(tmp_path):
    """`schedule=step` needs the epochs between decays: rc 2, one line naming the key, before
    anything is trained or written."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdl.main",
            "--config",
            "configs/esc50.py:synthetic",
            "--mode=train",
            f"--workdir={tmp_path}",
            "--config.train.schedule=step",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: train.step_size=0 is invalid: expected a whole number of epochs between two "
        "decays, >= 1 when train.schedule='step'"
    )
    assert not any(tmp_path.iterdir())
