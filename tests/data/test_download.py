"""Downloads from a real local HTTP server (Range, dropped connections, checksums), archive
extraction that keeps every member inside its folder, and the ESC-50 layout check."""

import concurrent.futures
import contextlib
import csv
import dataclasses
import functools
import hashlib
import http.server
import importlib.resources
import io
import pathlib
import re
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

import pytest

from jaxdl.data import cub200, download, esc50, locate
from jaxdl.data.esc50 import read_metadata
from jaxdl.data.esc50_layout import verify_esc50_layout
from jaxdl.data.synthetic import CATEGORIES, CSV_COLUMNS
from jaxdl.errors import DataError
from tests.helpers import REPO, load_config

CSV_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def _esc50_zip() -> bytes:
    """A two-clip archive in the official layout (ESC-50-master/meta, ESC-50-master/audio)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "ESC-50-master/meta/esc50.csv",
            CSV_HEADER + "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
            "5-9032-A-0.wav,5,0,dog,True,9032,A\n",
        )
        archive.writestr("ESC-50-master/audio/1-100032-A-0.wav", bytes(range(256)) * 200)
        archive.writestr("ESC-50-master/audio/5-9032-A-0.wav", bytes(range(255, -1, -1)) * 200)
    return buffer.getvalue()


class ArchiveServer:
    """Serves `payload` at /archive.zip (or 404 if `not_found`); honours Range unless
    `ignore_range`; can drop the first response after `drop_after` bytes. Records each request's
    Range header."""

    def __init__(
        self,
        payload: bytes,
        *,
        drop_after: int | None = None,
        ignore_range: bool = False,
        not_found: bool = False,
    ):
        self.payload, self.drop_after, self.ignore_range = payload, drop_after, ignore_range
        self.not_found = not_found
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                if server.not_found:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", requested or "")
                size = len(server.payload)
                if match and not server.ignore_range:
                    start = int(match[1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                body = server.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_after is not None and len(server.ranges) == 1:
                    self.wfile.write(body[: server.drop_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/archive.zip"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verify_and_extract_official_layout(tmp_path):
    payload = _esc50_zip()
    with ArchiveServer(payload) as server:
        archive = download.download_file(
            server.url,
            tmp_path / "dl" / "ESC-50-master.zip",
            sha256=_sha256(payload),
            expected_size=len(payload),
            progress=False,
        )
    assert archive.read_bytes() == payload
    assert not archive.with_name(archive.name + ".part").exists()
    unpacked = download.extract_zip(archive, tmp_path / "ESC-50")
    records = read_metadata(unpacked / "ESC-50-master")
    assert [record.filename for record in records] == ["1-100032-A-0.wav", "5-9032-A-0.wav"]
    assert (unpacked / "ESC-50-master" / "audio" / "5-9032-A-0.wav").is_file()
    assert [path for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temp left


def test_dropped_connection_is_resumed_with_a_range_request(tmp_path):
    payload = _esc50_zip()
    with ArchiveServer(payload, drop_after=1000) as server:
        dest = download.download_file(
            server.url, tmp_path / "a.zip", sha256=_sha256(payload), progress=False
        )
    assert dest.read_bytes() == payload
    assert server.ranges == [None, "bytes=1000-"]


def test_existing_part_file_is_resumed(tmp_path):
    payload = _esc50_zip()
    (tmp_path / "a.zip.part").write_bytes(payload[:777])
    with ArchiveServer(payload) as server:
        dest = download.download_file(
            server.url, tmp_path / "a.zip", sha256=_sha256(payload), progress=False
        )
    assert dest.read_bytes() == payload and server.ranges == ["bytes=777-"]


def test_server_ignoring_range_restarts_from_scratch(tmp_path):
    payload = _esc50_zip()
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes from another file")
    with ArchiveServer(payload, ignore_range=True) as server:
        dest = download.download_file(
            server.url, tmp_path / "a.zip", sha256=_sha256(payload), progress=False
        )
    assert dest.read_bytes() == payload


def test_wrong_checksum_raises_and_leaves_no_file(tmp_path):
    payload = _esc50_zip()
    wrong = "0" * 64
    with ArchiveServer(payload) as server, pytest.raises(DataError) as raised:
        download.download_file(server.url, tmp_path / "a.zip", sha256=wrong, progress=False)
    assert wrong in str(raised.value) and _sha256(payload) in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_raises_and_leaves_no_file(tmp_path):
    payload = _esc50_zip()
    too_small = f"{len(payload)} bytes, expected 12"
    with ArchiveServer(payload) as server, pytest.raises(DataError, match=too_small):
        download.download_file(server.url, tmp_path / "a.zip", expected_size=12, progress=False)
    assert list(tmp_path.iterdir()) == []


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/master.zip"


def test_unreachable_server_fails_fast_and_says_how_to_work_offline(tmp_path):
    started = time.monotonic()
    with pytest.raises(DataError, match=r"data\.dir.*data\.source=synthetic"):
        download.download_file(closed_port_url(), tmp_path / "x.zip", progress=False)
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_data_error(tmp_path):
    with (
        ArchiveServer(b"", not_found=True) as server,
        pytest.raises(DataError, match="HTTP Error 404"),
    ):
        download.download_file(server.url, tmp_path / "x.zip", progress=False)


def test_bad_zip_raises_and_leaves_no_folder(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_esc50_zip()[:300])
    with pytest.raises(DataError, match="bad.zip"):
        download.extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_extract_reuses_existing_folder(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_esc50_zip())
    out = download.extract_zip(archive, tmp_path / "out")
    archive.unlink()
    assert download.extract_zip(archive, tmp_path / "out") == out


# ---------------------------------------------------------------- pinned checksums


def test_cub200_pin_is_the_tfds_checksum_of_the_configured_archive():
    """The pinned SHA-256 and the checked size are TFDS's figures for the same caltech.edu file."""
    config = load_config("cub200")
    tfds_files = importlib.resources.files("tensorflow_datasets")
    listing = tfds_files / "url_checksums" / "caltech_birds2011.txt"
    entries = [line.split("\t") for line in listing.read_text().splitlines()]
    ((size, sha256),) = [
        (int(size), sha) for url, size, sha, *_ in entries if url.split("?")[0] == config.data.url
    ]
    assert (config.data.sha256, cub200.SOURCE.expected_size) == (sha256, size)


