"""Downloads from a real local HTTP server (Range, dropped connections) and zip extraction."""

import contextlib
import hashlib
import http.server
import io
import re
import socket
import threading
import time
import zipfile

import pytest

from jaxdl.data import download
from jaxdl.data.esc50 import read_metadata
from jaxdl.errors import DataError

CSV_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def _esc50_zip() -> bytes:
    """A two-clip archive in the official layout (ESC-50-master/meta, ESC-50-master/audio)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ESC-50-master/meta/esc50.csv",
                         CSV_HEADER + "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
                         "5-9032-A-0.wav,5,0,dog,True,9032,A\n")
        archive.writestr("ESC-50-master/audio/1-100032-A-0.wav", bytes(range(256)) * 200)
        archive.writestr("ESC-50-master/audio/5-9032-A-0.wav", bytes(range(255, -1, -1)) * 200)
    return buffer.getvalue()


class ArchiveServer:
    """Serves `payload` at /archive.zip (or 404 if `not_found`); honours Range unless
    `ignore_range`; can drop the first response after `drop_after` bytes. Records each request's
    Range header."""

    def __init__(self, payload: bytes, *, drop_after: int | None = None, ignore_range: bool = False,
                 not_found: bool = False):
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
            server.url, tmp_path / "dl" / "ESC-50-master.zip", sha256=_sha256(payload),
            expected_size=len(payload), progress=False,
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
        dest = download.download_file(server.url, tmp_path / "a.zip", sha256=_sha256(payload),
                                      progress=False)
    assert dest.read_bytes() == payload
    assert server.ranges == [None, "bytes=1000-"]


def test_existing_part_file_is_resumed(tmp_path):
    payload = _esc50_zip()
    (tmp_path / "a.zip.part").write_bytes(payload[:777])
    with ArchiveServer(payload) as server:
        dest = download.download_file(server.url, tmp_path / "a.zip", sha256=_sha256(payload),
                                      progress=False)
    assert dest.read_bytes() == payload and server.ranges == ["bytes=777-"]


def test_server_ignoring_range_restarts_from_scratch(tmp_path):
    payload = _esc50_zip()
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes from another file")
    with ArchiveServer(payload, ignore_range=True) as server:
        dest = download.download_file(server.url, tmp_path / "a.zip", sha256=_sha256(payload),
                                      progress=False)
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
    with ArchiveServer(b"", not_found=True) as server, pytest.raises(DataError, match="HTTP Error 404"):
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
