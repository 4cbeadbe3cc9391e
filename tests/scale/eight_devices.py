"""The 8-device runs of tests/scale/test_scale.py, in a process of their own (the test session has
4 simulated devices, and XLA's device count is fixed at start-up).

Each run on all 8 devices is paired with the same computation on a 1-device mesh of this process:
- train: data parallel over 8 (batch 16: 2 rows per device), then its test evaluation on 8;
- evaluate: the 8-device run's best checkpoint, scored again on one device;
- grid_search: 2 members vmapped on a config 2 x data 4 mesh;
- grid layouts: the meshes `grid_layout` builds for these devices seen as 8 hosts x 1 or 4 x 2
  (the grid run's own mesh), and the same 2 members trained on the layout used before, which
  kept `config` within a host (8 x 1: config 1 x data 8);
- and a batch of 12, which does not split over 8 devices, is refused before training.
The 1-device reference is the grid's two members trained one after the other; the first is the
train config itself (a member whose seed is the grid's reproduces `train`). Prints, as its last
line, one JSON object of the paired numbers; the test compares them. The model is narrow
(4, 8, 8 channels): what is compared does not depend on its width, and its vmapped 8-device runs
take about half the time they took at 8, 16, 16.

    python -m tests.scale.eight_devices ROOT DATA_CACHE

ROOT receives every run directory; DATA_CACHE is the test session's data cache (the tiny
synthetic ESC-50 is then generated once per session, not again in this process).
"""

import os

# Appended: the last device-count flag wins, and the test run's other XLA flags are kept.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import csv  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, Mesh  # noqa: E402

from jaxdl import tasks  # noqa: E402
from jaxdl.data import pipeline  # noqa: E402
from jaxdl.errors import ConfigError  # noqa: E402
from jaxdl.modes import grid_search, train  # noqa: E402
from jaxdl.training import checkpoint, fit, group, loop  # noqa: E402
from jaxdl.training.data import training_data  # noqa: E402
from jaxdl.training.grid import expand, member_name  # noqa: E402
from jaxdl.utils import distributed  # noqa: E402
from tests.helpers import tensorboard_scalars, tiny_esc50_config  # noqa: E402

CURVE_KEYS = ("train/loss", "val/loss", "val/accuracy")


def _config(root: pathlib.Path, data_cache: pathlib.Path):
    config = tiny_esc50_config(root)  # 120 train clips, batches of 16: 7 steps per epoch, 2 epochs
    config.data.cache_dir = str(data_cache)
    config.model.channels = (4, 8, 8)
    # SGD: Adam's first steps are lr * sign(gradient), which turns reduction-order rounding of
    # near-zero gradients into full-size differences (tests/modes/test_grid_search.py).
    config.train.optimizer = "sgd"
    config.train.lr, config.train.weight_decay = 0.05, 1e-4
    config.train.eval_batch_size = 24  # 40 val / test clips: the second batch has 8 padding rows
    config.grid.lr, config.grid.weight_decay = (0.05, 0.01), (1e-4,)
    config.grid.seeds, config.grid.epochs = (config.seed,), config.train.epochs
    config.grid.model.channels, config.grid.model.kernel_size = ((4, 8, 8),), (3,)
    config.grid.strategy = "vmap"
    return config


def _curves(log_dir: pathlib.Path) -> dict:
    """A run's per-epoch metrics (metrics.jsonl) and logged step losses (event file)."""
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "epochs": {k: [r[k] for r in records] for k in CURVE_KEYS},
        "steps": [value for _, value in tensorboard_scalars(log_dir)["train/loss_step"]],
    }


def one_device(config, root: pathlib.Path) -> list[dict]:
    """The grid's members trained one after the other on one device."""
    members = expand(config)
    data = training_data(config, 1)
    trainer = group.build(
        members, data.names, "sequential", mesh=distributed.make_mesh(jax.devices()[:1])
    )
    named = [
        fit.Member(str(i), m, root / "one" / str(i), root / "one_ckpt" / str(i))
        for i, m in enumerate(members)
    ]
    return [_curves(result.member.log_dir) for result in fit.fit(named, data, trainer)]


