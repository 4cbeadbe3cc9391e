"""CUB-200-2011 (200 bird species, RGB of varying size): where the data is, its annotations,
the splits.

Protocol as the reference (docs/reference-projects.md#cub-200-2011): the official train images
(5,994) are split 80/20 stratified by class with seed 42, as Hugging Face
`train_test_split(test_size=0.2, stratify_by_column="label", seed=42)` does (see
`stratified_split`): train 4,795 / val 1,199; test = the official test images (5,794). Labels 0..199
= classes.txt ids 1..200 minus one. Images are resized to `data.image_size` (224x224, aspect not
kept, no crop) once, when cached.
"""

import dataclasses
import re
from pathlib import Path

import ml_collections
import numpy as np

from jaxdl.data.image_dataset import ImageFiles, load_image_split
from jaxdl.data.locate import DatasetSource, dataset_dir
from jaxdl.data.split import Split
from jaxdl.data.synthetic_images import make_synthetic_cub200
from jaxdl.errors import ConfigError, DataError

TASK = "cub200"
SPLITS = ("train", "val", "test")
ARCHIVE_BYTES = 1_150_585_339  # no published SHA-256 (its MD5 is 97eceeb196236b17998738112f37df78)
ARCHIVE_FOLDER = "CUB_200_2011"
_LAYOUT_HINT = (
    f"the official {ARCHIVE_FOLDER}/ with images.txt, image_class_labels.txt, "
    "train_test_split.txt, classes.txt and images/<class folder>/*.jpg"
)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Every image of the dataset, in images.txt order."""

    class_names: tuple[str, ...]  # classes.txt names ("001.Black_footed_Albatross", …), label order
    paths: list[str]  # relative to images/
    labels: np.ndarray  # int64 (N,): class id - 1
    is_train: np.ndarray  # bool (N,): the official train/test flag


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
    """`split` ("train", "val" or "test") as records {"image": uint8 (224, 224, 3), "label": int,
    "filename": str (path under images/)}, in images.txt order; class_names from classes.txt.

    Reads data.{source, dir, cache_dir, image_size, on_corrupt, split_seed, val_fraction,
    synthetic}. Annotation problems raise before any image is decoded.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = resolve_data_dir(config)
    dataset = read_dataset(root)
    if split == "test":
        indices = np.flatnonzero(~dataset.is_train)
        selected_by = f"the 0 (test) flags of {root / 'train_test_split.txt'}"
    else:
        selected_by = (
            f"data.val_fraction={config.data.val_fraction} of the "
            f"{int(dataset.is_train.sum())} official train images"
        )
        official_train = np.flatnonzero(dataset.is_train)
        train, val = stratified_split(
            dataset.labels[official_train], config.data.val_fraction, config.data.split_seed
        )
        indices = official_train[train if split == "train" else val]
    paths = [dataset.paths[i] for i in indices]
    return load_image_split(
        config,
        task=TASK,
        split=split,
        images=ImageFiles(root / "images", paths),
        filenames=paths,
        labels=dataset.labels[indices],
        class_names=dataset.class_names,
        selected_by=selected_by,
    )


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions into `labels` (int (N,)), each sorted.

    The allocation of Hugging Face `Dataset.train_test_split(test_size=val_fraction,
    stratify_by_column="label", seed=seed)` (scikit-learn's StratifiedShuffleSplit):
    n_val = ceil(val_fraction·N), n_train = N - n_val; class c of n_c images gets
    floor(n_train·n_c/N) train images, and the n_train left over go one each to the classes with the
    largest fractional parts (ties drawn at random); its other images are val. Within a class the
    images are drawn by a permutation. Same random calls, in the same order, on
    `np.random.default_rng(seed)`, so the same sets as Hugging Face for the same label sequence
    (its final shuffle of each side only reorders them and is left out). With the real counts
    (194 classes of 30, 6 of 29 = 5,994) this gives train 4,795 / val 1,199.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction!r}: expected a number in (0, 1)")
    labels = np.asarray(labels)
    n_val = int(np.ceil(val_fraction * len(labels)))
    n_train = len(labels) - n_val
    rng = np.random.default_rng(seed)
    _, class_of = np.unique(labels, return_inverse=True)
    counts = np.bincount(class_of)
    members = np.split(np.argsort(class_of, kind="mergesort"), np.cumsum(counts)[:-1])
    train_counts = _largest_remainder(counts, n_train, rng)
    val_counts = _largest_remainder(counts - train_counts, n_val, rng)
    train, val = [], []
    for c, images in enumerate(members):
        drawn = images.take(rng.permutation(counts[c]))
        train.append(drawn[: train_counts[c]])
        val.append(drawn[train_counts[c] : train_counts[c] + val_counts[c]])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _largest_remainder(counts: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class share of `draws` proportional to `counts`, summing to `draws` (scikit-learn's
    `_approximate_mode`): floors, then +1 by decreasing fractional part, ties drawn at random."""
    continuous = draws * counts / counts.sum()
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add = min(len(tied), need)
            floored[rng.choice(tied, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(np.int64)


SOURCE = DatasetSource(
    title="CUB-200-2011",
    marker="images.txt",
    archive_folder=ARCHIVE_FOLDER,
    make_synthetic=make_synthetic_cub200,
    archive_name=f"{ARCHIVE_FOLDER}.tgz",
    expected_size=ARCHIVE_BYTES,
)


def resolve_data_dir(config: ml_collections.ConfigDict) -> Path:
    """The CUB_200_2011 folder: generated (data.source=synthetic), data.dir, or downloaded."""
    return dataset_dir(config, SOURCE)


def read_dataset(root: Path) -> Dataset:
    """The four annotation files, validated against each other."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"CUB-200-2011 folder {root} does not exist; expected {_LAYOUT_HINT}, "
            "set with --config.data.dir"
        )
    classes = _read_id_table(root / "classes.txt", "class name")
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DataError(
            f"{root / 'classes.txt'}: class ids must be 1..{len(classes)}, got "
            f"{sorted(classes)[:5]}…"
        )
    images = _read_id_table(root / "images.txt", "relative image path")
    class_ids = _read_id_table(root / "image_class_labels.txt", "class id", r"\d+")
    flags = _read_id_table(root / "train_test_split.txt", "is_train flag (0 or 1)", r"[01]")
    for path, table in (("image_class_labels.txt", class_ids), ("train_test_split.txt", flags)):
        absent = [image_id for image_id in images if image_id not in table]
        if absent:
            raise DataError(f"{root / path} has no line for image id(s) {absent[:5]} of images.txt")
    unknown = sorted({int(c) for c in class_ids.values()} - set(classes))
    if unknown:
        raise DataError(
            f"{root / 'image_class_labels.txt'}: class id(s) {unknown[:5]} not in classes.txt"
        )
    ids = sorted(images)
    return Dataset(
        class_names=tuple(classes[c] for c in range(1, len(classes) + 1)),
        paths=[images[i] for i in ids],
        labels=np.asarray([int(class_ids[i]) - 1 for i in ids], np.int64),
        is_train=np.asarray([flags[i] == "1" for i in ids]),
    )


def _read_id_table(path: Path, what: str, value_pattern: str = r"\S(?:.*\S)?") -> dict[int, str]:
    """{id: value} from lines "<id> <value>" (whitespace-separated, ids unique positive ints)."""
    if not path.is_file():
        raise DataError(f"{path} not found; expected {_LAYOUT_HINT}")
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(rf"\s*(\d+)\s+({value_pattern})\s*", line)
        if not match:
            raise DataError(f"{path} line {number}: expected '<id> <{what}>', got {line!r}")
        image_id = int(match[1])
        if image_id in table:
            raise DataError(f"{path} line {number}: id {image_id} is listed twice")
        table[image_id] = match[2]
    if not table:
        raise DataError(f"{path} is empty; expected {_LAYOUT_HINT}")
    return table
