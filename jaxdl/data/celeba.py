"""CelebA aligned faces (178x218), multi-label: where the data is, its annotations, the splits.

Protocol as the reference (docs/reference-projects.md#celeba): the official partitions of
list_eval_partition.txt (0 train 162,770 / 1 valid 19,867 / 2 test 19,962 on the real data);
targets = the `data.attributes` columns of list_attr_celeba.txt (default Smiling, Wearing_Hat,
Male, Young, Eyeglasses) with -1 -> 0, as float32 (L,) 0/1; class_names = those attribute names.

Images are resized to `data.image_size` (64x64, aspect not kept) once, when cached. Departure
from the reference, on purpose: it applied flip, rotation and colour jitter to the 178x218 image
and resized afterwards; jaxdl stores the 64x64 images and augments those, ~9x fewer pixels per
augmentation and no per-epoch decode. (Rotating before or after the resize differs only in
interpolation detail at the borders.)

CelebA has no stable public archive (Google Drive), so nothing is downloaded: `data.dir` must
point at the files (see `resolve_data_dir`).
"""

from pathlib import Path

import ml_collections
import numpy as np

from jaxdl.data.image_dataset import ImageFiles, load_image_split
from jaxdl.data.locate import DatasetSource, dataset_dir
from jaxdl.data.split import Split
from jaxdl.data.synthetic_images import make_synthetic_celeba
from jaxdl.errors import ConfigError, DataError

TASK = "celeba"
PARTITIONS = {"train": 0, "val": 1, "test": 2}  # list_eval_partition.txt codes
IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTES_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
_LAYOUT_HINT = (
    f"a folder holding {IMAGE_FOLDER}/*.jpg, {ATTRIBUTES_FILE} and {PARTITION_FILE} "
    "(the annotation files may also sit in Anno/ and Eval/ as on the official Google "
    "Drive; torchvision's celeba/ folder is accepted too)"
)


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
    """`split` ("train", "val" or "test") as records {"image": uint8 (64, 64, 3), "label": float32
    (L,) 0/1, "filename": str}, in list_attr_celeba.txt order; class_names = data.attributes.

    Reads data.{source, dir, cache_dir, image_size, on_corrupt, attributes, synthetic}.
    Annotation problems and unknown attributes raise before any image is decoded.
    """
    if split not in PARTITIONS:
        raise ValueError(f"split must be one of {tuple(PARTITIONS)}, got {split!r}")
    root = resolve_data_dir(config)
    names, filenames, values = read_attributes(annotation_path(root, ATTRIBUTES_FILE))
    columns = attribute_columns(names, config.data.attributes)
    partition_file = annotation_path(root, PARTITION_FILE)
    partition = read_partition(partition_file, filenames)
    chosen = np.flatnonzero(partition == PARTITIONS[split])
    files = [filenames[i] for i in chosen]
    targets = (values[np.ix_(chosen, columns)] > 0).astype(np.float32)
    return load_image_split(
        config,
        task=TASK,
        split=split,
        images=ImageFiles(root / IMAGE_FOLDER, files),
        filenames=files,
        labels=targets,
        class_names=tuple(config.data.attributes),
        selected_by=f"the {PARTITIONS[split]} codes of {partition_file}",
    )


SOURCE = DatasetSource(
    title="CelebA",
    marker=IMAGE_FOLDER,
    archive_folder="celeba",
    make_synthetic=make_synthetic_celeba,
    manual_hint=(
        "it is on Google Drive: download img_align_celeba.zip, "
        f"{ATTRIBUTES_FILE} and {PARTITION_FILE} from the official page "
        "(mmlab.ie.cuhk.edu.hk/projects/CelebA.html) and unzip the images, giving "
        f"{_LAYOUT_HINT}."
    ),
)


def resolve_data_dir(config: ml_collections.ConfigDict) -> Path:
    """The CelebA folder: generated (data.source=synthetic) or data.dir (or its celeba/
    subfolder)."""
    return dataset_dir(config, SOURCE)


def attribute_columns(names: tuple[str, ...], attributes) -> list[int]:
    """Column of each requested attribute in the annotation header; ConfigError for unknown ones."""
    attributes = tuple(attributes)
    unknown = [a for a in attributes if a not in names]
    if unknown or not attributes or len(set(attributes)) != len(attributes):
        raise ConfigError(
            f"data.attributes={attributes!r}: expected distinct names among the "
            f"{len(names)} CelebA attributes {list(names)}"
            + (f"; unknown: {unknown}" if unknown else "")
        )
    return [names.index(a) for a in attributes]


def read_attributes(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """(attribute names, file names, int8 (N, A) values in {-1, 1}) of list_attr_celeba.txt.

    Line 1: the image count; line 2: the A attribute names; then "file v1 … vA" per image
    (whitespace-separated). numpy's C reader parses the 202,599 real lines in ~0.5 s.
    """
    expected = (
        "expected line 1 = the image count, line 2 = the attribute names, then "
        "'<file> <-1|1> …' per image"
    )
    with open(path, encoding="utf-8", errors="replace") as listing:
        count, names = listing.readline().strip(), tuple(listing.readline().split())
    if not count.isdigit() or not names:
        raise DataError(f"{path}: {expected}")
    row = np.dtype([("file", "U256"), ("values", np.int8, (len(names),))])
    try:
        table = np.loadtxt(path, dtype=row, skiprows=2, ndmin=1, encoding="utf-8")
    except ValueError as err:
        raise DataError(
            f"{path}: {err} (rows counted after the 2 header lines); {expected}"
        ) from err
    values = table["values"]
    bad = np.flatnonzero(~np.isin(values, (-1, 1)).all(axis=1))
    if bad.size:
        raise DataError(f"{path} line {bad[0] + 3}: attribute values must be -1 or 1")
    if int(count) != len(table):
        raise DataError(f"{path}: line 1 announces {int(count)} images, {len(table)} are listed")
    filenames = table["file"].tolist()
    if len(set(filenames)) != len(filenames):
        raise DataError(f"{path}: some file names are listed twice")
    return names, filenames, values


def read_partition(path: Path, filenames: list[str]) -> np.ndarray:
    """int (N,) partition code (0 train, 1 valid, 2 test) of each of `filenames`."""
    row = np.dtype([("file", "U256"), ("partition", np.int64)])
    try:
        table = np.loadtxt(path, dtype=row, ndmin=1, encoding="utf-8")
    except ValueError as err:
        raise DataError(f"{path}: {err}; expected '<file> <0|1|2>' per line") from err
    bad = np.flatnonzero(~np.isin(table["partition"], (0, 1, 2)))
    if bad.size:
        raise DataError(f"{path} line {bad[0] + 1}: partition must be 0, 1 or 2")
    codes = dict(zip(table["file"].tolist(), table["partition"].tolist(), strict=True))
    absent = [name for name in filenames if name not in codes]
    if absent:
        raise DataError(
            f"{path} has no partition for {len(absent)} image(s) of {ATTRIBUTES_FILE}, "
            f"e.g. {absent[:3]}"
        )
    return np.asarray([codes[name] for name in filenames], np.int64)


def annotation_path(root: Path, name: str) -> Path:
    """`name` in root, root/Anno or root/Eval (Google Drive layout); DataError if in none."""
    if not root.is_dir():
        raise DataError(
            f"CelebA folder {root} does not exist; expected {_LAYOUT_HINT}, set with "
            "--config.data.dir"
        )
    for folder in (root, root / "Anno", root / "Eval"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{name} not found in {root} (nor in Anno/ or Eval/); expected {_LAYOUT_HINT}")