def test_substitute_archive_for_a_pinned_checksum_is_refused_and_deleted(tmp_path):
    """A CUB download of the right size but other bytes: DataError with both digests, no file."""
    payload = _tgz({"CUB_200_2011/images.txt": b"1 001.A/a.jpg\n"})
    config = load_config("cub200")
    config.data.cache_dir = str(tmp_path / "cache")
    source = dataclasses.replace(cub200.SOURCE, expected_size=len(payload))
    with ArchiveServer(payload) as server, pytest.raises(DataError) as raised:
        config.data.url = server.url
        locate.dataset_dir(config, source)
    assert f"SHA-256 {_sha256(payload)}, expected {config.data.sha256}" in str(raised.value)
    assert "deleted it" in str(raised.value)
    assert list((tmp_path / "cache").rglob("*.tgz*")) == []
    assert not (tmp_path / "cache" / "CUB-200-2011").exists()


# ---------------------------------------------------------------- members outside the target


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tgz(members: dict[str, bytes], *extra: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        for member in extra:
            archive.addfile(member)
    return buffer.getvalue()


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


def _device(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.devmajor, member.devminor = tarfile.CHRTYPE, 1, 3
    return member


@pytest.mark.parametrize(
    "name",
    [
        "../escaped.txt",
        "ESC-50-master/../../escaped.txt",
        "ABSOLUTE/escaped.txt",
        "..\\escaped.txt",
    ],
)
def test_zip_member_outside_the_target_is_refused_before_unpacking(tmp_path, name):
    name = name.replace("ABSOLUTE", str(tmp_path))
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"ESC-50-master/meta/esc50.csv": b"x", name: b"x"}))
    with pytest.raises(DataError) as raised:
        download.extract_archive(archive, tmp_path / "work" / "out")
    message = str(raised.value)
    assert f"{archive} is not a valid zip archive: refused its member {name!r}" in message
    assert f"would unpack outside {tmp_path / 'work' / 'out'}" in message
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["evil.zip"]  # nothing unpacked


