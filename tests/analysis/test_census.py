"""Census of raw files in copies of the official layouts with injected problems."""

import shutil

import pytest

from jaxdl.analysis import census
from jaxdl.data import celeba
from jaxdl.data.synthetic import make_synthetic_esc50
from jaxdl.data.synthetic_images import make_synthetic_celeba, make_synthetic_tiny_imagenet
from tests.data.image_layouts import image_config, write_tiny_imagenet_parquet
from tests.helpers import tiny_esc50_config


def test_esc50_census_flags_missing_truncated_and_unreadable_clips_and_unlisted_files(tmp_path):
    generated = make_synthetic_esc50(
        tmp_path / "raw", num_classes=2, clips_per_class_per_fold=1, clip_seconds=0.2
    )
    folder = tmp_path / "ESC-50-master"
    shutil.copytree(generated, folder)
    audio = folder / "audio"
    truncated, unreadable, missing = "1-100000-A-0.wav", "4-100006-A-0.wav", "5-100009-A-1.wav"
    (audio / truncated).write_bytes((audio / truncated).read_bytes()[:1000])
    (audio / unreadable).write_bytes(b"RIFF not a wave file")
    (audio / missing).unlink()
    shutil.copy(audio / "2-100002-A-0.wav", audio / "extra.wav")
    config = tiny_esc50_config(tmp_path)
    config.data.update(source="auto", dir=str(folder))

    result = census.census(config)
    problems = {(p["group"], p["file"], p["problem"]) for p in result["problems"]}
    assert problems == {
        ("train", truncated, "corrupt"),
        ("val", unreadable, "corrupt"),
        ("test", missing, "missing"),
    }
    assert any("truncated" in p["detail"] for p in result["problems"] if p["file"] == truncated)
    assert result["unlisted"] == ["extra.wav"]
    assert {name: g["files"] for name, g in result["groups"].items()} == {
        "train": 6,
        "val": 2,
        "test": 2,
    }
    whole = result["all"]
    assert (whole["files"], whole["ok"], whole["missing"], whole["corrupt"]) == (10, 7, 1, 2)
    assert whole["sample_rates"] == {"44100": 7} and whole["channels"] == {"1": 7}
    assert whole["seconds"] == {
        "min": pytest.approx(0.2),
        "median": pytest.approx(0.2),
        "max": pytest.approx(0.2),
    }


def test_tiny_imagenet_census_is_the_same_for_the_folder_and_the_parquet_export(tmp_path):
    folder = make_synthetic_tiny_imagenet(
        tmp_path / "raw", num_classes=4, train_per_class=3, val_per_class=4
    )
    from_folder = census.census(
        image_config("tiny_imagenet", tmp_path, source="auto", dir=str(folder))
    )
    assert {name: g["files"] for name, g in from_folder["groups"].items()} == {
        "train": 12,
        "official val (→ val, test)": 16,
    }
    whole = from_folder["all"]
    assert whole["modes"] == {"RGB": 27, "L": 1}  # the generator stores one image greyscale
    assert whole["most_common_sizes"] == [[64, 64, 28]] and whole["formats"] == {"JPEG": 28}

    exported = write_tiny_imagenet_parquet(folder, tmp_path / "hf")
    from_parquet = census.census(
        image_config("tiny_imagenet", tmp_path, source="auto", dir=str(exported), format="parquet")
    )
    assert from_parquet["groups"] == from_folder["groups"] and from_parquet["problems"] == []


def test_celeba_census_per_partition_with_a_corrupt_image(tmp_path):
    folder = tmp_path / "celeba"
    shutil.copytree(make_synthetic_celeba(tmp_path / "raw", num_images=30), folder)
    jpeg = folder / celeba.IMAGE_FOLDER / "000025.jpg"  # a val image (partitions 24 / 3 / 3)
    jpeg.write_bytes(jpeg.read_bytes()[:600])
    result = census.census(image_config("celeba", tmp_path, source="auto", dir=str(folder)))
    assert {name: (g["files"], g["ok"]) for name, g in result["groups"].items()} == {
        "train": (24, 24),
        "val": (3, 2),
        "test": (3, 3),
    }
    (problem,) = result["problems"]
    assert (problem["group"], problem["file"], problem["problem"]) == (
        "val",
        "000025.jpg",
        "corrupt",
    )
    assert result["all"]["most_common_sizes"] == [[178, 218, 29]]
