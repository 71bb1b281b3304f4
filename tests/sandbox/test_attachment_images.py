"""Attachments given by URL: loopback and data: URLs are read at once (size, type, image size and
thumbnails); other URLs keep what Airtable answers before its download finishes."""

from __future__ import annotations

import base64
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox import SANDBOX_BASE_ID
from beststag_cli.sandbox.images import probe, thumbnail_sizes
from beststag_cli.sandbox.localfetch import is_loopback_url

BASE = SANDBOX_BASE_ID
SIDES = st.integers(min_value=1, max_value=5000)
SETTINGS = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------- images made here, byte by byte


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(w: int, h: int, pixels: bool = False) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))  # 8-bit greyscale
    idat = _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + b"\x80" * w for _ in range(h)) if pixels else b""))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + _chunk(b"IEND", b"")


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00;"


def jpeg(w: int, h: int, progressive: bool = False) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes(range(64))
    sof = b"\xff" + (b"\xc2" if progressive else b"\xc0") + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + dqt + sof + b"\xff\xd9"


def webp_lossless(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    payload = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 8
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(payload)) + b"WEBPVP8L" + struct.pack("<I", len(payload)) + payload


def webp_lossy(w: int, h: int) -> bytes:
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + b"\x00" * 10
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(frame)) + b"WEBPVP8 " + struct.pack("<I", len(frame)) + frame


def webp_extended(w: int, h: int) -> bytes:
    payload = b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(payload)) + b"WEBPVP8X" + struct.pack("<I", len(payload)) + payload


@SETTINGS
@given(SIDES, SIDES)
def test_probe_reads_every_format_header(w: int, h: int) -> None:
    assert probe(png(w, h)) == ("image/png", w, h)
    assert probe(jpeg(w, h)) == ("image/jpeg", w, h)
    assert probe(jpeg(w, h, progressive=True)) == ("image/jpeg", w, h)
    assert probe(webp_lossless(w, h)) == ("image/webp", w, h)
    assert probe(webp_extended(w, h)) == ("image/webp", w, h)
    if w < 2**14 and h < 2**14:
        assert probe(webp_lossy(w, h)) == ("image/webp", w, h)
    if w < 2**16 and h < 2**16:
        assert probe(gif(w, h)) == ("image/gif", w, h)


@SETTINGS
@given(st.binary(max_size=64))
def test_probe_never_raises_and_refuses_non_images(data: bytes) -> None:
    found = probe(data)
    assert found is None or (found[1] > 0 and found[2] > 0)
    assert probe(b"%PDF-1.4" + data) is None
    # a truncated header is not an image
    assert probe(png(10, 10)[:20]) is None
    assert probe(jpeg(10, 10)[:30]) is None


@SETTINGS
@given(SIDES, SIDES)
def test_thumbnails_keep_the_aspect_and_never_enlarge(w: int, h: int) -> None:
    sizes = thumbnail_sizes(w, h)
    assert set(sizes) == {"small", "large", "full"}
    assert sizes["small"][1] == min(h, 36)
    assert sizes["large"][0] <= max(w, 1) and sizes["large"][1] <= h
    assert max(sizes["large"]) <= 512 and max(sizes["full"]) <= 3000
    for tw, th in sizes.values():
        assert tw >= 1 and th >= 1
        # rounding moves each side by at most half a pixel of the scaled size
        assert abs(tw * h - th * w) <= (w + h)


def test_loopback_urls_only() -> None:
    assert is_loopback_url("http://127.0.0.1:9/x.png")
    assert is_loopback_url("http://127.8.9.10/x.png")
    assert is_loopback_url("http://localhost:8080/a")
    assert is_loopback_url("http://[::1]:8080/a")
    for url in ("https://example.com/x.png", "http://10.0.0.1/x", "http://192.168.1.1/x", "ftp://127.0.0.1/x"):
        assert not is_loopback_url(url)
    assert not is_loopback_url("http://127.0.0.1.example.com/x")


# ---------------------------------------------------------------- through pyairtable


class _Files(BaseHTTPRequestHandler):
    files: dict[str, tuple[str, bytes]] = {}

    def do_GET(self) -> None:
        if self.path.startswith("/redirect-away"):
            self.send_response(302)
            self.send_header("Location", "https://example.com/x.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in self.files:
            self.send_error(404)
            return
        ctype, body = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[tuple[str, dict[str, tuple[str, bytes]]]]:
    served: dict[str, tuple[str, bytes]] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Files,), {"files": served}))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def _attach(api: Any, url: str, filename: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    table = api.table(BASE, "Tarefas")
    spec: dict[str, Any] = {"url": url} | ({"filename": filename} if filename else {})
    created = table.create({"Título": "anexo por URL", "anexos": [spec]})
    return created["fields"]["anexos"][0], table.get(created["id"])["fields"]["anexos"][0]


@pytest.mark.parametrize(
    ("make", "mime"), [(png, "image/png"), (jpeg, "image/jpeg"), (gif, "image/gif"), (webp_lossless, "image/webp")]
)
def test_loopback_image_url_gets_size_type_dimensions_and_thumbnails(api, files, make, mime) -> None:  # type: ignore[no-untyped-def]
    root, served = files
    body = make(640, 480)
    served["/pics/photo"] = ("application/octet-stream", body)  # the header, not the server, says image
    created, got = _attach(api, root + "/pics/photo", "photo.bin")
    for att in (created, got):
        assert att["filename"] == "photo.bin"
        assert att["size"] == len(body) and att["type"] == mime
        assert (att["width"], att["height"]) == (640, 480)
        assert {n: (t["width"], t["height"]) for n, t in att["thumbnails"].items()} == {
            "small": (48, 36),
            "large": (512, 384),
            "full": (640, 480),
        }
        assert api.session.get(att["url"]).content == body
        assert all(api.session.get(t["url"]).content == body for t in att["thumbnails"].values())


def test_loopback_non_image_keeps_server_type_and_no_image_keys(api, files) -> None:  # type: ignore[no-untyped-def]
    root, served = files
    served["/doc/notes.txt"] = ("text/plain; charset=utf-8", b"ola mundo")
    _, got = _attach(api, root + "/doc/notes.txt")
    assert got["filename"] == "notes.txt" and got["type"] == "text/plain" and got["size"] == 9
    assert "width" not in got and "thumbnails" not in got
    assert api.session.get(got["url"]).content == b"ola mundo"


def test_data_url_image_gets_dimensions(api) -> None:  # type: ignore[no-untyped-def]
    body = png(100, 20, pixels=True)
    url = "data:image/png;base64," + base64.b64encode(body).decode()
    _, got = _attach(api, url, "strip.png")
    assert (got["type"], got["size"], got["width"], got["height"]) == ("image/png", len(body), 100, 20)
    assert got["thumbnails"]["small"]["height"] == 20  # never enlarged


def test_remote_url_is_never_fetched_and_answers_as_airtable_before_download(api, wire_trap) -> None:  # type: ignore[no-untyped-def]
    created, got = _attach(api, "https://example.com/files/logo.png")
    for att in (created, got):
        assert set(att) == {"id", "url", "filename"}
        assert att["id"].startswith("att") and att["url"] == "https://example.com/files/logo.png"
        assert att["filename"] == "logo.png"
    # the wire trap fails this test at teardown if anything left loopback


def test_unreachable_or_redirected_loopback_url_stays_pending(api, files) -> None:  # type: ignore[no-untyped-def]
    root, _ = files
    _, missing = _attach(api, root + "/nothing-here.png")
    _, away = _attach(api, root + "/redirect-away.png")
    for att in (missing, away):
        assert set(att) == {"id", "url", "filename"}