@pytest.mark.parametrize(
    ("members", "extra", "refused", "why"),
    [
        ({"../escaped.txt": b"x"}, (), "../escaped.txt", "would unpack outside"),
        ({"ABSOLUTE/escaped.txt": b"x"}, (), "ABSOLUTE/escaped.txt", "would unpack outside"),
        ({}, (_link("d/up", "../../escaped.txt", tarfile.SYMTYPE),), "d/up", "is a link pointing"),
        ({}, (_link("d/abs", "/etc/passwd", tarfile.SYMTYPE),), "d/abs", "is a link pointing"),
        ({}, (_link("d/hard", "../escaped.txt", tarfile.LNKTYPE),), "d/hard", "is a link pointing"),
        ({}, (_device("d/null"),), "d/null", "is a device file"),
    ],
    ids=["dot-dot", "absolute", "symlink-up", "symlink-absolute", "hardlink-up", "device"],
)
def test_tar_member_outside_the_target_is_refused(tmp_path, members, extra, refused, why):
    members = {name.replace("ABSOLUTE", str(tmp_path)): data for name, data in members.items()}
    refused = refused.replace("ABSOLUTE", str(tmp_path))
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(_tgz({"CUB_200_2011/images.txt": b"1 a.jpg\n", **members}, *extra))
    with pytest.raises(DataError) as raised:
        download.extract_archive(archive, tmp_path / "work" / "out")
    message = str(raised.value)
    assert (
        f"{archive} is not a valid .tgz archive: refused its member {refused!r}, which {why}"
        in message
    )
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["evil.tgz", "work"]  # no temp left


# ---------------------------------------------------------------- ESC-50 layout check

SMALL = dict(categories=CATEGORIES[:2], clips_per_category=5, frames=441)  # 2 classes x 5 x 10 ms


def _silent_wav(path: pathlib.Path, sample_rate: int, frames: int) -> None:
    """A valid 16-bit mono PCM WAV of silence; the samples are a sparse hole (no disk blocks)."""
    data_bytes = frames * 2
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
    with open(path, "wb") as wav:
        wav.write(header)
        wav.truncate(len(header) + data_bytes)


def _esc50_layout(
    folder: pathlib.Path,
    *,
    categories=CATEGORIES,
    clips_per_category: int = 40,
    sample_rate: int = 44_100,
    frames: int = 220_500,
) -> pathlib.Path:
    """`folder` in the official layout: meta/esc50.csv and audio/{fold}-{id}-A-{target}.wav, the
    clips of each category spread evenly over folds 1-5 (official figures by default)."""
    (folder / "audio").mkdir(parents=True)
    (folder / "meta").mkdir()
    rows = []
    for target, category in enumerate(categories):
        for take in range(clips_per_category):
            fold, src = take % 5 + 1, 100_000 + len(rows)
            filename = f"{fold}-{src}-A-{target}.wav"
            _silent_wav(folder / "audio" / filename, sample_rate, frames)
            rows.append((filename, fold, target, category, False, src, "A"))
    with open(folder / "meta" / "esc50.csv", "w", newline="") as listing:
        csv.writer(listing).writerows([CSV_COLUMNS, *rows])
    return folder


def _edit_csv(folder: pathlib.Path, line: int, column: str, value: str) -> None:
    path = folder / "meta" / "esc50.csv"
    rows = list(csv.reader(path.open(newline="")))
    rows[line - 1][CSV_COLUMNS.index(column)] = value
    with open(path, "w", newline="") as listing:
        csv.writer(listing).writerows(rows)


def _first_clip(folder: pathlib.Path) -> pathlib.Path:
    return folder / "audio" / "1-100000-A-0.wav"


def test_official_layout_passes_and_its_check_is_cheap(tmp_path):
    folder = _esc50_layout(tmp_path / "ESC-50-master")  # 2000 clips of 5 s, as the official one
    started = time.monotonic()
    verify_esc50_layout(folder)
    assert time.monotonic() - started < 5  # 2000 WAV headers: ~0.2 s measured on 2 CPU cores


def test_official_check_refuses_a_22khz_copy_naming_the_format(tmp_path):
    """The right files and rows, resampled to 22.05 kHz (same 5 s): every clip is named as wrong."""
    folder = _esc50_layout(tmp_path / "ESC-50-master", sample_rate=22_050, frames=110_250)
    with pytest.raises(DataError) as raised:
        verify_esc50_layout(folder)
    assert str(raised.value) == (
        "not the official ESC-50 layout: clips other than 44100 Hz, 1 channel, PCM_16, 220500 "
        "frames (5 s) (2000): 1-100000-A-0.wav is 22050 Hz, 1 channel, PCM_16, 110250 frames "
        "(5 s), 1-100005-A-0.wav is 22050 Hz, 1 channel, PCM_16, 110250 frames (5 s), "
        "1-100010-A-0.wav is 22050 Hz, 1 channel, PCM_16, 110250 frames (5 s), ..."
    )


