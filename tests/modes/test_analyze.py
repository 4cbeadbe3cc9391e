"""--mode=analyze end to end on generated official layouts (ESC-50, CelebA, and a CUB-200 copy
with a missing and a corrupt image): every figure checked against the generated files."""

import contextlib
import csv
import io
import json
import math
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxdl.data import celeba, cub200, synthetic
from jaxdl.errors import DataError
from jaxdl.modes import ModeArgs, analyze
from tests.helpers import load_config, tiny_esc50_config

# Reference counts (50 classes; tests/models); the head holds c3 + 1 parameters per class.
ESC50_REFERENCE_PARAMS = {
    ((32, 64, 128), 3): 99_570,
    ((32, 64, 128), 5): 263_922,
    ((48, 96, 192), 3): 218_450,
    ((48, 96, 192), 5): 587_858,
}
CELEBA_REFERENCE_PARAMS = {192: 298_757, 256: 372_997}


def _outputs(result: dict):
    out = pathlib.Path(result["out_dir"])
    return out, json.loads((out / "summary.json").read_text())


def _csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _check_first_batch(summary: dict, out, chance: float) -> None:
    check = summary["first_batch"]
    assert check["chance_loss"] == pytest.approx(chance)
    gap = abs(check["loss"] - chance) / chance
    assert check["relative_gap"] == pytest.approx(gap)
    # A batch of 10 random examples sits 10-15 % from ln C; a wrong init scale lands far beyond.
    assert check["within_tolerance"] == (gap <= 0.1) and gap < 0.5, check["loss"]
    rows = _csv(out / "gradients.csv")
    norms = np.array([float(r["grad_norm"]) for r in rows])
    assert len(rows) == len(check["gradients"]) and np.isfinite(norms).all()
    # Exactly zero only for the conv biases that a training BatchNorm removes (every model's
    # conv biases are followed by one): the loss does not move when they do.
    zero = sorted(r["parameter"] for r in rows if float(r["grad_norm"]) == 0)
    assert zero == check["loss_independent"]
    assert all(name.endswith("bias") and "conv" in name for name in zero), zero
    assert check["global_grad_norm"] == pytest.approx(np.sqrt(np.sum(norms**2)))
    assert check["all_finite"] and check["all_nonzero"]


@pytest.fixture(scope="module")
def esc50_run(tmp_path_factory):
    """10 classes, one 0.2 s clip per class and fold, a narrow configured model; a cache of its
    own, so its five folds are built here, with what the run printed."""
    workdir = tmp_path_factory.mktemp("esc50")
    config = tiny_esc50_config(workdir)
    config.data.cache_dir = str(workdir / "cache")
    config.data.synthetic.update(clips_per_class_per_fold=1, clip_seconds=0.2)
    config.model.channels = (8, 16, 32)
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(out):
        result = analyze.run(config, workdir, ModeArgs())
    return config, result, out.getvalue()


def test_esc50_prints_a_brief_summary_and_where_the_analysis_is(esc50_run):
    _, result, printed = esc50_run
    out, summary = _outputs(result)
    brief = printed[printed.index(f"analyze {result['run']} done in") :].splitlines()
    assert len(brief) <= 12  # not analysis.md's 180 lines, whose headings are nowhere
    assert not [line for line in printed.splitlines() if line.startswith("## ")]
    assert brief[1] == "  splits: train 30, val 10, test 10; 10 classes (multiclass)"
    assert brief[2] == "  census: 50 raw files, 0 problem(s)"
    assert brief[3] == (
        "  val baselines: majority accuracy 0.1000, macro_f1 0.0182; "
        f"random accuracy 0.1000, macro_f1 {result['random/val/macro_f1']:.4f}"
    )
    check = summary["first_batch"]
    verdict = "within" if check["within_tolerance"] else "OUTSIDE"
    assert brief[4].startswith(
        f"  initial loss {check['loss']:.4f} vs ln C = {math.log(10):.4f} ({verdict} 10%)"
    )
    assert brief[5] == "  parameters: 6,330"
    assert brief[-1].endswith(str(out / "analysis.md"))


