"""Per-layer table and grid parameter counts against the reference projects' counts."""

import pytest

from jaxdl import tasks
from jaxdl.analysis import model_summary
from tests.helpers import load_config

# docs/reference-projects.md#parameter-counts (reference projects, real class counts)
REFERENCE = {
    "esc50": {
        ((32, 64, 128), 3): 99_570,
        ((32, 64, 128), 5): 263_922,
        ((48, 96, 192), 3): 218_450,
        ((48, 96, 192), 5): 587_858,
    },
    "tiny_imagenet": {
        (4, (64, 64, 64)): 492_424,
        (4, (48, 72, 72)): 533_384,
        (6, (64, 64, 64)): 763_528,
        (6, (48, 72, 72)): 829_064,
    },
    "cub200": {(2, 2): 2_012_488, (2, 4): 1_625_416, (3, 2): 3_176_392, (3, 4): 2_595_784},
    "celeba": {(c, d): n for c, n in ((192, 298_757), (256, 372_997)) for d in (0.0, 0.2, 0.4)},
}


def _key(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("task", sorted(REFERENCE))
def test_grid_counts_are_the_reference_counts(task):
    config = load_config(task)
    data = tasks.get(config)
    rows = model_summary.grid_counts(config, data.num_classes, data.input_shape(config))
    keys = [k for k in rows[0] if k not in ("params", "configured")]
    assert {tuple(_key(r[k]) for k in keys): r["params"] for r in rows} == REFERENCE[task]
    (configured,) = [r for r in rows if r["configured"]]
    assert tuple(_key(configured[k]) for k in keys) == tuple(_key(config.model[k]) for k in keys)


def test_layer_table_of_the_esc50_final_model():
    config = load_config("esc50")
    rows = model_summary.layer_table(tasks.build_model(config, 50), (64, 501, 1))
    assert [(r["layer"], r["type"], r["params"]) for r in rows] == [
        ("conv0", "Conv", 5 * 5 * 32 + 32),
        ("bn0", "BatchNorm", 64),
        ("conv1", "Conv", 5 * 5 * 32 * 64 + 64),
        ("bn1", "BatchNorm", 128),
        ("conv2", "Conv", 5 * 5 * 64 * 128 + 128),
        ("bn2", "BatchNorm", 256),
        ("head", "Dense", 128 * 50 + 50),
    ]
    assert sum(r["params"] for r in rows) == 263_922
    assert [r["output_shape"] for r in rows[::2]] == [
        [64, 501, 32],
        [32, 250, 64],
        [16, 125, 128],
        [50],
    ]
    assert sum(r["state"] for r in rows) == 2 * (32 + 64 + 128)  # BatchNorm mean and var
    assert rows[0]["param_shapes"] == {"bias": [32], "kernel": [5, 5, 1, 32]}


def test_layer_table_lists_parameterless_layers():
    config = load_config("celeba")
    config.model.dropout = 0.2
    rows = model_summary.layer_table(tasks.build_model(config, 5), (64, 64, 3))
    dropout = [r for r in rows if r["type"] == "Dropout"]
    assert len(dropout) == 1 and dropout[0]["params"] == 0 and dropout[0]["output_shape"] == [256]
    assert sum(r["params"] for r in rows) == 372_997
