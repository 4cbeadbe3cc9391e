"""Resumable, verified HTTP(S) downloads and all-or-nothing, contained extraction of dataset
archives: no member lands outside the target folder."""

import hashlib
import http.client
import os
import re
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from jaxdl.data.cache import atomic_directory
from jaxdl.errors import DataError

TIMEOUT_S = 15  # per connection attempt and per read: offline machines fail fast
_CHUNK_BYTES = 1 << 20
_MAX_ATTEMPTS = 5  # a dropped connection is resumed while each attempt makes progress
DEFAULT_OFFLINE_HINT = (
    "Download it yourself and point --config.data.dir=/path/to/dataset at the unpacked folder, "
    "or run offline on generated data with --config.data.source=synthetic."
)
Check = Callable[[Path], None]  # inspects an unpacked folder; raises DataError to reject it


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str = "",
    expected_size: int | None = None,
    progress: bool = True,
    offline_hint: str = DEFAULT_OFFLINE_HINT,
) -> Path:
    """Downloads `url` to `dest` (returned) unless it is already there.

    Bytes go to `dest.part`, resumed with a Range request when one exists (restarted if the server
    ignores Range); `dest` appears only once complete and verified (`expected_size` in bytes and
    `sha256` hex digest, when given). A failure raises DataError ending with `offline_hint`.
    """
    dest = Path(dest)
    if dest.exists():
        _verify(dest, sha256, expected_size)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        before = _size(part)
        try:
            _fetch(url, part, progress)
            break
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts: OSErrors
            if _size(part) <= before or attempt == _MAX_ATTEMPTS:
                raise DataError(_failure(url, err, part, offline_hint)) from err
    _verify(part, sha256, expected_size)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: bool) -> None:
    """Appends the rest of `url` to `part`; raises ConnectionError if the stream ends early."""
    offset = _size(part)
    headers = {"User-Agent": "jaxdl"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        request = urllib.request.Request(url, headers=headers)
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not offset:
            raise
        part.unlink()  # the range no longer fits the file on the server: start again
        return _fetch(url, part, progress)
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range and sends the whole file
        total = _total_bytes(response, offset)
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and _size(part) < total:
        raise ConnectionError(f"connection closed after {_size(part)} of {total} bytes")


def _total_bytes(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Full file size from Content-Range (partial responses) or Content-Length; None if unknown."""
    content_range = re.fullmatch(
        r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "")
    )
    if offset and content_range:
        if int(content_range[1]) != offset:
            raise ConnectionError(f"asked for bytes from {offset}, got {content_range[0]}")
        return int(content_range[2])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length else None


def _verify(path: Path, sha256: str, expected_size: int | None) -> None:
    """Deletes `path` and raises DataError if its size or SHA-256 is not the expected one."""
    size = _size(path)
    if expected_size is not None and size != expected_size:
        path.unlink()
        raise DataError(
            f"{path}: {size} bytes, expected {expected_size}; deleted it, run again to re-download"
        )
    if sha256:
        digest = hashlib.sha256()
        with open(path, "rb") as data:
            while chunk := data.read(_CHUNK_BYTES):
                digest.update(chunk)
        if digest.hexdigest() != sha256.lower():
            path.unlink()
            raise DataError(
                f"{path}: SHA-256 {digest.hexdigest()}, expected {sha256.lower()}; deleted it, "
                "run again to re-download"
            )


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _failure(url: str, err: BaseException, part: Path, offline_hint: str) -> str:
    kept = _size(part)
    resumable = f" ({kept} bytes kept in {part}: running again resumes)" if kept else ""
    return f"cannot download {url}: {_reason(err)}{resumable}. {offline_hint}"


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return str(err) or type(err).__name__


def extract_zip(archive: Path, dest_dir: Path, check: Check | None = None) -> Path:
    """Unpacks `archive` into `dest_dir` (returned), all at once: a folder already there is reused.

    `check(folder)` runs on the unpacked files before they are moved into place; if it raises,
    nothing is kept. Raises DataError naming the archive if it is missing or not a valid zip file,
    or naming the member if one would unpack outside `dest_dir` (before anything is written).
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if dest_dir.is_dir():
        return dest_dir
    if not archive.is_file():
        raise DataError(f"archive {archive} not found")
    try:
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                if _escapes(name):
                    raise DataError(
                        _unsafe_member(archive, "zip", name, f"would unpack outside {dest_dir}")
                    )
            with atomic_directory(dest_dir) as unpacking:
                zipped.extractall(unpacking)
                if check:
                    check(unpacking)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DataError(
            f"{archive} is not a valid zip archive ({err}); delete it and run again"
        ) from err
    return dest_dir


def _escapes(name: str) -> bool:
    """Whether a zip member name is absolute or climbs out (zipfile would silently rename it)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts


def _unsafe_member(archive: Path, kind: str, name: str, why: str) -> str:
    return (
        f"{archive} is not a valid {kind} archive: refused its member {name!r}, which {why}; "
        "nothing was kept. Delete the archive and check where it came from"
    )


def extract_tgz(archive: Path, dest_dir: Path, check: Check | None = None) -> Path:
    """Unpacks a .tgz into `dest_dir` (returned), all at once; a folder already there is reused.

    Members that would land outside `dest_dir` (absolute paths, `..`, symbolic or hard links out),
    device files and the like are refused: DataError naming the member, and nothing is kept.
    `check` as in `extract_zip`.
    """
    if dest_dir.is_dir():
        return dest_dir
    try:
        with tarfile.open(archive, "r:gz") as packed, atomic_directory(dest_dir) as unpacking:
            packed.extractall(unpacking, filter=_contained)
            if check:
                check(unpacking)
    except tarfile.FilterError as err:
        raise DataError(
            _unsafe_member(archive, ".tgz", err.tarinfo.name, _refused_because(err, dest_dir))
        ) from err
    except (tarfile.TarError, zlib.error, EOFError) as err:
        raise DataError(
            f"{archive} is not a valid .tgz archive ({err}); delete it and run again"
        ) from err
    return dest_dir


def _contained(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """tarfile's "data" filter, which also refuses absolute names (it would strip their "/")."""
    if PurePosixPath(member.name).is_absolute():
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


def _refused_because(err: tarfile.FilterError, dest_dir: Path) -> str:
    """Why tarfile's "data" filter refused a member, naming `dest_dir` (not the temporary
    folder)."""
    if isinstance(err, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
        return f"is a link pointing outside {dest_dir}"
    if isinstance(err, (tarfile.AbsolutePathError, tarfile.OutsideDestinationError)):
        return f"would unpack outside {dest_dir}"
    if isinstance(err, tarfile.SpecialFileError):
        return "is a device file, FIFO or other special file"
    return str(err)


def extract_archive(archive: Path, dest_dir: Path, check: Check | None = None) -> Path:
    """Unpacks a .zip, .tgz or .tar.gz archive into `dest_dir` (returned); see `extract_zip`."""
    name = Path(archive).name
    if name.endswith((".tgz", ".tar.gz")):
        return extract_tgz(archive, dest_dir, check)
    return extract_zip(archive, dest_dir, check)
