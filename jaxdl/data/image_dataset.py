"""Decoded, resized images stored once with TFDS (array_record, no TensorFlow), shared by the
image tasks.

A task module lists one split (file names, labels, where each encoded image is) and calls
`load_image_split`. The first call decodes every image, converts it to RGB, resizes it to
`data.image_size` and writes uint8 `Tensor` features into a TFDS builder config under
`<cache>/tfds/image_split/`; later calls only open it. The config's name hashes everything the
records depend on (file list, the SHA-256 of every image file's bytes, labels, class names, image
size, `data.on_corrupt`, record layout), so a changed dataset or setting builds a new cache
instead of reusing a stale one: an image replaced by another of the same name, size and time
too. TFDS writes into a temporary folder and renames it when complete: an interrupted build is
redone, never half-read; one process at a time builds a given cache (`cache.build_once`).

`data.on_corrupt`: "error" names the missing images before the build and stops the build at the
first undecodable one, naming it (both before any training); "skip" leaves them out, and every
load prints the count and names (cache.py).
"""

import collections
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from jaxdl.data import image
from jaxdl.data.cache import (
    OneLineBuildLog,
    SkippedItems,
    build_once,
    cache_root,
    fingerprint,
    on_corrupt,
    report_skipped,
)
from jaxdl.data.content import sha256_file, threaded_map
from jaxdl.data.split import Split
from jaxdl.errors import ConfigError, DataError

_RECORD_LAYOUT = 1  # part of every split's hash: bump when the stored records change
_DECODE_AHEAD = 256  # images decoded ahead of the writer (bounds memory)


class EncodedImages(Protocol):
    """Where a split's encoded images are: the i-th of `len()` images, and a content identity."""

    def __len__(self) -> int: ...

    def read(self, index: int) -> Path | bytes:
        """The encoded image (a file path or its bytes)."""

    def identity(self) -> object:
        """JSON-able value that changes whenever an image's bytes change (their SHA-256)."""

    def missing(self) -> list[str]:
        """Listed images that do not exist, as paths for messages."""

    def take(self, indices: Sequence[int]) -> "EncodedImages":
        """The images at `indices`, in that order."""


class ImageFiles:
    """Images stored as files under `root` (`names` relative to it, as the annotations list
    them)."""

    def __init__(self, root: Path, names: Sequence[str]):
        self._root, self._names = Path(root), list(names)

    def __len__(self) -> int:
        return len(self._names)

    def read(self, index: int) -> Path:
        return self._root / self._names[index]

    @functools.cached_property
    def _digests(self) -> list[str | None]:
        """SHA-256 of each file's bytes; None for a missing file, the error for an unreadable one
        (its decode then names it)."""
        return threaded_map(_file_identity, [self._root / name for name in self._names])

    def identity(self) -> list[str | None]:
        return self._digests

    def missing(self) -> list[str]:
        return [
            str(self._root / name)
            for name, digest in zip(self._names, self._digests, strict=True)
            if digest is None
        ]

    def take(self, indices: Sequence[int]) -> "ImageFiles":
        return ImageFiles(self._root, [self._names[i] for i in indices])


