"""Tiny ImageNet (200 classes, 64x64 RGB): where the data is, its two on-disk formats, and the
splits.

Protocol as the reference (docs/reference-projects.md#tiny-imagenet): train = the official train
split (500 per class); the official validation split (50 per class) is split per class with a seeded
shuffle: the first `data.test_per_class` (10) images of each class go to test, the next
`data.val_per_class` (40) to val. Labels 0..199 = the wnids sorted alphabetically, for both formats.

Formats (`data.format`, "auto" detects them):
- "folder": the official archive's `tiny-imagenet-200/` (wnids.txt, words.txt,
  train/<wnid>/images/*.JPEG, val/images/*.JPEG + val/val_annotations.txt);
- "parquet": the Hugging Face export the reference used (zh-plus/tiny-imagenet: train-*.parquet,
  valid-*.parquet, columns image = {bytes, path} and label = index into the dataset's class names,
  read from the files' Hugging Face metadata, else from a wnids.txt beside them).

Images are decoded (greyscale → RGB), resized to `data.image_size` (64: a no-op on the real data)
and cached once (image_dataset.py). Every split lists its images in (label, file name) order.
"""

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ml_collections
import numpy as np

from jaxdl.data.content import sha256_bytes
from jaxdl.data.image_dataset import EncodedImages, ImageFiles, load_image_split
from jaxdl.data.locate import DatasetSource, dataset_dir
from jaxdl.data.split import Split
from jaxdl.data.synthetic_images import make_synthetic_tiny_imagenet
from jaxdl.errors import ConfigError, DataError, DependencyError

if TYPE_CHECKING:
    import pyarrow as pa

TASK = "tiny_imagenet"
SPLITS = ("train", "val", "test")
FORMATS = ("auto", "folder", "parquet")
ARCHIVE_BYTES = 248_100_043  # no published SHA-256 (its MD5 is 90528d7ca1a48142e341f4ef8d21d0de)
ARCHIVE_FOLDER = "tiny-imagenet-200"
_LAYOUT_HINT = (
    f"the official {ARCHIVE_FOLDER}/ (wnids.txt, train/<wnid>/images/*.JPEG, "
    "val/images/*.JPEG, val/val_annotations.txt) or the Hugging Face parquet export "
    "(train-*.parquet, valid-*.parquet)"
)


@dataclasses.dataclass(frozen=True)
class Listing:
    """A split's images before decoding, in (label, file name) order."""

    images: EncodedImages
    filenames: list[str]  # file base names, e.g. "n01443537_0.JPEG", "val_0.JPEG"
    labels: np.ndarray  # int64 (N,), index into the sorted wnids


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The dataset as found on disk: sorted wnids, official train and official val."""

    wnids: tuple[str, ...]
    train: Listing
    official_val: Listing


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
    """`split` ("train", "val" or "test") as records {"image": uint8 (64, 64, 3), "label": int,
    "filename": str}; class_names = the sorted wnids.

    Reads data.{source, dir, format, cache_dir, image_size, on_corrupt, split_seed,
    test_per_class, val_per_class, synthetic}. Layout problems raise before any image is decoded.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dataset = read_dataset(resolve_data_dir(config), config.data.format)
    if split == "train":
        listing, selected_by = dataset.train, "the official train split"
    else:
        key = f"data.{split}_per_class"
        selected_by = f"{key}={config.data[f'{split}_per_class']} images per class"
        chosen = val_test_indices(
            dataset.official_val.labels,
            dataset.wnids,
            test_per_class=config.data.test_per_class,
            val_per_class=config.data.val_per_class,
            seed=config.data.split_seed,
        )[split]
        listing = _subset(dataset.official_val, chosen)
    return load_image_split(
        config,
        task=TASK,
        split=split,
        images=listing.images,
        filenames=listing.filenames,
        labels=listing.labels,
        class_names=dataset.wnids,
        selected_by=selected_by,
    )


