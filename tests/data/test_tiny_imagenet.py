"""Tiny ImageNet: official folder and parquet layouts, label order, per-class val/test split,
errors."""

import dataclasses
import pathlib
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxdl.data import image_dataset, tiny_imagenet
from jaxdl.data.cache import SKIPPED_LIST
from jaxdl.data.synthetic_images import make_synthetic_tiny_imagenet
from jaxdl.errors import ConfigError, DataError
from tests.data.image_layouts import image_config, write_tiny_imagenet_parquet
from tests.data.test_download import ArchiveServer


@pytest.fixture
def folder(tmp_path) -> pathlib.Path:
    """4 classes, 3 train and 4 val images each, official layout (one greyscale JPEG)."""
    return make_synthetic_tiny_imagenet(
        tmp_path / "raw", num_classes=4, train_per_class=3, val_per_class=4, seed=0
    )


def _config(tmp_path, folder, **data):
    return image_config("tiny_imagenet", tmp_path, source="auto", dir=str(folder), **data)


def _records(split):
    return [split.source[i] for i in range(len(split.source))]


def test_val_test_split_at_real_scale():
    labels = np.repeat(np.arange(200), 50)  # the official validation set: 50 per class
    names = [f"n{i:08d}" for i in range(200)]
    chosen = tiny_imagenet.val_test_indices(
        labels, names, test_per_class=10, val_per_class=40, seed=42
    )
    assert len(chosen["test"]) == 2000 and len(chosen["val"]) == 8000
    assert not np.intersect1d(chosen["test"], chosen["val"]).size
    np.testing.assert_array_equal(np.bincount(labels[chosen["test"]]), np.full(200, 10))
    np.testing.assert_array_equal(np.bincount(labels[chosen["val"]]), np.full(200, 40))
    again = tiny_imagenet.val_test_indices(
        labels, names, test_per_class=10, val_per_class=40, seed=42
    )
    other = tiny_imagenet.val_test_indices(
        labels, names, test_per_class=10, val_per_class=40, seed=0
    )
    np.testing.assert_array_equal(chosen["test"], again["test"])
    assert not np.array_equal(chosen["test"], other["test"])
    # The first class's test images are the first 10 of default_rng(42).permutation(50).
    first_class = np.random.default_rng(42).permutation(50)
    np.testing.assert_array_equal(chosen["test"][:10], np.sort(first_class[:10]))


def test_too_few_val_images_per_class(tmp_path, folder):
    with pytest.raises(DataError, match="has 4 validation images, fewer than .* = 5"):
        tiny_imagenet.load_split(
            _config(tmp_path, folder, test_per_class=2, val_per_class=3), "val"
        )


def test_empty_split_names_the_key(tmp_path, folder):
    with pytest.raises(
        DataError,
        match="the tiny_imagenet val split is empty; its images are "
        "chosen by data.val_per_class=0 images per class",
    ):
        tiny_imagenet.load_split(_config(tmp_path, folder, val_per_class=0), "val")


def test_splits_records_and_sorted_wnid_labels(tmp_path, folder):
    config = _config(tmp_path, folder)
    wnids = tuple(sorted((folder / "wnids.txt").read_text().split()))
    splits = {name: tiny_imagenet.load_split(config, name) for name in tiny_imagenet.SPLITS}
    assert {name: len(s.source) for name, s in splits.items()} == {"train": 12, "val": 8, "test": 4}
    annotation_lines = (folder / "val" / "val_annotations.txt").read_text().splitlines()
    annotations = dict(line.split("\t")[:2] for line in annotation_lines)
    for split in splits.values():
        assert split.class_names == wnids
        for record in _records(split):
            assert record["image"].shape == (64, 64, 3) and record["image"].dtype == np.uint8
            assert isinstance(record["label"], int) and isinstance(record["filename"], str)
            wnid = annotations.get(record["filename"]) or record["filename"].split("_")[0]
            assert wnids[record["label"]] == wnid
    val_files = {r["filename"] for r in _records(splits["val"])}
    assert not val_files & {r["filename"] for r in _records(splits["test"])}
    assert np.bincount([r["label"] for r in _records(splits["test"])]).tolist() == [1, 1, 1, 1]
    assert tiny_imagenet.class_words(folder, wnids)[0].startswith("synthetic class")


