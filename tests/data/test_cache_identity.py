"""Every dataset cache is keyed by content: the source files' bytes, the annotations and the
generator settings, never by names, sizes or times; and two processes build one cache once."""

import csv
import io
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs.esc50 import get_config
from jaxdl.data import celeba, esc50, tiny_imagenet
from jaxdl.data.synthetic import make_synthetic_esc50
from jaxdl.data.synthetic_images import make_synthetic_tiny_imagenet
from tests.data.image_layouts import image_config
from tests.helpers import REPO

BUILT_FOLD_4 = "building the log-mel cache for fold 4 (6 clips)"


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """3 classes x 2 clips x 5 folds of 0.5 s (val = fold 4: 6 clips)."""
    return make_synthetic_esc50(
        tmp_path_factory.mktemp("data"), num_classes=3, clips_per_class_per_fold=2, clip_seconds=0.5
    )


def _config(folder: Path, cache: Path):
    config = get_config()
    config.data.update(dir=str(folder), cache_dir=str(cache))
    return config


def _fold_entries(cache: Path, fold: int) -> list[str]:
    return sorted(path.name for path in (cache / "tfds" / "esc50_log_mel").glob(f"fold{fold}_*"))


def _by_name(split) -> dict[str, dict]:
    return {record["filename"]: record for record in split.source}


def _copy_keeping_times(source: Path, target: Path) -> Path:
    return Path(shutil.copytree(source, target))  # copy2: times kept


