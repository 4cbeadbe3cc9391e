"""Structural check of a downloaded ESC-50 folder, in place of a checksum.

GitHub's `master.zip` of karoldvl/ESC-50 is generated on request and changes with every commit
to the repository, so no stable SHA-256 or size exists for it. What the dataset's README
documents is checked instead, after unpacking and before the folder is used: `meta/esc50.csv`
with the official header and 2000 rows, 50 categories (official names and target ids) x 40 clips,
folds 1-5 with 400 clips each, and exactly the 2000 listed WAV files in `audio/`, each 44.1 kHz
mono 16-bit PCM lasting 5 s (220,500 frames, read from the file header).
"""

import collections
import csv
from collections.abc import Sequence
from pathlib import Path

import soundfile

from jaxdl.data.synthetic import CATEGORIES, CSV_COLUMNS
from jaxdl.errors import DataError

META_CSV = Path("meta") / "esc50.csv"
AUDIO_DIR = "audio"
_SHOWN = 5  # problems named in one message
_SHOWN_FILES = 3  # examples named per kind of file problem


def verify_esc50_layout(
    folder: Path,
    *,
    categories: Sequence[str] = CATEGORIES,
    clips_per_category: int = 40,
    folds: Sequence[int] = (1, 2, 3, 4, 5),
    sample_rate: int = 44_100,
    channels: int = 1,
    subtype: str = "PCM_16",
    frames: int = 220_500,
) -> None:
    """Raises DataError listing how `folder` differs from the official ESC-50 layout.

    The defaults are the official figures (`categories` in target-id order); tests pass smaller
    ones. Paths in the message are relative to `folder`: the caller names the folder or archive.
    """
    folder = Path(folder)
    rows, problems = _read_rows(folder / META_CSV)
    if rows is not None:
        problems += _count_problems(rows, categories, clips_per_category, folds)
        wanted = dict(sample_rate=sample_rate, channels=channels, subtype=subtype, frames=frames)
        problems += _audio_problems(folder / AUDIO_DIR, rows, wanted)
    if problems:
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise DataError(f"not the official ESC-50 layout: {'; '.join(problems[:_SHOWN])}{more}")


def _read_rows(csv_path: Path) -> tuple[list[dict] | None, list[str]]:
    """The CSV's rows (with their line numbers), or None and why they cannot be used."""
    if not csv_path.is_file():
        return None, [f"{META_CSV} is missing"]
    rows = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as listing:  # BOM accepted
            reader = csv.reader(listing)
            header = next(reader, [])
            if tuple(header) != CSV_COLUMNS:
                return None, [
                    f"{META_CSV} header is {','.join(header)!r}, expected the "
                    f"official {','.join(CSV_COLUMNS)!r}"
                ]
            for line, fields in enumerate(reader, start=2):
                if fields and len(fields) != len(CSV_COLUMNS):
                    return None, [
                        f"{META_CSV} line {line} has {len(fields)} fields, expected "
                        f"{len(CSV_COLUMNS)}"
                    ]
                if fields:
                    rows.append(dict(zip(CSV_COLUMNS, fields, strict=True), line=line))
    except (UnicodeDecodeError, csv.Error) as err:
        return None, [f"{META_CSV} is not a readable CSV file ({err})"]
    return rows, []


def _count_problems(
    rows: list[dict], categories: Sequence[str], clips_per_category: int, folds: Sequence[int]
) -> list[str]:
    """Row, category, target id and fold counts against the official ones."""
    expected_rows = len(categories) * clips_per_category
    problems = (
        []
        if len(rows) == expected_rows
        else [f"{META_CSV} has {len(rows)} rows, expected {expected_rows}"]
    )
    per_category = collections.Counter(row["category"] for row in rows)
    unknown = sorted(set(per_category) - set(categories))
    if unknown:
        problems.append(f"{META_CSV} has categories not in ESC-50: {unknown[:_SHOWN_FILES]}")
    counts = [
        f"{category!r} has {per_category[category]}"
        for category in categories
        if per_category[category] != clips_per_category
    ]
    if counts:
        problems.append(
            _files(f"categories without {clips_per_category} clips", counts, of=len(categories))
        )
    targets = collections.defaultdict(set)
    for row in rows:
        targets[row["category"]].add(row["target"])
    ids = [
        f"{category!r} has {', '.join(sorted(targets[category]))}, expected {target}"
        for target, category in enumerate(categories)
        if targets[category] not in (set(), {str(target)})
    ]
    if ids:
        problems.append(_files("categories with another target id than the official one", ids))
    per_fold = collections.Counter(row["fold"] for row in rows)
    expected_folds = {str(fold): expected_rows // len(folds) for fold in folds}
    if per_fold != expected_folds:
        found = ", ".join(f"{fold}: {count}" for fold, count in sorted(per_fold.items()))
        problems.append(
            f"clips per fold are {{{found}}}, expected {expected_rows // len(folds)} "
            f"in each of the folds {tuple(folds)}"
        )
    return problems


def _audio_problems(audio: Path, rows: list[dict], wanted: dict) -> list[str]:
    """Listed clips that are missing, unlisted files, and clips of another format or length."""
    listed = collections.Counter(row["filename"] for row in rows)
    problems = []
    unsafe = [
        row
        for row in rows
        if Path(row["filename"]).name != row["filename"] or row["filename"] in ("", ".", "..")
    ]
    if unsafe:
        problems.append(
            f"{META_CSV} line {unsafe[0]['line']}: filename "
            f"{unsafe[0]['filename']!r} is not a file name inside {AUDIO_DIR}/"
        )
    repeated = sorted(name for name, count in listed.items() if count > 1)
    if repeated:
        problems.append(_files("file names listed more than once", repeated))
    present = {path.name for path in audio.iterdir()} if audio.is_dir() else set()
    missing = sorted(set(listed) - present)
    if missing:
        problems.append(_files(f"listed clips missing from {AUDIO_DIR}/", missing))
    extra = sorted(present - set(listed))
    if extra:
        problems.append(_files(f"files in {AUDIO_DIR}/ not listed in {META_CSV}", extra))
    wrong = [
        f"{name} is {found}"
        for name in sorted(set(listed) & present)
        if (found := _format(audio / name)) != _describe(**wanted)
    ]
    if wrong:
        problems.append(_files(f"clips other than {_describe(**wanted)}", wrong))
    return problems


def _format(path: Path) -> str:
    """The clip's format as `_describe` words it, read from its header only."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.SoundFileError) as err:
        return f"unreadable ({err})"
    return _describe(info.samplerate, info.channels, info.subtype, info.frames)


def _describe(sample_rate: int, channels: int, subtype: str, frames: int) -> str:
    return (
        f"{sample_rate} Hz, {channels} channel{'s' if channels != 1 else ''}, {subtype}, "
        f"{frames} frames ({frames / max(sample_rate, 1):g} s)"
    )


def _files(what: str, names: list[str], of: int | None = None) -> str:
    """`what (count)` or `what (count of of)`, then the first few names."""
    count = f"{len(names)} of {of}" if of else str(len(names))
    more = ", ..." if len(names) > _SHOWN_FILES else ""
    return f"{what} ({count}): {', '.join(names[:_SHOWN_FILES])}{more}"
