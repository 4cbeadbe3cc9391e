"""Training dynamics against PyTorch: a fresh PyTorch twin, imported, trains like it does in torch.

For the ESC-50 and CelebA models, a freshly initialised twin (`jaxdl.interop.torch_models`) is saved
with `torch.save`, read and mapped by jaxdl's PyTorch checkpoint import, and both frameworks take
the same 20 steps on the same batches (no augmentation; CelebA's dropout is 0, as the two
frameworks' dropout masks cannot be made equal): jaxdl through the train step `group.build`
compiles, torch through `Adam(lr, weight_decay)` for `adam_l2` and `AdamW` for `adamw`.

- Per-step losses agree within LOSS_RTOL (measured: ≤ 3e-7 with adam_l2, ≤ 1e-5 with adamw).
- The batch statistics folded into BatchNorm's running mean and variance on the first step agree
  within FOLDED_RTOL of each layer's largest (train mode, momentum 0.1, torch's unbiased variance;
  measured: ≤ 6e-6).
- The running statistics after 20 steps agree within STATS_RTOL of each layer's largest value
  (measured: ≤ 5e-5 with adam_l2, ≤ 3e-3 with adamw).

The learning rate is small (1e-4) on purpose: Adam scales float32 rounding differences into
parameter differences that grow step by step (at lr 1e-3 torch float32 itself ends 2e-4 from torch
float64 in loss after 20 steps), so a tight tolerance needs a small step. Weight decay is large
(0.1), so the two optimizers' loss curves differ by far more than the tolerance (asserted too).
Conv biases in front of BatchNorm have no gradient but rounding noise, which Adam turns into steps
of up to lr: with adamw (no L2 term to dominate that noise) each framework's biases, and with them
the running means, wander apart by ~3e-3 of the largest mean in 20 steps, as torch float32 and
torch float64 do between themselves; hence adamw's looser STATS_RTOL.
"""

import dataclasses
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from jaxdl import tasks
from jaxdl.interop.torch_checkpoint import flax_variables, read_torch_checkpoint
from jaxdl.training import group, loop
from jaxdl.utils import distributed
from tests.helpers import load_config

torch = pytest.importorskip("torch")
from jaxdl.interop.torch_models import TORCH_MODELS  # noqa: E402

