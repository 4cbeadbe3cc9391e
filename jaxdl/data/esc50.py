"""ESC-50: where the data is, its metadata, cached log-mel features, and the fold splits.

Protocol as the reference (docs/reference-projects.md#esc-50): official folds (train 1-3, val 4,
test 5 by default, from `config.data.{split}_folds`), labels 0..C-1 = category names sorted
alphabetically (the CSV's `target` column is not used). Log-mels are computed once per fold and
cached as a TFDS array_record dataset whose name hashes everything they depend on (each clip's file
name, category and SHA-256 of its bytes, the feature settings, the label map), so only the folds a
split needs are read and computed, later runs reuse them, and an edited clip, a copy with other
samples under the same names or another generated seed gets features of its own.

Before any feature is computed, every clip of the split is checked from its file header: a
missing, unreadable or empty file, or a clip whose length gives another number of frames than
the split's other clips (every ESC-50 clip lasts 5 s; clips of different lengths cannot be
batched together), is named in one DataError, or skipped with `data.on_corrupt=skip`. Any sample
rate and channel count is accepted, not an error: clips are mixed to mono and resampled to
`features.sample_rate`, as the reference does (the official clips are 44.1 kHz mono).
"""

import bisect
import collections
import csv
import dataclasses
import itertools
import math
import operator
import os
import posixpath
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import soundfile
import tensorflow_datasets as tfds
from tqdm import tqdm

from jaxdl.data.audio import clip_features
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
from jaxdl.data.esc50_layout import AUDIO_DIR, META_CSV, verify_esc50_layout
from jaxdl.data.locate import DatasetSource, dataset_dir
from jaxdl.data.split import Split
from jaxdl.data.synthetic import make_synthetic_esc50
from jaxdl.errors import ConfigError, DataError

ARCHIVE_FOLDER = "ESC-50-master"  # what the official archive unpacks to
REQUIRED_COLUMNS = ("filename", "fold", "category")
FOLDS = (1, 2, 3, 4, 5)
SPLITS = ("train", "val", "test")
_SHOWN = 5  # problems named in one error message
_TFDS_SPLIT = "clips"


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    filename: str  # relative to audio/
    fold: int
    category: str