def test_greyscale_jpeg_becomes_rgb(tmp_path, folder):
    records = _records(tiny_imagenet.load_split(_config(tmp_path, folder), "train"))
    grey = [r for r in records if (r["image"][..., 0] == r["image"][..., 2]).all()]
    assert len(grey) == 1  # the generator stores its 8th image greyscale
    assert grey[0]["image"].shape == (64, 64, 3)


def test_parquet_export_gives_the_same_records(tmp_path, folder):
    config = _config(tmp_path, folder)
    shuffled_order = sorted((folder / "wnids.txt").read_text().split(), reverse=True)
    exported = write_tiny_imagenet_parquet(folder, tmp_path / "hf", wnid_order=shuffled_order)
    from_parquet = _config(tmp_path, exported)
    for split in tiny_imagenet.SPLITS:
        a = tiny_imagenet.load_split(config, split)
        b = tiny_imagenet.load_split(from_parquet, split)
        assert a.class_names == b.class_names
        for x, y in zip(_records(a), _records(b), strict=True):
            assert x["filename"] == y["filename"] and x["label"] == y["label"]
            np.testing.assert_array_equal(x["image"], y["image"])


def test_parquet_label_names(tmp_path, folder):
    exported = write_tiny_imagenet_parquet(folder, tmp_path / "hf", hf_metadata=False)
    with pytest.raises(DataError, match="no Hugging Face label names and no wnids.txt"):
        tiny_imagenet.read_dataset(exported)
    (exported / "wnids.txt").write_text((folder / "wnids.txt").read_text())
    assert tiny_imagenet.read_dataset(exported).wnids == tiny_imagenet.read_folder(folder).wnids


def test_parquet_with_wrong_columns_or_corrupt_image(tmp_path, folder):
    exported = write_tiny_imagenet_parquet(folder, tmp_path / "hf")
    valid = exported / "data" / "valid-00000-of-00001.parquet"
    table = pq.read_table(valid)
    pq.write_table(table.rename_columns(["img", "label"]), valid)
    with pytest.raises(
        DataError, match=f"{valid}: not a readable parquet file with columns image and label"
    ):
        tiny_imagenet.read_dataset(exported)
    images = table.column("image").to_pylist()
    images[0]["bytes"] = images[0]["bytes"][:200]  # truncated JPEG
    pq.write_table(
        table.set_column(0, "image", pa.array(images, table.schema.field("image").type)), valid
    )
    config = _config(tmp_path, exported, val_per_class=3)  # val + test: every image
    errors = []  # the image is in the val or the test split
    for split in ("val", "test"):
        try:
            tiny_imagenet.load_split(config, split)
        except DataError as err:
            errors.append(str(err))
    assert len(errors) == 1
    assert f"{images[0]['path']}: cannot decode the image" in errors[0]


def test_format_choice(tmp_path, folder):
    with pytest.raises(DataError, match=r"no train-\*.parquet"):
        tiny_imagenet.read_dataset(folder, "parquet")
    with pytest.raises(ConfigError, match="data.format='zip'"):
        tiny_imagenet.read_dataset(folder, "zip")
    with pytest.raises(DataError, match="neither wnids.txt nor train-"):
        tiny_imagenet.read_dataset(tmp_path)


def test_cache_is_reused_and_source_pickles(tmp_path, folder, monkeypatch):
    config = _config(tmp_path, folder)
    first = tiny_imagenet.load_split(config, "val")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached split was rebuilt")

    monkeypatch.setattr(image_dataset._ImageSplitBuilder, "download_and_prepare", no_rebuild)
    second = tiny_imagenet.load_split(config, "val")
    np.testing.assert_array_equal(first.source[0]["image"], second.source[0]["image"])
    restored = pickle.loads(pickle.dumps(second.source))
    assert restored[1]["filename"] == second.source[1]["filename"]
    # A changed file is a new cache key, so it is rebuilt.
    (folder / "val" / "images" / first.source[0]["filename"]).write_bytes(
        (folder / "val" / "images" / first.source[1]["filename"]).read_bytes()
    )
    with pytest.raises(AssertionError, match="rebuilt"):
        tiny_imagenet.load_split(config, "val")