def test_esc50_each_fold_cache_build_says_so_once_and_tfds_says_nothing(esc50_run):
    printed = esc50_run[2]
    for fold in range(1, 6):
        assert printed.count(f"building the log-mel cache for fold {fold} (10 clips)") == 1
    assert "Downloading and preparing" not in printed and "downloaded and prepared" not in printed


def test_esc50_sizes_distribution_and_baselines_match_the_generated_folds(esc50_run):
    config, result, _ = esc50_run
    out, summary = _outputs(result)
    assert set(summary) == {  # the keys analyze.py documents for the report mode
        "mode",
        "task",
        "run",
        "out_dir",
        "seed",
        "seconds",
        "card",
        "splits",
        "split_overlap",
        "distribution",
        "census",
        "pipelines",
        "examples",
        "batch",
        "baselines",
        "model",
        "parameters",
        "first_batch",
        "mean_std",
        "files",
    }
    assert all((out / name).is_file() for name in summary["files"].values())
    assert summary["splits"] == {"train": 30, "val": 10, "test": 10}
    assert {k: result[k] for k in ("train", "val", "test")} == summary["splits"]
    assert all(not files for files in summary["split_overlap"].values())

    rows = _csv(out / "class_distribution.csv")
    assert [r["class"] for r in rows] == sorted(synthetic.CATEGORIES[:10])
    assert {(r["train"], r["val"], r["test"]) for r in rows} == {("3", "1", "1")}
    assert summary["distribution"]["train"]["imbalance_ratio"] == 1.0
    assert summary["distribution"]["val"]["normalized_entropy"] == pytest.approx(1.0)

    # Every class has 3 train clips: the tie goes to label 0; each val class has one clip.
    majority = summary["baselines"]["majority"]
    assert (majority["class_index"], majority["tied_classes"]) == (0, 10)
    assert majority["val"]["accuracy"] == pytest.approx(1 / 10)
    # class 0 is predicted for all 10 val clips: F1 = 2·1 / (2·1 + 9) for it, 0 for the others
    assert majority["val"]["macro_f1"] == pytest.approx(2 / 11 / 10)
    assert majority["train"]["loss"] == pytest.approx(math.log(10), rel=1e-5)
    for split in ("val", "test"):
        expected = summary["baselines"]["random"]["expected"][split]
        simulated = summary["baselines"]["random"]["simulated"][split]
        assert expected["accuracy"] == result[f"random/{split}/accuracy"] == 1 / 10
        assert abs(simulated["accuracy"] - 1 / 10) <= 4 * simulated["accuracy_std"] / math.sqrt(20)
        assert abs(simulated["macro_f1"] - expected["macro_f1"]) <= (
            4 * simulated["macro_f1_std"] / math.sqrt(20)
        )