def train_and_evaluate(config, root: pathlib.Path) -> dict:
    """`train` on 8 devices, and its best checkpoint scored again on one."""
    eight = train.train_and_evaluate(config, root / "train")
    log_dir = root / "train" / "logs" / eight["run"]
    mesh = distributed.make_mesh(jax.devices()[:1])
    checkpoints, step, meta = checkpoint.open_for_evaluation(eight["checkpoint"])
    with checkpoints:
        parts = group.build([config], meta["class_names"], mesh=mesh)
        state = checkpoints.restore_state(step, parts.state)
    test = tasks.get(config).load_split(config, "test").source
    sums, probabilities = loop.predict(
        parts.steps.predict,
        state,
        parts.zero_sums(train=False)[0],
        pipeline.eval_batches(test, parts.task, config, config.train.eval_batch_size),
        mesh,
    )
    one = parts.objective.summary(sums)
    rows = list(csv.DictReader((log_dir / "test" / "predictions.csv").open()))
    scored = json.loads((log_dir / "test" / "scores.json").read_text())
    return {
        "curves": _curves(log_dir),
        "test": {
            "eight": {k: eight[f"test/{k}"] for k in ("loss", "accuracy", "macro_f1")}
            | {"examples": scored["examples"]},
            "one": {k: float(one[k]) for k in ("loss", "accuracy", "macro_f1")}
            | {"examples": len(probabilities)},
        },
        "probabilities": {
            "eight": [float(r["probability"]) for r in rows],
            "one": probabilities.max(axis=-1).tolist(),
        },
    }


def refused_batch(config, root: pathlib.Path) -> str:
    """The message that stops training when the batch does not split over the 8 devices."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.train.batch_size = 12
    data = training_data(config, jax.device_count())
    trainer = group.build([config], data.names, "sequential")
    try:
        fit.fit([fit.Member("odd", config, root / "odd", root / "odd_ckpt")], data, trainer)
    except ConfigError as err:
        return str(err)
    return "trained"


def grid(config, root: pathlib.Path) -> dict:
    """`grid_search` with the vmap strategy on 8 devices."""
    summary = grid_search.run(config, root / "grid", None)
    log_dir = root / "grid" / "logs" / summary["run"]
    members = expand(config)
    return {
        "strategy": summary["strategy"],
        "mesh": dict(group.build(members, ("a", "b"), "vmap").mesh.shape),
        "mesh_ids": [[d.id for d in row] for row in distributed.make_grid_mesh(2).devices],
        "curves": [_curves(log_dir / member_name(m)) for m in members],
    }


def config_within_hosts(members: int, device_grid: np.ndarray) -> np.ndarray:
    """The grid layout before issue 16: config slots within each host, data over every host."""
    processes, local = device_grid.shape
    config = max(d for d in range(1, local + 1) if local % d == 0 and members % d == 0)
    blocks = device_grid.reshape(processes, config, local // config).transpose(1, 0, 2)
    return blocks.reshape(config, -1)


def layouts(config, root: pathlib.Path) -> dict:
    """The 8 devices as simulated hosts: today's grid meshes, and training on yesterday's."""
    members = expand(config)
    devices = np.array(jax.devices())
    new, old = {}, {}
    for processes, local in ((8, 1), (4, 2)):
        grid = devices.reshape(processes, local)
        layout = distributed.grid_layout(len(members), processes, local)
        new[f"{processes}x{local}"] = [
            [d.id for d in row] for row in distributed.layout_mesh(layout, grid).devices
        ]
        old[f"{processes}x{local}"] = config_within_hosts(len(members), grid)
    mesh = Mesh(old["8x1"], ("config", "data"), axis_types=(AxisType.Auto, AxisType.Auto))
    data = training_data(config, 1)
    trainer = group.build(members, data.names, "vmap", mesh=mesh)
    named = [
        fit.Member(str(i), m, root / "before" / str(i), root / "before_ckpt" / str(i))
        for i, m in enumerate(members)
    ]
    return {
        "new": new,
        "old_shapes": {k: list(v.shape) for k, v in old.items()},
        "before_8x1": [_curves(r.member.log_dir) for r in fit.fit(named, data, trainer)],
    }


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    config = _config(root, pathlib.Path(sys.argv[2]))
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "threefry_partitionable": jax.config.jax_threefry_partitionable,
                "one": one_device(config, root),
                "train": train_and_evaluate(config, root),
                "grid": grid(config, root),
                "layouts": layouts(config, root),
                "refused_batch": refused_batch(config, root),
            }
        )
    )