def test_small_layout_passes_with_its_own_figures(tmp_path):
    verify_esc50_layout(_esc50_layout(tmp_path / "small", **SMALL), **SMALL)


def _drop_first_clip(folder):
    _first_clip(folder).unlink()
    lines = (folder / "meta" / "esc50.csv").read_text().splitlines(keepends=True)
    (folder / "meta" / "esc50.csv").write_text("".join(lines[:1] + lines[2:]))


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        (
            _drop_first_clip,
            [
                "meta/esc50.csv has 9 rows, expected 10",
                "categories without 5 clips (1 of 2): 'dog' has 4",
                "clips per fold are {1: 1, 2: 2, 3: 2, 4: 2, 5: 2}, expected 2 in each "
                "of the folds (1, 2, 3, 4, 5)",
            ],
        ),
        (
            lambda folder: _first_clip(folder).unlink(),
            ["listed clips missing from audio/ (1): 1-100000-A-0.wav"],
        ),
        (
            lambda folder: _silent_wav(folder / "audio" / "extra.wav", 44_100, 441),
            ["files in audio/ not listed in meta/esc50.csv (1): extra.wav"],
        ),
        (
            lambda folder: _silent_wav(_first_clip(folder), 22_050, 441),
            [
                "clips other than 44100 Hz, 1 channel, PCM_16, 441 frames (0.01 s) (1): "
                "1-100000-A-0.wav "
                "is 22050 Hz, 1 channel, PCM_16, 441 frames (0.02 s)"
            ],
        ),
        (
            lambda folder: _first_clip(folder).write_bytes(_first_clip(folder).read_bytes()[:244]),
            [
                "clips other than 44100 Hz, 1 channel, PCM_16, 441 frames (0.01 s) (1): "
                "1-100000-A-0.wav "
                "is 44100 Hz, 1 channel, PCM_16, 100 frames (0.00226757 s)"
            ],
        ),
        (
            lambda folder: _first_clip(folder).write_bytes(b"not a wav"),
            [
                "clips other than 44100 Hz, 1 channel, PCM_16, 441 frames (0.01 s) (1): "
                "1-100000-A-0.wav "
                "is unreadable ("
            ],
        ),
        (
            lambda folder: _edit_csv(folder, 2, "filename", "../../../etc/x.wav"),
            [
                "meta/esc50.csv line 2: filename '../../../etc/x.wav' is not a file name "
                "inside audio/",
                "listed clips missing from audio/ (1): ../../../etc/x.wav",
                "files in audio/ not listed in meta/esc50.csv (1): 1-100000-A-0.wav",
            ],
        ),
        (
            lambda folder: _edit_csv(folder, 2, "target", "7"),
            [
                "categories with another target id than the official one (1): 'dog' has 0, 7, "
                "expected 0"
            ],
        ),
        (
            lambda folder: _edit_csv(folder, 2, "category", "kazoo"),
            [
                "meta/esc50.csv has categories not in ESC-50: ['kazoo']",
                "categories without 5 clips (1 of 2): 'dog' has 4",
            ],
        ),
        (
            lambda folder: _edit_csv(folder, 2, "fold", "2"),
            ["clips per fold are {1: 1, 2: 3, 3: 2, 4: 2, 5: 2}, expected 2 in each of the folds"],
        ),
        (lambda folder: (folder / "meta" / "esc50.csv").unlink(), ["meta/esc50.csv is missing"]),
    ],
    ids=[
        "row-and-clip-removed",
        "clip-missing",
        "unlisted-file",
        "22khz-clip",
        "truncated-clip",
        "not-a-wav",
        "path-outside",
        "wrong-target",
        "unknown-category",
        "unbalanced-folds",
        "no-csv",
    ],
)
def test_layout_check_names_what_differs(tmp_path, change, problems):
    folder = _esc50_layout(tmp_path / "small", **SMALL)
    change(folder)
    with pytest.raises(DataError, match="^not the official ESC-50 layout: ") as raised:
        verify_esc50_layout(folder, **SMALL)
    for problem in problems:
        assert problem in str(raised.value)


