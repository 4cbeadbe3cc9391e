"""Where a task's dataset folder comes from: generated, `data.dir`, or the downloaded archive.

One rule for every task, so each loader only describes its dataset (`DatasetSource`).
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import ml_collections

from jaxdl.data.cache import build_once, cache_root
from jaxdl.data.download import download_file, extract_archive
from jaxdl.errors import ConfigError, DataError

SOURCES = ("auto", "synthetic")  # data.source: data.dir or the download | generated data


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    title: str  # for messages, e.g. "ESC-50"
    marker: str  # a path that exists inside the dataset folder, e.g. "meta/esc50.csv"
    archive_folder: str  # the folder the official archive unpacks to, e.g. "ESC-50-master"
    make_synthetic: Callable[..., Path]  # (root, **config.data.synthetic) -> dataset folder
    archive_name: str = ""  # downloaded file name (its suffix picks zip or tgz); "" = no download
    expected_size: int | None = None  # bytes, checked before the SHA-256 (config.data.sha256)
    manual_hint: str = ""  # how to get the files when there is no public archive
    # Checks a freshly unpacked download (the dataset folder) where no stable checksum exists;
    # raises DataError. Not run on `data.dir` folders nor generated data.
    verify: Callable[[Path], None] | None = None


def dataset_dir(config: ml_collections.ConfigDict, source: DatasetSource) -> Path:
    """The dataset folder in its official layout, for `data.source` / `data.dir`."""
    if config.data.source == "synthetic":
        return source.make_synthetic(
            cache_root(config) / "synthetic", **config.data.synthetic.to_dict()
        )
    if config.data.source != "auto":
        raise ConfigError(f"data.source={config.data.source!r}; allowed: {SOURCES}")
    if config.data.dir:
        return _official_folder(Path(config.data.dir).expanduser(), source)
    if not source.archive_name:
        raise DataError(
            f"{source.title} has no stable public download: {source.manual_hint} "
            "Pass --config.data.dir=/path/to/the/folder, or run offline on generated "
            "data with --config.data.source=synthetic."
        )
    root = cache_root(config)
    print(
        f"{source.title}: no data.dir given, using the cache folder {root} (set data.cache_dir "
        "or $JAXDL_CACHE to move it)",
        flush=True,
    )
    unpacked = root / source.title.replace(" ", "-")

    def download_and_unpack() -> None:
        hint = (
            f"Download {config.data.url} yourself, unpack it and pass "
            f"--config.data.dir=/path/to/{source.archive_folder}, or run offline on generated "
            "data with --config.data.source=synthetic."
        )
        archive = download_file(
            config.data.url,
            root / "downloads" / source.archive_name,
            sha256=config.data.get("sha256", ""),
            expected_size=source.expected_size,
            offline_hint=hint,
        )
        extract_archive(archive, unpacked, _verifier(source, archive, config.data.url))

    # One process downloads; another asking at the same time waits and uses its folder.
    build_once(unpacked, ".", download_and_unpack, f"downloading {source.title}")
    return _official_folder(unpacked, source)


def _verifier(source: DatasetSource, archive: Path, url: str) -> Callable[[Path], None] | None:
    """`source.verify` on the unpacked folder; a rejected archive is deleted with the message."""
    if source.verify is None:
        return None

    def check(unpacking: Path) -> None:
        try:
            source.verify(_official_folder(unpacking, source))
        except DataError as err:
            archive.unlink(missing_ok=True)
            raise DataError(
                f"{archive} (downloaded from {url}) was rejected: {err}; deleted it and its "
                "unpacked files. Check data.url, or unpack the official archive yourself and pass "
                f"--config.data.dir=/path/to/{source.archive_folder}"
            ) from err

    return check


def _official_folder(folder: Path, source: DatasetSource) -> Path:
    """Accepts the dataset folder itself or its parent holding `archive_folder/`."""
    nested = folder / source.archive_folder
    if not (folder / source.marker).exists() and (nested / source.marker).exists():
        return nested
    return folder