def test_missing_folder_and_annotation_files(tmp_path, folder):
    with pytest.raises(DataError, match="does not exist; expected the official tiny-imagenet-200/"):
        tiny_imagenet.load_split(_config(tmp_path, tmp_path / "nowhere"), "train")
    (folder / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt not found"):
        tiny_imagenet.load_split(_config(tmp_path, folder), "val")
    (folder / "wnids.txt").unlink()
    with pytest.raises(DataError, match="wnids.txt not found"):
        tiny_imagenet.read_folder(folder)


def test_bad_annotation_lines(tmp_path, folder):
    path = folder / "val" / "val_annotations.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["val_x.JPEG\tn00000001\t0\t0\t63"] + lines[2:]))
    with pytest.raises(DataError, match=r"val_annotations.txt line 3: expected 'file<TAB>wnid"):
        tiny_imagenet.read_folder(folder)
    path.write_text("\n".join(lines[:2] + ["val_x.JPEG\tn99999999x\t0\t0\t63\t63"] + lines[2:]))
    with pytest.raises(DataError, match="line 3: wnid 'n99999999x' is not in wnids.txt"):
        tiny_imagenet.read_folder(folder)
    path.write_text("\n".join(lines))
    wnids = folder / "wnids.txt"
    first = wnids.read_text().split()[0]
    wnids.write_text(wnids.read_text() + f"{first}\n")
    with pytest.raises(
        DataError, match=f"wnids.txt: expected one distinct wnid per line, got \\['{first}'\\]"
    ):
        tiny_imagenet.read_folder(folder)
    wnids.write_text(wnids.read_text().replace(f"{first}\n", "", 1))
    shutil.rmtree(folder / "train" / sorted((folder / "wnids.txt").read_text().split())[0])
    with pytest.raises(DataError, match="images not found: every wnid"):
        tiny_imagenet.read_folder(folder)


def test_listed_image_absent_and_corrupt(tmp_path, folder, capsys):
    config = _config(tmp_path, folder)
    test_files = [r["filename"] for r in _records(tiny_imagenet.load_split(config, "test"))]
    (folder / "val" / "images" / test_files[0]).unlink()
    with pytest.raises(DataError, match=f"1 listed image file.* missing.*{test_files[0]}"):
        tiny_imagenet.load_split(config, "test")
    broken = folder / "val" / "images" / test_files[1]
    broken.write_bytes(broken.read_bytes()[:300])
    config.data.on_corrupt = "skip"
    for _ in range(2):  # built, then from the cache: reported both times
        skipped = tiny_imagenet.load_split(config, "test")
        assert len(skipped.source) == 2
        warning = capsys.readouterr().err
        assert "tiny_imagenet test images: 2 of 4 skipped as missing or corrupt" in warning
        assert f"{test_files[0]}: image file is missing" in warning
        assert f"{test_files[1]}: cannot decode the image" in warning
    assert {r["filename"] for r in _records(skipped)} == set(test_files[2:])
    assert len(next((tmp_path / "cache").rglob(SKIPPED_LIST)).read_text().splitlines()) == 2
    (folder / "val" / "images" / test_files[0]).write_bytes(
        broken.read_bytes()
    )  # back, but corrupt too
    config.data.on_corrupt = "error"
    with pytest.raises(
        DataError, match=f"{test_files[0]}: cannot decode the image .*on_corrupt=skip"
    ):
        tiny_imagenet.load_split(config, "test")


def test_download_path_unpacks_the_official_zip(tmp_path, folder, monkeypatch):
    """Without data.dir the official archive is fetched (from a local HTTP server) and unzipped."""
    archive = shutil.make_archive(
        str(tmp_path / "tiny-imagenet-200"), "zip", folder.parent, folder.name
    )
    payload = pathlib.Path(archive).read_bytes()
    config = image_config("tiny_imagenet", tmp_path, source="auto")
    monkeypatch.setattr(
        tiny_imagenet,
        "SOURCE",
        dataclasses.replace(tiny_imagenet.SOURCE, expected_size=len(payload)),
    )
    with ArchiveServer(payload) as server:
        config.data.url = server.url
        assert len(tiny_imagenet.load_split(config, "test").source) == 4
    unpacked = tmp_path / "cache" / "Tiny-ImageNet" / "tiny-imagenet-200"
    assert tiny_imagenet.resolve_data_dir(config) == unpacked