def test_layout_check_accepts_a_byte_order_mark(tmp_path):
    """A CSV saved by a spreadsheet (UTF-8 with BOM) is the same layout, as the loader reads it."""
    folder = _esc50_layout(tmp_path / "small", **SMALL)
    path = folder / "meta" / "esc50.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    verify_esc50_layout(folder, **SMALL)


def _zipped_layout(folder: pathlib.Path) -> bytes:
    """`folder` as GitHub's master.zip holds it: everything under ESC-50-master/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"ESC-50-master/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_substitute_esc50_download_is_refused_and_nothing_is_kept(tmp_path):
    """A substitute zip (22.05 kHz clips) is refused with its problem, archive and unpacked files
    deleted; a rerun downloads again and accepts the right archive."""
    small_check = functools.partial(verify_esc50_layout, **SMALL)
    source = dataclasses.replace(esc50.SOURCE, verify=small_check)
    config = load_config("esc50")
    config.data.cache_dir = str(tmp_path / "cache")
    substitute = _zipped_layout(_esc50_layout(tmp_path / "substitute", **SMALL, sample_rate=22_050))
    with ArchiveServer(substitute) as server, pytest.raises(DataError) as raised:
        config.data.url = server.url
        locate.dataset_dir(config, source)
    archive = tmp_path / "cache" / "downloads" / "ESC-50-master.zip"
    assert str(raised.value).startswith(
        f"{archive} (downloaded from {config.data.url}) was rejected: not the official ESC-50 "
        "layout: clips other than 44100 Hz, 1 channel, PCM_16, 441 frames (0.01 s) (10): "
    )
    assert "deleted it and its unpacked files" in str(raised.value)
    kept = sorted(path.name for path in (tmp_path / "cache").iterdir())
    assert kept == [".ESC-50.lock", "downloads"]  # the lock file of the one download at a time
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
    official = _esc50_layout(tmp_path / "official", **SMALL)
    with ArchiveServer(_zipped_layout(official)) as server:
        config.data.url = server.url
        folder = locate.dataset_dir(config, source)
    assert folder == tmp_path / "cache" / "ESC-50" / "ESC-50-master"
    assert sorted(p.name for p in (folder / "audio").iterdir()) == sorted(
        p.name for p in (official / "audio").iterdir()
    )


def test_layout_check_is_not_run_on_a_data_dir_folder(tmp_path):
    """A user's own folder goes to the per-split loader checks, not the download check."""
    folder = _esc50_layout(tmp_path / "mine", **SMALL)
    config = load_config("esc50")
    config.data.dir = str(folder)
    assert locate.dataset_dir(config, esc50.SOURCE) == folder  # official figures would refuse it


def test_command_line_refuses_a_substitute_esc50_download(tmp_path):
    """`python -m jaxdl.main` on a 10-clip substitute of master.zip: rc 2, one line, no cache."""
    payload = _zipped_layout(_esc50_layout(tmp_path / "substitute", **SMALL))
    cache = tmp_path / "cache"
    with ArchiveServer(payload) as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "jaxdl.main",
                "--config",
                "configs/esc50.py",
                f"--config.data.url={server.url}",
                f"--config.data.cache_dir={cache}",
                f"--workdir={tmp_path / 'work'}",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "meta/esc50.csv has 10 rows, expected 2000" in error[0]
    assert (
        "categories without 40 clips (50 of 50): 'dog' has 5, 'rooster' has 5, 'pig' has 0, ..."
    ) in error[0]
    assert sorted(path.name for path in cache.iterdir()) == [".ESC-50.lock", "downloads"]
    assert list((cache / "downloads").iterdir()) == []


def test_two_runs_asking_for_one_download_share_it(tmp_path):
    """Two callers at once: one downloads and unpacks, the other waits and uses its folder."""
    source = dataclasses.replace(
        esc50.SOURCE, verify=functools.partial(verify_esc50_layout, **SMALL)
    )
    config = load_config("esc50")
    config.data.cache_dir = str(tmp_path / "cache")
    with ArchiveServer(_zipped_layout(_esc50_layout(tmp_path / "official", **SMALL))) as server:
        config.data.url = server.url
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            folders = list(pool.map(lambda _: locate.dataset_dir(config, source), range(2)))
    assert folders == [tmp_path / "cache" / "ESC-50" / "ESC-50-master"] * 2
    assert server.ranges == [None]  # downloaded once
