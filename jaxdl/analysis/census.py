"""D5 census of the raw files in the official layout: formats, sizes and modes of the images,
sample rates, channels and lengths of the clips, and every missing or corrupt file.

It reads the files the annotations list, not the decoded cache, so it sees what the loader will
meet; "corrupt" means what the loader rejects (`image.decode_image`, `audio.load_waveform`: a
full decode), so a file the census flags is one that `data.on_corrupt` would stop on or skip.
"""

import collections
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_collections
import numpy as np
import soundfile
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from jaxdl import tasks
from jaxdl.data import audio, image
from jaxdl.errors import DataError
from jaxdl.tasks.spec import RawGroup

MOST_COMMON = 10  # sizes / lengths listed by frequency in the summary


def inspect_image(encoded: Path | bytes, name: str) -> dict:
    """{"width", "height", "mode", "format"} from the header, or {"problem", "detail"} (with the
    header fields when only the full decode fails)."""
    try:
        with Image.open(io.BytesIO(encoded) if isinstance(encoded, bytes) else encoded) as img:
            header = {
                "width": img.width,
                "height": img.height,
                "mode": img.mode,
                "format": img.format,
            }
    except FileNotFoundError:
        return {"problem": "missing", "detail": f"{name}: file not found"}
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        return {"problem": "corrupt", "detail": f"{name}: {err}"}
    try:
        image.decode_image(encoded, name)
    except DataError as err:
        return {**header, "problem": "corrupt", "detail": str(err)}
    return header


def inspect_audio(path: Path) -> dict:
    """{"sample_rate", "channels", "frames", "seconds", "format", "subtype"}, or {"problem",
    "detail"}. Decoded at the file's own rate (no resampling), with the loader's checks."""
    if not path.is_file():
        return {"problem": "missing", "detail": f"{path}: file not found"}
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, OSError) as err:
        return {"problem": "corrupt", "detail": f"{path}: {err}"}
    header = {
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "frames": info.frames,
        "seconds": info.frames / info.samplerate,
        "format": info.format,
        "subtype": info.subtype,
    }
    try:
        audio.load_waveform(path, info.samplerate)
    except DataError as err:
        return {**header, "problem": "corrupt", "detail": str(err)}
    return header


def _counts(values) -> dict[str, int]:
    return {str(k): n for k, n in collections.Counter(values).most_common()}


def _range(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": float(np.min(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def summarize(kind: str, results: Sequence[dict]) -> dict:
    """Counts of one group's inspection results: files, ok, missing, corrupt, and the properties
    of the readable files (image: modes, formats, sizes; audio: rates, channels, lengths)."""
    ok = [r for r in results if "problem" not in r]
    problems = collections.Counter(r["problem"] for r in results if "problem" in r)
    summary = {
        "files": len(results),
        "ok": len(ok),
        "missing": problems["missing"],
        "corrupt": problems["corrupt"],
        "formats": _counts(r["format"] for r in ok),
    }
    if kind == "image":
        sizes = collections.Counter((r["width"], r["height"]) for r in ok)
        summary |= {
            "modes": _counts(r["mode"] for r in ok),
            "distinct_sizes": len(sizes),
            "most_common_sizes": [[w, h, n] for (w, h), n in sizes.most_common(MOST_COMMON)],
            "width": _range([r["width"] for r in ok]),
            "height": _range([r["height"] for r in ok]),
        }
    else:
        lengths = collections.Counter(r["seconds"] for r in ok)
        summary |= {
            "sample_rates": _counts(r["sample_rate"] for r in ok),
            "channels": _counts(r["channels"] for r in ok),
            "subtypes": _counts(r["subtype"] for r in ok),
            "distinct_lengths": len(lengths),
            "most_common_seconds": [[s, n] for s, n in lengths.most_common(MOST_COMMON)],
            "seconds": _range([r["seconds"] for r in ok]),
        }
    return summary


def census(config: ml_collections.ConfigDict) -> dict:
    """Inspects every listed raw file of the task's dataset (all cores) and summarises them.

    Returns {"kind": "audio" | "image", "root": dataset folder, "groups": {name: summary},
    "all": summary of every file, "problems": [{"group", "file", "problem", "detail"}],
    "unlisted": files present but not in the annotations (ESC-50's audio/ only)}.
    """
    files = tasks.get(config).raw_files(config)
    kind, root, groups, unlisted = files.kind, files.root, files.groups, files.unlisted

    def inspect(job: tuple[RawGroup, int]) -> dict:
        group, index = job
        if kind == "audio":
            return inspect_audio(group.read(index))
        return inspect_image(group.read(index), group.files[index])

    jobs = [(group, index) for group in groups for index in range(len(group.files))]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(
            tqdm(
                pool.map(inspect, jobs), total=len(jobs), desc="census", unit=" files", leave=False
            )
        )
    per_group = collections.defaultdict(list)
    problems = []
    for (group, index), result in zip(jobs, results, strict=True):
        per_group[group.name].append(result)
        if "problem" in result:
            problems.append(
                {
                    "group": group.name,
                    "file": group.files[index],
                    "problem": result["problem"],
                    "detail": result["detail"],
                }
            )
    return {
        "kind": kind,
        "root": str(root),
        "groups": {name: summarize(kind, rows) for name, rows in per_group.items()},
        "all": summarize(kind, results),
        "problems": problems,
        "unlisted": unlisted,
    }