class FoldsSource:
    """Random access over several prepared folds as one sequence, fold after fold.

    A plain picklable class (grain data source): each fold is a TFDS array_record data source.
    """

    def __init__(self, folds: Sequence[Any]):
        self._folds = list(folds)
        self._starts = list(itertools.accumulate((len(fold) for fold in self._folds), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> dict:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(f"example {index} out of range for {len(self)} examples")
        fold = bisect.bisect_right(self._starts, index) - 1
        example = self._folds[fold][index - self._starts[fold]]
        return {
            "features": example["features"],
            "label": int(example["label"]),
            "filename": example["filename"].decode(),  # TFDS returns Text as bytes
        }


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
    """The examples of `split` ("train", "val" or "test"), features computed once and cached.

    Every input problem (folder, CSV, folds, missing, unreadable or odd-length WAVs) is raised
    before any compute.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    policy = on_corrupt(config)
    key = f"data.{split}_folds"
    folds = tuple(config.data[f"{split}_folds"])
    if not folds:
        raise ConfigError(
            f"{key}=() is empty: the {split} split needs at least one of the folds "
            f"{FOLDS} (the reference: train (1, 2, 3), val (4,), test (5,))"
        )
    data_dir = resolve_data_dir(config)
    records = read_metadata(data_dir)
    present = sorted({record.fold for record in records})
    unknown = [fold for fold in folds if fold not in present]
    if unknown:
        raise ConfigError(
            f"{key}={folds}: fold(s) {unknown} not in {data_dir / META_CSV}; "
            f"folds present: {present}"
        )
    names = class_names(records)
    clips = [record for record in records if record.fold in folds]
    digests, problems = _inspect_clips(data_dir, clips, config.features)
    if problems and policy == "error":
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise DataError(
            f"{len(problems)} of the {len(clips)} clips of {key}={folds} cannot be "
            f"used: {'; '.join(list(problems.values())[:_SHOWN])}{more}. Restore "
            "them, or set --config.data.on_corrupt=skip to leave them out"
        )
    sources = []
    for fold in folds:
        fold_clips = [record for record in clips if record.fold == fold]
        sources.append(_fold_source(config, data_dir, fold, fold_clips, digests, problems, names))
    return Split(split, FoldsSource(sources), names)


SOURCE = DatasetSource(
    title="ESC-50",
    marker=str(META_CSV),
    archive_folder=ARCHIVE_FOLDER,
    make_synthetic=make_synthetic_esc50,
    archive_name=f"{ARCHIVE_FOLDER}.zip",
    verify=verify_esc50_layout,
)  # GitHub's master.zip has no stable checksum


def resolve_data_dir(config: ml_collections.ConfigDict) -> Path:
    """The ESC-50 folder (holding meta/ and audio/): generated, `data.dir`, or downloaded."""
    return dataset_dir(config, SOURCE)


def read_metadata(data_dir: Path) -> list[ClipRecord]:
    """Every clip listed in `meta/esc50.csv`, validated (folder, file, columns, folds, names).

    A UTF-8 byte-order mark (spreadsheet exports write one) is accepted.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"ESC-50 folder {data_dir} does not exist; expected the unpacked official archive "
            f"({ARCHIVE_FOLDER}/ with meta/esc50.csv and audio/*.wav), set with --config.data.dir"
        )
    csv_path = data_dir / META_CSV
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path} not found: {data_dir} is not an ESC-50 folder (expected meta/esc50.csv "
            f"and audio/*.wav, as in the official {ARCHIVE_FOLDER}/)"
        )
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as listing:
            reader = csv.DictReader(listing)
            columns = reader.fieldnames or []
            missing = [column for column in REQUIRED_COLUMNS if column not in columns]
            if missing:
                raise DataError(
                    f"{csv_path} lacks column(s) {missing}; found {columns}, expected the "
                    "official header filename,fold,target,category,esc10,src_file,take"
                )
            records = [_record(row, csv_path, line) for line, row in enumerate(reader, start=2)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{csv_path} is not a readable CSV file ({err})") from err
    if not records:
        raise DataError(f"{csv_path} lists no clips")
    return records


def _record(row: dict, csv_path: Path, line: int) -> ClipRecord:
    fold = (row["fold"] or "").strip()
    if not (fold.isdigit() and int(fold) in FOLDS):
        raise DataError(
            f"{csv_path} line {line}: fold {row['fold']!r}, expected an integer from 1 to 5"
        )
    if not row["filename"] or not row["category"]:
        raise DataError(f"{csv_path} line {line}: empty filename or category")
    name = row["filename"]
    if posixpath.isabs(name) or posixpath.normpath(name).split("/")[0] == "..":
        raise DataError(
            f"{csv_path} line {line}: filename {name!r} points outside "
            f"{csv_path.parent.parent / AUDIO_DIR}; expected a file name inside {AUDIO_DIR}/ "
            "such as 1-100032-A-0.wav"
        )
    return ClipRecord(name, int(fold), row["category"])


def class_names(records: Sequence[ClipRecord]) -> tuple[str, ...]:
    """Category names sorted alphabetically: label i is class_names[i]."""
    return tuple(sorted({record.category for record in records}))


def _inspect_clips(
    data_dir: Path, clips: Sequence[ClipRecord], settings: ml_collections.ConfigDict
) -> tuple[dict[str, str | None], dict[str, str]]:
    """({file name: SHA-256 of its bytes (None: unreadable)}, {file name: problem}), the
    problems from the WAV headers alone.

    A problem is a missing, unreadable or empty file, or a length that gives another number of
    feature frames than most of `clips` have (a clip that could not be batched with them).
    The frame count follows the features: ceil(samples · sample_rate / file rate) samples after
    resampling, 1 + that // hop_length centred frames.
    """
    digests, problems, frames, seconds = {}, {}, {}, {}
    examined = threaded_map(_examine, [data_dir / AUDIO_DIR / clip.filename for clip in clips])
    for clip, (digest, info) in zip(clips, examined, strict=True):
        path = data_dir / AUDIO_DIR / clip.filename
        digests[clip.filename] = digest
        if isinstance(info, FileNotFoundError):
            problems[clip.filename] = f"{path} is listed in {data_dir / META_CSV} but missing"
            continue
        if isinstance(info, Exception):
            problems[clip.filename] = f"{path}: cannot read audio ({info})"
            continue
        if info.frames <= 0:
            problems[clip.filename] = f"{path}: the audio file holds no samples"
            continue
        resampled = math.ceil(info.frames * settings.sample_rate / info.samplerate)
        frames[clip.filename] = 1 + resampled // settings.hop_length
        seconds[clip.filename] = info.frames / info.samplerate
    if frames:
        expected, count = collections.Counter(frames.values()).most_common(1)[0]
        usual = next(seconds[name] for name, n in frames.items() if n == expected)
        for name, n in frames.items():
            if n != expected:
                problems[name] = (
                    f"{data_dir / AUDIO_DIR / name}: {seconds[name]:.3f} s of audio ({n} feature "
                    f"frames), expected {usual:.3f} s ({expected} frames) as {count} of the "
                    f"{len(frames)} readable clips of the split have (truncated or cut to another "
                    "length? clips of different lengths cannot be batched together)"
                )
    return digests, problems


def _examine(path: Path) -> tuple[str | None, object]:
    """(SHA-256 of the file's bytes, its audio header), the error in place of what failed."""
    digest = None
    try:
        digest = sha256_file(path)
        return digest, soundfile.info(str(path))
    except (soundfile.SoundFileError, OSError) as err:
        return digest, err


class Esc50LogMel(OneLineBuildLog, tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One fold's log-mel features as a TFDS dataset (array_record) with a single split."""

    # Bump when the feature code changes: it names the cache. 1.1.0: torchaudio's sinc resampler
    # replaced librosa's polyphase one.
    VERSION = tfds.core.Version("1.1.0")
    # TFDS 4.9.10 finds a builder's code path through `importlib_resources`, a package it only
    # installs for Python < 3.9; this builder has no checksums file to find there.
    code_path = None

    def __init__(
        self,
        *,
        audio_dir: Path,
        fold: int,
        clips: Sequence[ClipRecord],
        problems: dict[str, str],
        settings: ml_collections.ConfigDict,
        class_names: tuple[str, ...],
        on_corrupt: str,
        **builder_kwargs,
    ):
        self._audio_dir, self._fold, self._clips = audio_dir, fold, clips
        self._problems = problems  # clips found unusable from their headers, by file name
        self._settings, self._class_names, self._on_corrupt = settings, class_names, on_corrupt
        self.build_message = f"building the log-mel cache for fold {fold} ({len(clips)} clips)"
        super().__init__(**builder_kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="ESC-50 log-mel spectrograms of one fold (jaxdl feature cache).",
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(
                        shape=(self._settings.n_mels, None), dtype=np.float32, encoding="zlib"
                    ),
                    "label": tfds.features.ClassLabel(names=self._class_names),
                    "filename": tfds.features.Text(),
                }
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        return {_TFDS_SPLIT: self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict]]:
        label = {name: i for i, name in enumerate(self._class_names)}
        skipped = SkippedItems(self._on_corrupt, "clips")
        for clip in tqdm(self._clips, desc=f"ESC-50 fold {self._fold} log-mels", unit="clip"):
            features = self._features(clip)
            if isinstance(features, DataError):
                skipped.reject(features)
                continue
            yield (
                clip.filename,
                {"features": features, "label": label[clip.category], "filename": clip.filename},
            )
        if len(skipped.messages) == len(self._clips):
            raise DataError(
                f"every clip of fold {self._fold} in {self._audio_dir} is missing or "
                f"corrupt, e.g. {skipped.messages[0]}"
            )
        # During the build, data_dir is TFDS's temporary folder, renamed into place when complete.
        skipped.write(Path(os.fspath(self.data_dir)))

    def _features(self, clip: ClipRecord) -> np.ndarray | DataError:
        """The clip's features, or the DataError saying why it cannot be used."""
        if clip.filename in self._problems:
            return DataError(self._problems[clip.filename])
        try:
            return clip_features(self._audio_dir / clip.filename, self._settings)
        except DataError as err:
            return err


def _fold_source(
    config: ml_collections.ConfigDict,
    data_dir: Path,
    fold: int,
    clips: Sequence[ClipRecord],
    digests: dict[str, str | None],
    problems: dict[str, str],
    names: tuple[str, ...],
):
    """The fold's cached features (computed on first use) as a TFDS array_record data source.

    The cache is keyed by the fold's listing (file names, categories, the SHA-256 of each WAV),
    the clips with a problem, the feature settings, the label map and `data.on_corrupt`:
    changing any of them computes a new cache entry.
    """
    key = fingerprint(
        [(clip.filename, clip.category, digests[clip.filename]) for clip in clips],
        sorted(clip.filename for clip in clips if clip.filename in problems),
        config.features.to_dict(),
        list(names),
        config.data.on_corrupt,
    )
    config_name = f"fold{fold}_{key}"
    tfds_dir = cache_root(config) / "tfds"
    prepared = tfds_dir / Esc50LogMel.name / config_name / str(Esc50LogMel.VERSION)

    def build() -> None:
        builder = Esc50LogMel(
            audio_dir=data_dir / AUDIO_DIR,
            fold=fold,
            clips=clips,
            problems=problems,
            settings=config.features,
            class_names=names,
            on_corrupt=config.data.on_corrupt,
            config=tfds.core.BuilderConfig(name=config_name),
            data_dir=tfds_dir,
            file_format="array_record",
        )
        tfds.disable_progress_bar()  # jaxdl's per-clip bar says it all; TFDS would nest three more
        builder.download_and_prepare()

    build_once(prepared, "dataset_info.json", build, f"building the log-mel cache for fold {fold}")
    # Read through a builder rebuilt from the folder: it pickles (grain workers), ours would not.
    source = tfds.builder_from_directory(prepared).as_data_source(_TFDS_SPLIT)
    report_skipped(prepared, f"ESC-50 fold {fold} clips", len(source), len(clips))
    return source