def test_esc50_census_pipeline_batch_model_and_first_batch(esc50_run):
    config, result, _ = esc50_run
    out, summary = _outputs(result)
    census = summary["census"]
    assert census["kind"] == "audio" and census["problems"] == []
    assert census["all"]["sample_rates"] == {"44100": 50}
    assert census["all"]["seconds"]["min"] == census["all"]["seconds"]["max"] == pytest.approx(0.2)
    assert [g for g in census["groups"]] == ["train", "val", "test"]

    steps = {s["op"]: s for s in summary["pipelines"]["augmentation"]["steps"]}
    assert steps["time_shift"]["p"] == 0.3 and steps["frequency_mask"]["p"] == 0.5
    assert steps["time_mask"]["params"]["width"] == "floor(U[0, 20))"
    assert summary["pipelines"]["eval_deterministic"] is True

    frames = 1 + int(0.2 * 16000) // 160
    batch = summary["batch"]
    assert batch["x_shape"] == [16, 64, frames, 1] and batch["y_shape"] == [16]
    # The declared input shape follows the generated clips' length (0.2 s), not ESC-50's 5 s.
    assert batch["expected_x_shape"] == [16, 64, frames, 1] and batch["x_matches"]
    assert batch["logits_shape"] == [16, 10] and batch["logits_match"]

    grid = {
        (tuple(r["channels"]), r["kernel_size"]): r["params"] for r in summary["parameters"]["grid"]
    }
    assert grid == {
        (channels, k): count - 40 * (channels[-1] + 1)
        for (channels, k), count in ESC50_REFERENCE_PARAMS.items()
    }
    layers = _csv(out / "layers.csv")
    assert [r["layer"] for r in layers] == ["conv0", "bn0", "conv1", "bn1", "conv2", "bn2", "head"]
    # (3·3·1·8 + 8) + 2·8 + (3·3·8·16 + 16) + 2·16 + (3·3·16·32 + 32) + 2·32 + (32·10 + 10)
    assert sum(int(r["params"]) for r in layers) == result["params"] == 6_330
    assert layers[-1]["output_shape"] == "[10]"
    _check_first_batch(summary, out, math.log(10))
    assert {"conv0/bias", "conv1/bias", "conv2/bias"} <= set(summary["first_batch"]["negligible"])

    width, height = _png_size(out / "examples.png")  # 3 examples x 3 panels
    assert 800 <= width <= 1000 and 650 <= height <= 850
    assert 450 <= _png_size(out / "class_distribution.png")[0] <= 650  # 6 in: 10 classes x 3 splits
    text = (out / "analysis.md").read_text()
    assert f"Initial loss {summary['first_batch']['loss']:.4f}" in text
    assert "| train | 30 |" in text and "| **total** |  |  | 6,330 |  |" in text


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("celeba")
    config = load_config("celeba", "synthetic")
    config.data.cache_dir = str(workdir / "cache")
    config.data.synthetic.num_images = 300
    config.data.image_size = 24
    # torch's initialisation, as the reference: flax's default gives larger initial logits, whose
    # BCE (0.79 here) is reported as outside 10 % of ln 2.
    config.model.update(channels_block3=16, init="torch")
    config.train.batch_size = 32
    config.analyze.mean_std = True
    return config, analyze.run(config, workdir, ModeArgs())


def test_celeba_rates_and_baselines_match_the_annotation_files(celeba_run):
    config, result = celeba_run
    out, summary = _outputs(result)
    root = celeba.resolve_data_dir(config)
    names, filenames, values = celeba.read_attributes(root / celeba.ATTRIBUTES_FILE)
    partition = dict(
        line.split() for line in (root / celeba.PARTITION_FILE).read_text().splitlines()
    )
    columns = [names.index(a) for a in config.data.attributes]
    targets = {
        split: values[np.array([partition[f] == code for f in filenames])][:, columns] > 0
        for split, code in (("train", "0"), ("val", "1"), ("test", "2"))
    }
    assert (
        summary["splits"]
        == {split: len(t) for split, t in targets.items()}
        == {"train": 240, "val": 30, "test": 30}
    )

    rows = {r["attribute"]: r for r in _csv(out / "class_distribution.csv")}
    for j, attribute in enumerate(config.data.attributes):
        for split, t in targets.items():
            assert int(rows[attribute][f"{split}_positives"]) == t[:, j].sum()
            assert float(rows[attribute][f"{split}_rate"]) == pytest.approx(t[:, j].mean())

    majority = summary["baselines"]["majority"]
    predicted = targets["train"].mean(axis=0) > 0.5
    assert list(majority["predicted_positive"].values()) == predicted.tolist()
    for split in ("val", "test"):
        accuracy = (targets[split] == predicted).mean(axis=0)
        assert result[f"majority/{split}/mean_accuracy"] == pytest.approx(accuracy.mean())
        for j, attribute in enumerate(config.data.attributes):
            assert majority[split][f"accuracy/{attribute}"] == pytest.approx(accuracy[j])
        assert summary["baselines"]["random"]["expected"][split]["mean_accuracy"] == 0.5