STEPS, DISTINCT_BATCHES = 20, 4
LR, WEIGHT_DECAY = 1e-4, 0.1
BN_MOMENTUM = 0.1  # torch's default: running = (1 - m) · running + m · batch statistic
LOSS_RTOL = 5e-5
FOLDED_RTOL = 3e-5
STATS_RTOL = {"adam_l2": 2e-4, "adamw": 1e-2}
TORCH_OPTIMIZERS = {"adam_l2": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclasses.dataclass(frozen=True)
class Case:
    task: str
    model: dict  # config.model overrides, passed to the twin too
    batch_size: int


# Small widths keep the test fast; the inputs are the synthetic presets' (ESC-50: 64 × 101 frames
# of 1 s clips) and CelebA's 64 × 64.
CASES = {
    "esc50": Case("esc50", dict(channels=(16, 32, 64), kernel_size=3), 8),
    "celeba": Case("celeba", dict(channels_block3=64, dropout=0.0), 4),
}


@dataclasses.dataclass(frozen=True)
class Trained:
    """One optimizer's steps in both frameworks; statistics flattened, in Flax layout."""

    jaxdl_losses: np.ndarray
    torch_losses: np.ndarray
    initial_stats: dict  # (layer, "mean" | "var") -> array, as imported
    jaxdl_stats: list[dict]  # after the first and after the last step
    torch_stats: list[dict]


def _config(case: Case, optimizer: str) -> ml_collections.ConfigDict:
    config = load_config(case.task, "synthetic")
    config.model.update(case.model)
    config.train.update(dict(optimizer=optimizer, lr=LR, weight_decay=WEIGHT_DECAY))
    return config


def _names(config: ml_collections.ConfigDict) -> list[str]:
    if config.data.get("attributes"):
        return list(config.data.attributes)
    return [f"class{i}" for i in range(tasks.get(config).num_classes)]


def _batches(case: Case, config: ml_collections.ConfigDict, names: list[str]) -> list[dict]:
    """STEPS host batches (NHWC), DISTINCT_BATCHES of them repeated so the loss goes down."""
    rng = np.random.default_rng(0)
    shape = (case.batch_size, *tasks.by_name(case.task).input_shape(config))
    distinct = []
    for _ in range(DISTINCT_BATCHES):
        if config.data.get("attributes"):
            y = (rng.random((case.batch_size, len(names))) < 0.4).astype(np.int32)
        else:
            y = rng.integers(0, len(names), case.batch_size).astype(np.int32)
        distinct.append(
            {
                "x": rng.normal(size=shape).astype(np.float32),
                "y": y,
                "mask": np.ones(case.batch_size, np.float32),
            }
        )
    return [distinct[step % DISTINCT_BATCHES] for step in range(STEPS)]


def _jaxdl_run(
    config: ml_collections.ConfigDict, names: list[str], twin_path: Path, batches: list[dict]
):
    """(losses, imported variables, batch_stats after the first and last steps, model).

    On one device: data-parallel steps equal one device's in tests/training/test_steps.py.
    """
    mesh = distributed.make_mesh(jax.devices()[:1])
    parts = group.build([config], names, mesh=mesh)
    template = {"params": parts.state.params, "batch_stats": parts.state.batch_stats}
    imported = flax_variables(parts.model, template, read_torch_checkpoint(twin_path))
    state = parts.state.replace(**jax.device_put(imported, distributed.replicated(mesh)))
    losses, stats = [], []
    for step, batch in enumerate(batches, start=1):
        zeros = {"step": parts.zero_sums()[0]}  # the step's own sums
        state, sums = parts.steps.train(state, zeros, loop.to_device(batch, mesh))
        losses.append(float(sums["step"]["loss_sum"]) / float(sums["step"]["count"]))
        if step in (1, len(batches)):
            stats.append(jax.device_get(state.batch_stats))
    return np.array(losses), imported, stats, parts.model


def _torch_run(twin, optimizer: str, multilabel: bool, batches: list[dict]):
    """(losses, state_dicts after the first and last steps) of torch training `twin` in place."""
    twin.train()
    update = TORCH_OPTIMIZERS[optimizer](twin.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.BCEWithLogitsLoss() if multilabel else torch.nn.CrossEntropyLoss()
    losses, state_dicts = [], []
    for step, batch in enumerate(batches, start=1):
        y = torch.from_numpy(batch["y"])
        update.zero_grad()
        loss = loss_fn(
            twin(torch.from_numpy(batch["x"]).permute(0, 3, 1, 2)),
            y.float() if multilabel else y.long(),
        )
        loss.backward()
        update.step()
        losses.append(loss.item())
        if step in (1, len(batches)):
            state_dicts.append({k: v.clone() for k, v in twin.state_dict().items()})
    return np.array(losses), state_dicts


def _train_both(case: Case, optimizer: str, tmp_path: Path) -> Trained:
    config = _config(case, optimizer)
    names = _names(config)
    batches = _batches(case, config, names)
    torch.manual_seed(0)
    twin = TORCH_MODELS[config.model.name](num_classes=len(names), **case.model)
    twin_path = tmp_path / f"{optimizer}-twin.pt"
    torch.save(twin.state_dict(), twin_path)
    jaxdl_losses, imported, jaxdl_stats, model = _jaxdl_run(config, names, twin_path, batches)
    torch_losses, state_dicts = _torch_run(
        twin, optimizer, bool(config.data.get("attributes")), batches
    )
    torch_stats = []
    for index, state_dict in enumerate(state_dicts):  # into Flax layout by the same import
        path = tmp_path / f"{optimizer}-trained-{index}.pt"
        torch.save(state_dict, path)
        variables = flax_variables(model, imported, read_torch_checkpoint(path))
        torch_stats.append(variables["batch_stats"])
    flat = traverse_util.flatten_dict
    return Trained(
        jaxdl_losses,
        torch_losses,
        flat(imported["batch_stats"]),
        [flat(s) for s in jaxdl_stats],
        [flat(s) for s in torch_stats],
    )


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, tmp_path_factory) -> dict[str, Trained]:
    """Both optimizers' runs for one task, each from the same fresh twin and batches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's thread pool spins against jax's on a small machine
    try:
        tmp_path = tmp_path_factory.mktemp(request.param)
        return {
            name: _train_both(CASES[request.param], name, tmp_path) for name in TORCH_OPTIMIZERS
        }
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("optimizer", sorted(TORCH_OPTIMIZERS))
def test_per_step_losses_match_torch(trained, optimizer):
    run = trained[optimizer]
    np.testing.assert_allclose(run.jaxdl_losses, run.torch_losses, rtol=LOSS_RTOL)
    first_pass, last_pass = (
        run.torch_losses[s].mean()
        for s in (slice(0, DISTINCT_BATCHES), slice(-DISTINCT_BATCHES, None))
    )
    assert last_pass < 0.999 * first_pass  # the model learns: the curve is not flat


def test_the_two_optimizers_are_told_apart(trained):
    """adam_l2 and adamw end far apart, so jaxdl running the other one could not pass."""
    gap = np.abs(trained["adam_l2"].torch_losses - trained["adamw"].torch_losses)
    assert (gap / trained["adamw"].torch_losses).max() > 20 * LOSS_RTOL


def _folded(run: Trained, stats: list[dict], statistic: str) -> dict:
    """The batch statistic the first step folded into the running one: (new - (1-m)·old) / m."""
    first = stats[0]
    return {
        path: (first[path] - (1 - BN_MOMENTUM) * run.initial_stats[path]) / BN_MOMENTUM
        for path in first
        if path[-1] == statistic
    }


def _assert_close(got: dict, expected: dict, rtol: float, what: str) -> None:
    for path, value in expected.items():
        np.testing.assert_allclose(
            got[path],
            value,
            rtol=0,
            atol=rtol * np.abs(value).max(),
            err_msg=f"{what}: {'/'.join(path)}",
        )


@pytest.mark.parametrize("optimizer", sorted(TORCH_OPTIMIZERS))
def test_first_step_folds_the_batch_mean_like_torch(trained, optimizer):
    run = trained[optimizer]
    _assert_close(
        _folded(run, run.jaxdl_stats, "mean"),
        _folded(run, run.torch_stats, "mean"),
        FOLDED_RTOL,
        "batch mean",
    )


@pytest.mark.parametrize("optimizer", sorted(TORCH_OPTIMIZERS))
def test_first_step_folds_the_unbiased_batch_variance_like_torch(trained, optimizer):
    run = trained[optimizer]
    _assert_close(
        _folded(run, run.jaxdl_stats, "var"),
        _folded(run, run.torch_stats, "var"),
        FOLDED_RTOL,
        "batch variance",
    )


@pytest.mark.parametrize("optimizer", sorted(TORCH_OPTIMIZERS))
def test_running_statistics_after_twenty_steps_match_torch(trained, optimizer):
    run = trained[optimizer]
    _assert_close(
        run.jaxdl_stats[-1], run.torch_stats[-1], STATS_RTOL[optimizer], "running statistics"
    )
