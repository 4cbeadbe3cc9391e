"""CUB-200-2011: annotations, the stratified train/val split (real counts), resizing, errors."""

import dataclasses
import io
import pathlib
import tarfile

import numpy as np
import pytest

from jaxdl.data import cub200, download
from jaxdl.data.synthetic_images import make_synthetic_cub200
from jaxdl.errors import ConfigError, DataError
from tests.data.image_layouts import image_config
from tests.data.test_download import ArchiveServer

# Official train images per class: 194 classes of 30 and 6 of 29 = 5,994.
REAL_TRAIN_COUNTS = np.array([30] * 97 + [29] * 3 + [30] * 97 + [29] * 3)


@pytest.fixture
def folder(tmp_path) -> pathlib.Path:
    """4 classes of 5 train + 2 test images of varying sizes, official layout."""
    return make_synthetic_cub200(
        tmp_path / "raw", num_classes=4, train_per_class=5, test_per_class=2, seed=0
    )


def _config(tmp_path, folder, **data):
    return image_config("cub200", tmp_path, source="auto", dir=str(folder), **data)


def _records(split):
    return [split.source[i] for i in range(len(split.source))]


@pytest.mark.parametrize("seed", [42, 0])
def test_stratified_split_reproduces_4795_1199(seed):
    assert REAL_TRAIN_COUNTS.sum() == 5994
    labels = np.repeat(np.arange(200), REAL_TRAIN_COUNTS)
    labels = labels[np.random.default_rng(1).permutation(len(labels))]  # any file order
    train, val = cub200.stratified_split(labels, 0.2, seed)
    assert (len(train), len(val)) == (4795, 1199)
    assert not np.intersect1d(train, val).size and len(np.union1d(train, val)) == 5994
    per_class_val = np.bincount(labels[val], minlength=200)
    assert set(per_class_val[REAL_TRAIN_COUNTS == 30]) == {6}  # 30 -> 24 train / 6 val
    assert set(per_class_val[REAL_TRAIN_COUNTS == 29]) <= {5, 6}  # one 29-class keeps 24 train
    again = cub200.stratified_split(labels, 0.2, seed)
    np.testing.assert_array_equal(val, again[1])


def test_stratified_split_rounding_and_seed():
    labels = np.repeat(np.arange(3), [10, 7, 4])  # 21 images: ceil(4.2) = 5 val
    train, val = cub200.stratified_split(labels, 0.2, 42)
    assert (len(train), len(val)) == (16, 5)
    # 16 * n_c / 21 = (7.62, 5.33, 3.05): floors (7, 5, 3), the one left over goes to the largest
    # fractional part (class 0).
    np.testing.assert_array_equal(np.bincount(labels[train]), [8, 5, 3])
    others = {tuple(cub200.stratified_split(labels, 0.2, seed)[1]) for seed in range(5)}
    assert len(others) > 1
    with pytest.raises(ConfigError, match="data.val_fraction"):
        cub200.stratified_split(labels, 1.0, 42)


def test_splits_labels_and_resize(tmp_path, folder):
    config = _config(tmp_path, folder)
    splits = {name: cub200.load_split(config, name) for name in cub200.SPLITS}
    assert {name: len(s.source) for name, s in splits.items()} == {"train": 16, "val": 4, "test": 8}
    names = [line.split(" ", 1)[1] for line in (folder / "classes.txt").read_text().splitlines()]
    path_label = {}
    ids = dict(line.split() for line in (folder / "images.txt").read_text().splitlines())
    for line in (folder / "image_class_labels.txt").read_text().splitlines():
        image_id, class_id = line.split()
        path_label[ids[image_id]] = int(class_id) - 1
    flags = (line.split() for line in (folder / "train_test_split.txt").read_text().splitlines())
    test_paths = {ids[i] for i, flag in flags if flag == "0"}
    for name, split in splits.items():
        assert split.class_names == tuple(names)
        for record in _records(split):
            assert record["image"].shape == (32, 32, 3) and record["image"].dtype == np.uint8
            assert record["label"] == path_label[record["filename"]]
            assert (record["filename"] in test_paths) == (name == "test")
    assert np.bincount([r["label"] for r in _records(splits["val"])]).tolist() == [1, 1, 1, 1]