def val_test_indices(
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    test_per_class: int,
    val_per_class: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Per-class split of the official validation set: {"test": indices, "val": indices}, sorted.

    `labels`: int (N,) in (label, file name) order, indexing `class_names`. One
    `np.random.default_rng(seed)` draws a `permutation` per class, classes in label order; the
    first test_per_class permuted images go to test, the next val_per_class to val, the rest are
    unused. Same protocol as the reference's
    per-class `torch.randperm(generator=manual_seed(42))`, but numpy's random stream, so not the
    same images.
    """
    for key, value in (
        ("data.test_per_class", test_per_class),
        ("data.val_per_class", val_per_class),
    ):
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key}={value!r}: expected a non-negative integer")
    rng = np.random.default_rng(seed)
    test, val = [], []
    for label, name in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        if len(members) < test_per_class + val_per_class:
            raise DataError(
                f"class {name} has {len(members)} validation images, fewer than "
                f"data.test_per_class + data.val_per_class = {test_per_class + val_per_class}"
            )
        shuffled = members[rng.permutation(len(members))]
        test.append(shuffled[:test_per_class])
        val.append(shuffled[test_per_class : test_per_class + val_per_class])
    return {
        "test": np.sort(np.concatenate(test)).astype(np.int64),
        "val": np.sort(np.concatenate(val)).astype(np.int64),
    }


SOURCE = DatasetSource(
    title="Tiny ImageNet",
    marker="wnids.txt",
    archive_folder=ARCHIVE_FOLDER,
    make_synthetic=make_synthetic_tiny_imagenet,
    archive_name=f"{ARCHIVE_FOLDER}.zip",
    expected_size=ARCHIVE_BYTES,
)


def resolve_data_dir(config: ml_collections.ConfigDict) -> Path:
    """The dataset folder: generated (data.source=synthetic), data.dir, or downloaded."""
    return dataset_dir(config, SOURCE)


def read_dataset(root: Path, data_format: str = "auto") -> Dataset:
    """The dataset at `root` in `data_format` ("auto": parquet if train-*.parquet files and no
    train/ folder are there, else the official folder)."""
    if data_format not in FORMATS:
        raise ConfigError(f"data.format={data_format!r}; allowed: {FORMATS}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"Tiny ImageNet folder {root} does not exist; expected {_LAYOUT_HINT}, "
            "set with --config.data.dir"
        )
    if data_format == "auto":
        if _parquet_files(root, "train") and not (root / "train").is_dir():
            data_format = "parquet"
        elif (root / "wnids.txt").is_file():
            data_format = "folder"
        else:
            raise DataError(
                f"{root} holds neither wnids.txt nor train-*.parquet; expected {_LAYOUT_HINT}"
            )
    return read_folder(root) if data_format == "folder" else read_parquet(root)


def read_folder(root: Path) -> Dataset:
    """The official layout, validated: every wnid's train folder, every val annotation line."""
    wnids = read_wnids(root / "wnids.txt")
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    train_names, train_labels = [], []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(
                f"{folder} not found: every wnid in {root / 'wnids.txt'} needs "
                f"train/<wnid>/images/*.JPEG"
            )
        names = sorted(
            path.name for path in folder.iterdir() if path.suffix.lower() in (".jpeg", ".jpg")
        )
        if not names:
            raise DataError(f"{folder} holds no .JPEG image")
        train_names += names
        train_labels += [label] * len(names)
    train = Listing(
        ImageFiles(
            root / "train",
            [
                f"{wnids[label]}/images/{name}"
                for name, label in zip(train_names, train_labels, strict=True)
            ],
        ),
        train_names,
        np.asarray(train_labels, np.int64),
    )
    val_names, val_labels = _read_val_annotations(root / "val" / "val_annotations.txt", label_of)
    order = sorted(range(len(val_names)), key=lambda i: (val_labels[i], val_names[i]))
    val_names = [val_names[i] for i in order]
    official_val = Listing(
        ImageFiles(root / "val" / "images", val_names),
        val_names,
        np.asarray([val_labels[i] for i in order], np.int64),
    )
    return Dataset(wnids, train, official_val)


def read_wnids(path: Path) -> tuple[str, ...]:
    """The class ids of wnids.txt (one per line), sorted: the label order."""
    if not path.is_file():
        raise DataError(f"{path} not found; expected {_LAYOUT_HINT}")
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wnids:
        raise DataError(f"{path} lists no wnid")
    bad = [wnid for wnid in wnids if not re.fullmatch(r"\S+", wnid)]
    duplicated = sorted({wnid for wnid in wnids if wnids.count(wnid) > 1})
    if bad or duplicated:
        raise DataError(
            f"{path}: expected one distinct wnid per line, got {bad[:3] or duplicated[:3]}"
        )
    return tuple(sorted(wnids))


def class_words(root: Path, wnids: tuple[str, ...]) -> tuple[str, ...]:
    """Human-readable names of `wnids` from words.txt ("wnid<TAB>names"), for reports; the wnid
    itself where words.txt is absent or lacks it."""
    path = Path(root) / "words.txt"
    words = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            wnid, _, names = line.partition("\t")
            words[wnid.strip()] = names.strip()
    return tuple(words.get(wnid) or wnid for wnid in wnids)


def _read_val_annotations(path: Path, label_of: dict[str, int]) -> tuple[list[str], list[int]]:
    """(file names, labels) from val_annotations.txt: file, wnid and 4 box ints, tab-separated."""
    if not path.is_file():
        raise DataError(f"{path} not found; expected {_LAYOUT_HINT}")
    names, labels, seen = [], [], set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 6 or not all(re.fullmatch(r"-?\d+", f.strip()) for f in fields[2:]):
            raise DataError(
                f"{path} line {number}: expected 'file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1"
                f"<TAB>y1' with integer box corners, got {line!r}"
            )
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in label_of:
            raise DataError(f"{path} line {number}: wnid {wnid!r} is not in wnids.txt")
        if name in seen:
            raise DataError(f"{path} line {number}: {name} is listed twice")
        seen.add(name)
        names.append(name)
        labels.append(label_of[wnid])
    if not names:
        raise DataError(f"{path} lists no image")
    return names, labels


class ParquetImages:
    """Encoded images from the parquet `image.bytes` field, in listing order."""

    def __init__(self, encoded: "pa.Array", file_digests: list[str]):
        self._bytes, self._file_digests = encoded, file_digests

    def __len__(self) -> int:
        return len(self._bytes)

    def read(self, index: int) -> bytes:
        return self._bytes[index].as_py() or b""

    def take(self, indices: np.ndarray) -> "ParquetImages":
        return ParquetImages(self._bytes.take(np.asarray(indices, np.int64)), self._file_digests)

    def identity(self) -> list[str]:
        """SHA-256 of each parquet file the images come from (of the very bytes they were read
        from)."""
        return self._file_digests

    def missing(self) -> list[str]:
        return []


def read_parquet(root: Path) -> Dataset:
    """The Hugging Face export: train-*.parquet and valid-*.parquet in `root` or `root`/data."""
    _require_pyarrow(root)
    train_files, val_files = _parquet_files(root, "train"), _parquet_files(root, "valid")
    for prefix, files in (("train", train_files), ("valid", val_files)):
        if not files:
            raise DataError(
                f"no {prefix}-*.parquet in {root} or {root / 'data'}; expected {_LAYOUT_HINT}"
            )
    names = _parquet_class_names(train_files[0], root)
    wnids = tuple(sorted(names))
    to_sorted = np.asarray([wnids.index(name) for name in names], np.int64)
    return Dataset(
        wnids, _parquet_listing(train_files, to_sorted), _parquet_listing(val_files, to_sorted)
    )


def _require_pyarrow(root: Path) -> None:
    """pyarrow reads the parquet export and nothing else: it is the `parquet` extra, so its absence
    is said here, with the command that installs it, not at import."""
    try:
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise DependencyError(
            f"{root} holds the Tiny ImageNet parquet export, which needs pyarrow: it is not "
            f'installed ({err}); pip install "jaxdl[parquet]", or use the official folder '
            "layout (tiny-imagenet-200/)"
        ) from err


def _parquet_files(root: Path, prefix: str) -> list[Path]:
    for folder in (root, root / "data"):
        files = sorted(folder.glob(f"{prefix}-*.parquet"))
        if files:
            return files
    return []


def _parquet_class_names(path: Path, root: Path) -> list[str]:
    """Class names in the export's label order: Hugging Face schema metadata, else wnids.txt."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    if b"huggingface" in metadata:
        try:
            features = json.loads(metadata[b"huggingface"])["info"]["features"]
            return list(features["label"]["names"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: unreadable Hugging Face metadata for the label names ({err})"
            ) from err
    for folder in (path.parent, root):
        if (folder / "wnids.txt").is_file():
            return list(read_wnids(folder / "wnids.txt"))
    raise DataError(
        f"{path} carries no Hugging Face label names and no wnids.txt is beside it: "
        "cannot tell which wnid each label is"
    )


def _parquet_listing(files: list[Path], to_sorted: np.ndarray) -> Listing:
    """All rows of `files` in (label, file name) order; rows without a path are named file:row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables, names, digests = [], [], []
    for path in files:
        try:
            data = path.read_bytes()  # hashed and parsed from one read
            table = pq.read_table(pa.BufferReader(data), columns=["image", "label"])
        except (pa.ArrowInvalid, KeyError, OSError) as err:
            raise DataError(
                f"{path}: not a readable parquet file with columns image and label ({err})"
            ) from err
        image_type = table.schema.field("image").type
        if not (
            pa.types.is_struct(image_type)
            and image_type.get_field_index("bytes") >= 0
            and pa.types.is_integer(table.schema.field("label").type)
        ):
            raise DataError(
                f"{path}: expected columns image = struct<bytes, path> and label = int, "
                f"got {table.schema}"
            )
        paths = (
            pc.struct_field(table.column("image").combine_chunks(), "path").to_pylist()
            if image_type.get_field_index("path") >= 0
            else [None] * len(table)
        )
        names += [Path(p).name if p else f"{path.stem}:{row}" for row, p in enumerate(paths)]
        tables.append(table)
        digests.append(sha256_bytes(data))
    table = pa.concat_tables(tables)
    raw = table.column("label").to_numpy()
    if raw.size and (raw.min() < 0 or raw.max() >= len(to_sorted)):
        raise DataError(f"{[str(f) for f in files]}: labels outside 0..{len(to_sorted) - 1}")
    labels = to_sorted[raw]
    order = sorted(range(len(names)), key=lambda i: (labels[i], names[i]))
    encoded = pc.struct_field(table.column("image").combine_chunks(), "bytes")
    return Listing(
        ParquetImages(encoded, digests).take(np.asarray(order, np.int64)),
        [names[i] for i in order],
        labels[order],
    )


def _subset(listing: Listing, indices: np.ndarray) -> Listing:
    """The listing's images at `indices` (sorted, so the order stays (label, file name))."""
    return Listing(
        listing.images.take(indices),
        [listing.filenames[i] for i in indices],
        listing.labels[indices],
    )
