"""CelebA: attribute columns and -1 -> 0 targets, official partitions, layouts, errors."""

import pathlib
import shutil

import numpy as np
import pytest

from jaxdl.data import celeba
from jaxdl.data.synthetic_images import CELEBA_ATTRIBUTES, make_synthetic_celeba
from jaxdl.errors import ConfigError, DataError
from tests.data.image_layouts import image_config


@pytest.fixture
def folder(tmp_path) -> pathlib.Path:
    """30 synthetic 178x218 faces: partitions 24 / 3 / 3."""
    return make_synthetic_celeba(tmp_path / "raw", num_images=30, seed=0)


def _config(tmp_path, folder, **data):
    return image_config("celeba", tmp_path, source="auto", dir=str(folder), **data)


def _records(split):
    return [split.source[i] for i in range(len(split.source))]


def _annotations(folder):
    lines = (folder / celeba.ATTRIBUTES_FILE).read_text().splitlines()
    names = lines[1].split()
    return names, {row.split()[0]: [int(v) for v in row.split()[1:]] for row in lines[2:]}


def test_targets_are_the_chosen_columns_with_minus_one_as_zero(tmp_path, folder):
    attributes = ("Young", "Eyeglasses", "Male")
    names, values = _annotations(folder)
    assert tuple(names) == tuple(name for name, _ in CELEBA_ATTRIBUTES)
    split = celeba.load_split(_config(tmp_path, folder, attributes=attributes), "train")
    assert split.class_names == attributes
    for record in _records(split):
        assert record["label"].dtype == np.float32 and record["label"].shape == (3,)
        expected = [
            1.0 if values[record["filename"]][names.index(a)] == 1 else 0.0 for a in attributes
        ]
        np.testing.assert_array_equal(record["label"], expected)
        assert record["image"].shape == (64, 64, 3) and record["image"].dtype == np.uint8


def test_official_partitions(tmp_path, folder):
    config = _config(tmp_path, folder)
    partition = dict(
        line.split() for line in (folder / celeba.PARTITION_FILE).read_text().splitlines()
    )
    for split, code in celeba.PARTITIONS.items():
        files = [r["filename"] for r in _records(celeba.load_split(config, split))]
        assert files == sorted(name for name, p in partition.items() if p == str(code))
        assert len(files) == {"train": 24, "val": 3, "test": 3}[split]


def test_unknown_attribute_lists_the_forty_names(tmp_path, folder):
    with pytest.raises(ConfigError, match=r"unknown: \['Wearing_Cape'\]") as raised:
        celeba.load_split(
            _config(tmp_path, folder, attributes=("Smiling", "Wearing_Cape")), "train"
        )
    assert "among the 40 CelebA attributes" in str(raised.value)
    assert "'5_o_Clock_Shadow'" in str(raised.value) and "'Young'" in str(raised.value)


def test_no_directory_says_where_to_put_the_files(tmp_path):
    expected = r"no stable public download.*img_align_celeba/\*.jpg.*--config.data.dir"
    with pytest.raises(DataError, match=expected):
        celeba.load_split(image_config("celeba", tmp_path, source="auto"), "train")
    with pytest.raises(DataError, match="does not exist"):
        celeba.load_split(_config(tmp_path, tmp_path / "nowhere"), "train")


def test_google_drive_layout_with_anno_and_eval(tmp_path, folder):
    (folder / "Anno").mkdir()
    (folder / "Eval").mkdir()
    shutil.move(folder / celeba.ATTRIBUTES_FILE, folder / "Anno")
    shutil.move(folder / celeba.PARTITION_FILE, folder / "Eval")
    # data.dir may also be the parent of celeba/ (torchvision's root).
    assert len(celeba.load_split(_config(tmp_path, folder.parent), "val").source) == 3
    (folder / "Eval" / celeba.PARTITION_FILE).unlink()
    with pytest.raises(DataError, match=r"partition.txt not found in .* \(nor in Anno/ or Eval/\)"):
        celeba.load_split(_config(tmp_path, folder), "val")


def test_missing_attribute_file_is_named(tmp_path, folder):
    (folder / celeba.ATTRIBUTES_FILE).unlink()
    with pytest.raises(
        DataError,
        match=rf"list_attr_celeba.txt not found in {folder} \(nor in Anno/ "
        r"or Eval/\); expected a folder holding img_align_celeba",
    ):
        celeba.load_split(_config(tmp_path, folder), "train")


def test_partition_without_a_split_is_an_empty_split_error(tmp_path, folder):
    path = folder / celeba.PARTITION_FILE
    path.write_text(path.read_text().replace(" 1\n", " 0\n"))
    with pytest.raises(
        DataError,
        match=rf"the celeba val split is empty; its images are chosen by "
        rf"the 1 codes of {path}",
    ):
        celeba.load_split(_config(tmp_path, folder), "val")


def test_malformed_annotation_files(folder):
    path = folder / celeba.ATTRIBUTES_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + [lines[4].rsplit(" ", 1)[0]] + lines[5:]))
    with pytest.raises(DataError, match="requires 41 columns but 40 were found"):
        celeba.read_attributes(path)
    path.write_text("\n".join(lines[:4] + [lines[4][:-2] + " 0"] + lines[5:]))
    with pytest.raises(DataError, match="line 5: attribute values must be -1 or 1"):
        celeba.read_attributes(path)
    path.write_text("\n".join(["31"] + lines[1:]))
    with pytest.raises(DataError, match="line 1 announces 31 images, 30 are listed"):
        celeba.read_attributes(path)
    partition = folder / celeba.PARTITION_FILE
    partition.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(DataError, match="line 2: partition must be 0, 1 or 2"):
        celeba.read_partition(partition, ["000001.jpg"])
    partition.write_text("000001.jpg 0\n000002.jpg 1 extra\n")
    with pytest.raises(DataError, match=rf"{partition}: .*expected '<file> <0\|1\|2>' per line"):
        celeba.read_partition(partition, ["000001.jpg", "000002.jpg"])
    partition.write_text("000001.jpg 0\n")
    with pytest.raises(DataError, match=r"no partition for 1 image\(s\).*000002.jpg"):
        celeba.read_partition(partition, ["000001.jpg", "000002.jpg"])


def test_corrupt_and_missing_images(tmp_path, folder, capsys):
    config = _config(tmp_path, folder)
    (folder / celeba.IMAGE_FOLDER / "000030.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="000030.jpg: cannot decode the image"):
        celeba.load_split(config, "test")
    config.data.on_corrupt = "skip"
    kept = [r["filename"] for r in _records(celeba.load_split(config, "test"))]
    assert kept == ["000028.jpg", "000029.jpg"]
    assert "celeba test images: 1 of 3 skipped" in capsys.readouterr().err
    (folder / celeba.IMAGE_FOLDER / "000029.jpg").unlink()
    assert len(celeba.load_split(config, "test").source) == 1
    config.data.on_corrupt = "error"
    with pytest.raises(DataError, match="missing, e.g. .*000029.jpg"):
        celeba.load_split(config, "test")


def test_synthetic_source_and_attribute_rates(tmp_path):
    config = image_config("celeba", tmp_path, synthetic={"num_images": 400, "seed": 1})
    train = celeba.load_split(config, "train")
    rates = np.mean([r["label"] for r in _records(train)], axis=0)
    expected = dict(CELEBA_ATTRIBUTES)
    # 320 draws: a rate's standard error is <= 0.028.
    np.testing.assert_allclose(rates, [expected[a] for a in train.class_names], atol=0.1)