def test_annotation_errors(tmp_path, folder):
    (folder / "train_test_split.txt").write_text("1 1\n2 x\n")
    with pytest.raises(
        DataError, match=r"train_test_split.txt line 2: expected '<id> <is_train flag"
    ):
        cub200.read_dataset(folder)
    (folder / "train_test_split.txt").write_text("1 1\n2 0\n")
    with pytest.raises(
        DataError, match=r"train_test_split.txt has no line for image id\(s\) \[3, 4"
    ):
        cub200.read_dataset(folder)
    (folder / "image_class_labels.txt").write_text("1 9\n")
    with pytest.raises(
        DataError, match=r"image_class_labels.txt has no line for image id\(s\) \[2"
    ):
        cub200.read_dataset(folder)
    (folder / "classes.txt").unlink()
    with pytest.raises(
        DataError, match="classes.txt not found; expected the official CUB_200_2011/"
    ):
        cub200.read_dataset(folder)
    with pytest.raises(DataError, match="does not exist"):
        cub200.load_split(_config(tmp_path, tmp_path / "nowhere"), "train")


@pytest.mark.parametrize(
    "name", ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"]
)
def test_each_missing_annotation_file_is_named(tmp_path, folder, name):
    (folder / name).unlink()
    with pytest.raises(
        DataError,
        match=f"{folder / name} not found; expected the official "
        "CUB_200_2011/ with images.txt, image_class_labels.txt",
    ):
        cub200.load_split(_config(tmp_path, folder), "train")


def test_malformed_image_list_line(folder):
    path = folder / "images.txt"
    path.write_text("1 001.a/x.jpg\n2\n")
    with pytest.raises(
        DataError,
        match=r"images.txt line 2: expected '<id> <relative image path>', "
        r"got '2'",
    ):
        cub200.read_dataset(folder)


def test_empty_splits_name_what_chose_them(tmp_path, folder):
    with pytest.raises(
        DataError,
        match=r"the cub200 train split is empty; its images are chosen "
        r"by data.val_fraction=0.99 of the 20 official train images",
    ):
        cub200.load_split(_config(tmp_path, folder, val_fraction=0.99), "train")
    flags = folder / "train_test_split.txt"
    flags.write_text(flags.read_text().replace(" 0\n", " 1\n"))
    with pytest.raises(
        DataError,
        match=rf"cub200 test split is empty; .* the 0 \(test\) flags of "
        rf"{flags}",
    ):
        cub200.load_split(_config(tmp_path, folder), "test")


def test_unknown_class_id(folder):
    path = folder / "image_class_labels.txt"
    path.write_text(path.read_text().replace("1 1\n", "1 77\n", 1))
    with pytest.raises(DataError, match=r"class id\(s\) \[77\] not in classes.txt"):
        cub200.read_dataset(folder)


def test_image_absent_and_corrupt(tmp_path, folder, capsys):
    config = _config(tmp_path, folder)
    dataset = cub200.read_dataset(folder)
    first = dataset.paths[dataset.is_train.argmin()]  # the first test image
    (folder / "images" / first).write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match=f"{first}: cannot decode the image"):
        cub200.load_split(config, "test")
    config.data.on_corrupt = "skip"
    assert len(cub200.load_split(config, "test").source) == 7
    assert (
        f"cub200 test images: 1 of 8 skipped as missing or corrupt (data.on_corrupt=skip): "
        f"{folder / 'images' / first}: cannot decode" in capsys.readouterr().err
    )
    (folder / "images" / first).unlink()
    config.data.on_corrupt = "error"
    with pytest.raises(DataError, match="1 listed image file.* missing"):
        cub200.load_split(config, "test")


def test_extract_tgz_is_safe(tmp_path):
    good = tmp_path / "good.tgz"
    with tarfile.open(good, "w:gz") as packed:
        data = b"1 001.A\n"
        member = tarfile.TarInfo("CUB_200_2011/classes.txt")
        member.size = len(data)
        packed.addfile(member, io.BytesIO(data))
    unpacked = download.extract_tgz(good, tmp_path / "out")
    assert (unpacked / "CUB_200_2011" / "classes.txt").read_bytes() == data
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as packed:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 1
        packed.addfile(member, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="evil.tgz is not a valid .tgz"):
        download.extract_tgz(evil, tmp_path / "evil")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "evil").exists()
    (tmp_path / "broken.tgz").write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataError, match="broken.tgz is not a valid .tgz"):
        download.extract_tgz(tmp_path / "broken.tgz", tmp_path / "broken")


def test_download_path_unpacks_the_official_tgz(tmp_path, folder, monkeypatch):
    """Without data.dir the official .tgz is fetched (from a local HTTP server) and unpacked."""
    archive = tmp_path / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(folder, arcname="CUB_200_2011")
    payload = archive.read_bytes()
    config = image_config("cub200", tmp_path, source="auto")
    monkeypatch.setattr(
        cub200, "SOURCE", dataclasses.replace(cub200.SOURCE, expected_size=len(payload))
    )
    with ArchiveServer(payload) as server:
        config.data.url = server.url
        assert len(cub200.load_split(config, "val").source) == 4
    assert cub200.resolve_data_dir(config) == tmp_path / "cache" / "CUB-200-2011" / "CUB_200_2011"