def _file_identity(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"unreadable: {err}"


class ImageRecords:
    """A stored split as a random-access, picklable source (grain workers) of records
    `{"image": uint8 (H, W, 3), "label": int | float32 (L,), "filename": str}`."""

    def __init__(self, data_source):
        self._data = data_source

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict:
        record = self._data[index]
        label = record["label"]
        return {
            "image": record["image"],
            "label": int(label) if np.ndim(label) == 0 else label,
            "filename": record["filename"].decode("utf-8"),
        }  # TFDS returns Text as bytes


def image_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
    """`data.image_size` (one int or (H, W)) as (H, W)."""
    value = config.data.image_size
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise ConfigError(f"data.image_size={value!r}: expected a positive int or (H, W)")
    return size


def load_image_split(
    config: ml_collections.ConfigDict,
    *,
    task: str,
    split: str,
    images: EncodedImages,
    filenames: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    selected_by: str,
) -> Split:
    """The split's records, decoding and resizing the images into the cache on first use.

    `labels`: int (N,) class indices, or float32 (N, L) 0/1 targets (multi-label, `class_names`
    = the L attribute names). `filenames`: (N,) names stored with each image. `selected_by`: what
    chose the split's images (a config key and value, or an annotation file), named if it chose
    none. Reads `data.image_size`, `data.on_corrupt` and the cache location.
    """
    policy = on_corrupt(config)
    size = image_size(config)
    if not len(filenames):
        raise DataError(
            f"the {task} {split} split is empty; its images are chosen by {selected_by}"
        )
    labels = np.asarray(labels, np.int64 if np.asarray(labels).ndim == 1 else np.float32)
    missing = images.missing()
    if missing and policy == "error":
        raise DataError(
            f"{task} {split}: {len(missing)} listed image file(s) are missing, e.g. "
            f"{missing[:3]}; restore them, or set --config.data.on_corrupt=skip to "
            "leave them out"
        )
    key = fingerprint(
        _RECORD_LAYOUT,
        task,
        split,
        list(size),
        list(filenames),
        labels.dtype.str,
        labels.shape,
        labels.tobytes(),
        list(class_names),
        policy,
        images.identity(),
    )
    config_name = f"{task}_{split}_{key}"
    tfds_dir = cache_root(config) / "tfds"
    prepared = tfds_dir / _ImageSplitBuilder.name / config_name / str(_ImageSplitBuilder.VERSION)

    def build() -> None:
        builder = _ImageSplitBuilder(
            spec=_BuildSpec(
                task, split, images, list(filenames), labels, tuple(class_names), size, policy
            ),
            config=tfds.core.BuilderConfig(name=config_name),
            data_dir=tfds_dir,
            file_format="array_record",
        )
        tfds.disable_progress_bar()  # our bar counts images against the total; TFDS's would nest
        builder.download_and_prepare()

    build_once(prepared, "dataset_info.json", build, f"building the {task} {split} image cache")
    # Read through a builder rebuilt from the folder: it pickles (grain workers) without our spec.
    source = tfds.builder_from_directory(prepared).as_data_source(split)
    report_skipped(prepared, f"{task} {split} images", len(source), len(filenames))
    return Split(name=split, source=ImageRecords(source), class_names=tuple(class_names))


@dataclasses.dataclass(frozen=True)
class _BuildSpec:
    """What one split's build needs (kept apart from the TFDS builder's own attributes)."""

    task: str
    split: str
    images: EncodedImages
    filenames: list[str]
    labels: np.ndarray  # int64 (N,) or float32 (N, L)
    class_names: tuple[str, ...]
    size: tuple[int, int]  # (H, W)
    on_corrupt: str


class _ImageSplitBuilder(OneLineBuildLog, tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One split of one image task as a TFDS dataset with a single split of the same name."""

    name = "image_split"
    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # TFDS 4.9.10 looks it up through importlib_resources, absent on Python >= 3.9

    def __init__(self, *, spec: _BuildSpec, **builder_kwargs):
        self._spec = spec
        self.build_message = (
            f"building the {spec.task} {spec.split} image cache "
            f"({len(spec.filenames)} images, {spec.size[0]}x{spec.size[1]})"
        )
        super().__init__(**builder_kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self._spec
        if spec.labels.ndim == 1:
            label = tfds.features.ClassLabel(names=spec.class_names)
        else:
            label = tfds.features.Tensor(
                shape=spec.labels.shape[1:], dtype=np.float32, encoding=tfds.features.Encoding.BYTES
            )
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"jaxdl {spec.task} {spec.split} images, resized to {spec.size} (H, W).",
            features=tfds.features.FeaturesDict(
                {
                    # Raw bytes: ~10x faster to write than TFDS's default int64-list encoding.
                    "image": tfds.features.Tensor(
                        shape=(*spec.size, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                    ),
                    "label": label,
                    "filename": tfds.features.Text(),
                }
            ),
            disable_shuffling=True,  # keep the listing's order
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        return {self._spec.split: self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        spec = self._spec
        skipped = SkippedItems(spec.on_corrupt, "images")
        decoded = _ordered_map(functools.partial(_decode_resized, spec), len(spec.filenames))
        with tqdm(
            decoded,
            total=len(spec.filenames),
            unit=" images",
            desc=f"{spec.task} {spec.split}: decoding and resizing",
        ) as progress:
            for index, pixels in enumerate(progress):
                if isinstance(pixels, DataError):
                    skipped.reject(pixels)
                    continue
                yield (
                    index,
                    {
                        "image": pixels,
                        "label": spec.labels[index],
                        "filename": spec.filenames[index],
                    },
                )
        if len(skipped.messages) == len(spec.filenames):
            raise DataError(
                f"{spec.task} {spec.split}: no readable image among "
                f"{len(spec.filenames)}, e.g. {skipped.messages[0]}"
            )
        # During the build, data_dir is TFDS's temporary folder, renamed into place when complete.
        skipped.write(Path(os.fspath(self.data_dir)))


def _decode_resized(spec: _BuildSpec, index: int) -> np.ndarray | DataError:
    """The index-th image as uint8 (H, W, 3), or the DataError naming why it cannot be read."""
    encoded = spec.images.read(index)
    name = str(encoded) if isinstance(encoded, Path) else spec.filenames[index]
    try:
        return image.resize(image.decode_image(encoded, name), spec.size)
    except DataError as err:
        return err


def _ordered_map(fn: Callable[[int], object], n: int) -> Iterator[object]:
    """fn(0), …, fn(n-1) in order, on all cores (Pillow releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pending = collections.deque()
        for index in range(n):
            pending.append(pool.submit(fn, index))
            if len(pending) >= _DECODE_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