def test_celeba_model_first_batch_mean_std_and_figures(celeba_run):
    config, result = celeba_run
    out, summary = _outputs(result)
    grid = {
        (r["channels_block3"], r["dropout"]): r["params"] for r in summary["parameters"]["grid"]
    }
    assert grid == {(c, d): CELEBA_REFERENCE_PARAMS[c] for c in (192, 256) for d in (0.0, 0.2, 0.4)}
    assert summary["batch"]["x_shape"] == [32, 24, 24, 3] and summary["batch"]["x_matches"]
    assert summary["batch"]["y_shape"] == [32, 5] and summary["batch"]["y_matches"]
    _check_first_batch(summary, out, math.log(2))

    source = celeba.load_split(config, "train").source
    pixels = np.stack([source[i]["image"] for i in range(len(source))]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(summary["mean_std"]["mean"], pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(summary["mean_std"]["std"], pixels.std(axis=0), rtol=1e-9)
    assert summary["mean_std"]["config_mean"] == [0.5, 0.5, 0.5]

    for fact in summary["examples"]:
        assert fact["denormalized_max_abs_diff"] <= 1 and fact["input_shape"] == [24, 24, 3]
    width, height = _png_size(out / "examples.png")
    assert 800 <= width <= 1000 and 650 <= height <= 850
    text = (out / "analysis.md").read_text()
    assert "## M0. Baselines" in text and "per-attribute majority" in text


def test_cub200_census_flags_injected_files_and_the_splits_skip_them(tmp_path):
    config = load_config("cub200", "synthetic")
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.synthetic.update(num_classes=4, train_per_class=10, test_per_class=3)
    generated = cub200.resolve_data_dir(config)
    copy = tmp_path / "CUB_200_2011"
    shutil.copytree(generated, copy)
    dataset = cub200.read_dataset(copy)
    missing = dataset.paths[int(np.flatnonzero(dataset.is_train)[3])]
    corrupt = dataset.paths[int(np.flatnonzero(~dataset.is_train)[1])]
    (copy / "images" / missing).unlink()
    (copy / "images" / corrupt).write_bytes(b"\xff\xd8 not a jpeg")
    config.data.update(source="auto", dir=str(copy), on_corrupt="skip", image_size=16)
    config.model.update(num_blocks=1, groups=1)  # dense convs: the quickest CUB model to compile
    config.train.batch_size = 8
    config.analyze.examples = 2

    result = analyze.run(config, tmp_path, ModeArgs())
    out, summary = _outputs(result)
    problems = {(p["file"], p["problem"]) for p in summary["census"]["problems"]}
    assert problems == {(missing, "missing"), (corrupt, "corrupt")}
    assert result["census_problems"] == 2
    rows = _csv(out / "census_problems.csv")
    assert {(r["group"], r["file"]) for r in rows} == {
        ("official train (→ train, val)", missing),
        ("test", corrupt),
    }
    whole = summary["census"]["all"]
    assert (whole["files"], whole["ok"]) == (52, 50)
    # generated: greyscale, sizes vary
    assert whole["modes"]["L"] >= 1 and whole["distinct_sizes"] > 1
    # 40 official train images cut 80/20 (32/8) before loading, the missing one
    # skipped; 12 test - 1.
    assert summary["splits"]["train"] + summary["splits"]["val"] == 39
    assert summary["splits"]["test"] == 11
    counts = _csv(out / "class_distribution.csv")
    assert sum(int(r["test"]) for r in counts) == 11
    assert summary["batch"]["x_shape"] == [8, 16, 16, 3] and summary["batch"]["logits_shape"] == [
        8,
        4,
    ]
    width, height = _png_size(out / "examples.png")  # 2 examples x 3 panels
    assert 800 <= width <= 1000 and 400 <= height <= 600


def test_missing_dataset_is_named_and_leaves_no_run_folder(tmp_path):
    config = load_config("esc50")
    config.data.dir = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match=f"ESC-50 folder {tmp_path / 'nowhere'} does not exist"):
        analyze.run(config, tmp_path, ModeArgs())
    assert not (tmp_path / "logs").exists()
