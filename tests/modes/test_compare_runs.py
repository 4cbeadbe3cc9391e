"""compare: one-factor variants trained through the grid machinery, overlays and a table whose
values are those the runs logged, the baseline marked; clear errors for what matches nothing."""

import csv
import json

import ml_collections
import pytest
from PIL import Image

from jaxdl.errors import ConfigError
from jaxdl.modes import ModeArgs, compare
from tests.helpers import tiny_esc50_config


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("compare")
    config = tiny_esc50_config(workdir)
    config.model.channels = (8, 16, 16)
    config.compare.update(dict(run=True, epochs=2, lr=(3e-3, config.train.lr), weight_decay=()))
    config.compare.model = ml_collections.ConfigDict(dict(kernel_size=(1,)))
    return config, workdir, compare.run(config, workdir, ModeArgs())


def _records(log_dir):
    return [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]


def test_baseline_and_one_variant_per_factor_are_trained_and_tabulated(compared):
    config, workdir, result = compared
    rows = list(csv.DictReader(open(result["outputs"]["csv"])))
    # lr 0.01 is the baseline's own value: trained once.
    assert len(rows) == 3
    assert set(result["differing_keys"]) == {"train.lr", "model.kernel_size"}
    labels = {r["label"] for r in rows}
    assert any("lr=0.003" in label for label in labels)
    assert any("kernel_size=1" in label for label in labels)
    for row in rows:
        (log_dir,) = (p for p in (workdir / "logs").rglob(row["run"]) if p.is_dir())
        records = _records(log_dir)
        assert int(row["epochs"]) == 2 == len(records)
        best = max(records, key=lambda r: r["val/accuracy"])
        assert float(row["val/accuracy"]) == pytest.approx(best["val/accuracy"])
        assert float(row["final/train/loss"]) == pytest.approx(records[-1]["train/loss"])
        assert float(row["final/val/loss"]) == pytest.approx(records[-1]["val/loss"])
    for path in result["outputs"]["figures"].values():
        width, height = Image.open(path).size
        assert width >= 400 and height >= 300


def test_the_baseline_is_compares_own_config_and_marked(compared):
    """The baseline is the variant that changes nothing (lr 0.01, kernel 3), wherever its group
    trains; its label says so, and the JSON line names it."""
    config, _, result = compared
    (baseline,) = [r for r in result["runs"] if r["label"].endswith(" (baseline)")]
    assert result["baseline"] == baseline["run"]
    assert baseline["train.lr"] == config.train.lr and baseline["model.kernel_size"] == 3


def test_a_pattern_matching_nothing_is_named(compared):
    config, workdir, _ = compared
    config = config.copy_and_resolve_references()
    config.compare.run = False
    with pytest.raises(ConfigError, match="'nope_\\*' matches no run directory"):
        compare.run(config, workdir, ModeArgs(runs=("nope_*",)))
    with pytest.raises(ConfigError, match="needs --runs"):
        compare.run(config, workdir, ModeArgs())