def _reverse_samples(wav: Path) -> None:
    """The clip's samples in reverse order: same header, byte size and modification time."""
    before = wav.stat()
    with wave.open(str(wav)) as reader:
        params, frames = reader.getparams(), reader.readframes(reader.getnframes())
    with wave.open(str(wav), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(np.frombuffer(frames, "<i2")[::-1].tobytes())
    os.utime(wav, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (wav.stat().st_size, wav.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_other_samples_under_the_same_names_sizes_and_times_are_recomputed(
    layout, tmp_path, capsys
):
    cache = tmp_path / "cache"
    original = _by_name(esc50.load_split(_config(layout, cache), "val"))
    edited_copy = _copy_keeping_times(layout, tmp_path / "ESC-50-master")
    for wav in (edited_copy / "audio").glob("4-*.wav"):
        _reverse_samples(wav)
    capsys.readouterr()
    edited = _by_name(esc50.load_split(_config(edited_copy, cache), "val"))
    assert BUILT_FOLD_4 in capsys.readouterr().out
    assert len(_fold_entries(cache, 4)) == 2
    assert edited.keys() == original.keys()
    for name, record in edited.items():
        assert not np.allclose(record["features"], original[name]["features"], atol=1e-3), name


def test_unchanged_bytes_are_not_recomputed_wherever_they_are(layout, tmp_path, capsys):
    cache = tmp_path / "cache"
    esc50.load_split(_config(layout, cache), "val")
    written = {path: path.stat().st_mtime_ns for path in (cache / "tfds").rglob("*")}
    capsys.readouterr()
    esc50.load_split(_config(layout, cache), "val")
    identical_copy = _copy_keeping_times(layout, tmp_path / "elsewhere")
    os.utime(next((identical_copy / "audio").glob("4-*.wav")), ns=(0, 0))  # same bytes
    esc50.load_split(_config(identical_copy, cache), "val")
    assert "building" not in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in (cache / "tfds").rglob("*")} == written


def test_another_synthetic_seed_generates_other_clips_and_features(tmp_path, capsys):
    config = get_config("synthetic")
    config.data.cache_dir = str(tmp_path)
    config.data.synthetic.update(num_classes=3, clips_per_class_per_fold=2, clip_seconds=0.5)
    folders, splits = [], []
    for seed in (0, 1):
        config.data.synthetic.seed = seed
        folders.append(esc50.resolve_data_dir(config))
        splits.append(_by_name(esc50.load_split(config, "val")))
    assert folders[0] != folders[1]
    wav = min(splits[0])
    assert (folders[0] / "audio" / wav).read_bytes() != (folders[1] / "audio" / wav).read_bytes()
    assert capsys.readouterr().out.count(BUILT_FOLD_4) == 2
    assert len(_fold_entries(tmp_path, 4)) == 2
    assert not np.allclose(splits[0][wav]["features"], splits[1][wav]["features"], atol=1e-3)


def test_an_edited_category_is_a_new_cache(layout, tmp_path):
    cache = tmp_path / "cache"
    original = _by_name(esc50.load_split(_config(layout, cache), "val"))
    edited_copy = _copy_keeping_times(layout, tmp_path / "ESC-50-master")
    meta = edited_copy / esc50.META_CSV
    with open(meta, newline="") as listing:
        rows = list(csv.DictReader(listing))
    first, other = (
        next(row for row in rows if row["fold"] == "4" and row["target"] == target)
        for target in ("0", "1")
    )
    first["category"], other["category"] = other["category"], first["category"]  # same classes
    with open(meta, "w", newline="") as listing:
        writer = csv.DictWriter(listing, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    edited = _by_name(esc50.load_split(_config(edited_copy, cache), "val"))
    assert len(_fold_entries(cache, 4)) == 2
    assert edited[first["filename"]]["label"] == original[other["filename"]]["label"]
    assert edited[first["filename"]]["label"] != original[first["filename"]]["label"]


def _image_entries(cache: Path, prefix: str) -> list[str]:
    return sorted(path.name for path in (cache / "tfds" / "image_split").glob(f"{prefix}_*"))


def _same_size_other_pixels(path: Path) -> None:
    """A flat grey JPEG padded after its end marker to the file's byte size, same time."""
    before = path.stat()
    buffer = io.BytesIO()
    Image.new("RGB", Image.open(path).size, (128, 128, 128)).save(buffer, "JPEG")
    encoded = buffer.getvalue()
    assert len(encoded) < before.st_size
    path.write_bytes(encoded + bytes(before.st_size - len(encoded)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_same_size_jpeg_with_other_pixels_is_recomputed(tmp_path):
    folder = make_synthetic_tiny_imagenet(
        tmp_path / "raw", num_classes=2, train_per_class=2, val_per_class=3
    )
    config = image_config("tiny_imagenet", tmp_path, source="auto", dir=str(folder))
    first = tiny_imagenet.load_split(config, "val")
    _same_size_other_pixels(folder / "val" / "images" / first.source[0]["filename"])
    second = tiny_imagenet.load_split(config, "val")
    assert len(_image_entries(tmp_path / "cache", "tiny_imagenet_val")) == 2
    assert second.source[0]["filename"] == first.source[0]["filename"]
    assert not np.array_equal(second.source[0]["image"], first.source[0]["image"])
    np.testing.assert_array_equal(second.source[1]["image"], first.source[1]["image"])


def test_an_edited_celeba_attribute_is_a_new_cache(tmp_path):
    generated = image_config("celeba", tmp_path)
    folder = _copy_keeping_times(celeba.resolve_data_dir(generated), tmp_path / "celeba")
    config = image_config("celeba", tmp_path, source="auto", dir=str(folder))
    first = celeba.load_split(config, "train")
    attributes = folder / celeba.ATTRIBUTES_FILE
    lines = attributes.read_text().splitlines()
    names = lines[1].split()
    row = lines[2].split()
    column = 1 + names.index("Smiling")
    row[column] = "1" if row[column] == "-1" else "-1"
    attributes.write_text("\n".join([*lines[:2], " ".join(row), *lines[3:]]) + "\n")
    second = celeba.load_split(config, "train")
    assert len(_image_entries(tmp_path / "cache", "celeba_train")) == 2
    smiling = config.data.attributes.index("Smiling")
    assert second.source[0]["label"][smiling] == 1 - first.source[0]["label"][smiling]


_BUILD_VAL = """
import hashlib, pathlib, sys, time
from configs.esc50 import get_config
from jaxdl.data import esc50
config = get_config("synthetic")
config.data.cache_dir = sys.argv[1]
config.data.synthetic.update(num_classes=3, clips_per_class_per_fold=4, clip_seconds=0.5)
start = pathlib.Path(sys.argv[2])
(start / sys.argv[3]).touch()
while len(list(start.iterdir())) < 2:  # both processes imported: go together
    time.sleep(0.01)
split = esc50.load_split(config, "val")
digest = hashlib.sha256(b"".join(record["features"].tobytes() for record in split.source))
print("features", len(split.source), digest.hexdigest())
"""


def test_two_processes_generating_and_building_one_cache_both_succeed(tmp_path):
    cache, start = tmp_path / "cache", tmp_path / "start"
    start.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_VAL, str(cache), str(start), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    results = [(process.wait(timeout=300), *process.communicate()) for process in processes]
    for code, _, err in results:
        assert code == 0, err[-2000:]
    features = [
        next(line for line in out.splitlines() if line.startswith("features"))
        for _, out, _ in results
    ]
    assert features[0] == features[1] and features[0].startswith("features 12 ")
    outputs = "".join(out for _, out, _ in results)
    assert outputs.count("Generating synthetic ESC-50") == 1
    assert outputs.count("building the log-mel cache for fold 4 (12 clips)") == 1
    assert "Downloading and preparing" not in outputs
    assert len(_fold_entries(cache, 4)) == 1
    leftovers = [
        path.name
        for path in cache.rglob("*")
        if "incomplete" in path.name.lower() or ".tmp-" in path.name
    ]
    assert leftovers == []
