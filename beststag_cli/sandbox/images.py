"""Image size from a file's first bytes (PNG, JPEG, GIF, WebP) and Airtable's thumbnail sizes.

Attachments that are images carry ``width``/``height`` and ``thumbnails`` in Airtable's answers
(shared/reference/airtable-api.md §4.4). Only the headers are read: no decoder, no new dependency
(Pillow would earn its place only if the sandbox had to produce real resized thumbnails).
"""

from __future__ import annotations

import struct

#: what :func:`probe` answers: (MIME type, width, height)
Probe = tuple[str, int, int]

# Thumbnail boxes. Airtable documents the three names and that each is optional; its answers show
# `small` 36 px high, `large` within 512×512 and `full` within 3000×3000, never enlarged (❓ the exact
# rule is undocumented; aspect ratio kept, sizes rounded).
SMALL_HEIGHT = 36
LARGE_BOX = 512
FULL_BOX = 3000


def probe(data: bytes) -> Probe | None:
    """(type, width, height) of a PNG, JPEG, GIF or WebP image; None for anything else or a header
    too damaged to read."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return _ok("image/png", w, h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return _ok("image/gif", w, h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
    except (struct.error, IndexError):
        return None
    return None


def _ok(mime: str, w: int, h: int) -> Probe | None:
    return (mime, w, h) if w > 0 and h > 0 else None


def _webp(data: bytes) -> Probe | None:
    kind = data[12:16]
    if kind == b"VP8 ":  # lossy: frame header after a 3-byte tag and the start code 9d 01 2a
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack("<HH", data[26:30])
        return _ok("image/webp", w & 0x3FFF, h & 0x3FFF)
    if kind == b"VP8L":  # lossless: signature 0x2f, then 14-bit width-1 and height-1
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return _ok("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return _ok("image/webp", w, h)
    return None


# JPEG start-of-frame markers (baseline, progressive, …) carry the size; C4, C8 and CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> Probe | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return _ok("image/jpeg", w, h)
        if marker == 0xD9 or length < 2:
            return None
        i += 2 + length
    return None


def _fit(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / w, box_h / h, 1.0)
    return max(1, round(w * scale)), max(1, round(h * scale))


def thumbnail_sizes(width: int, height: int) -> dict[str, tuple[int, int]]:
    """Airtable's thumbnail names → (width, height) for an image of that size."""
    small_w = max(1, round(width * SMALL_HEIGHT / height)) if height > SMALL_HEIGHT else width
    return {
        "small": (small_w, min(height, SMALL_HEIGHT)),
        "large": _fit(width, height, LARGE_BOX, LARGE_BOX),
        "full": _fit(width, height, FULL_BOX, FULL_BOX),
    }


def image_dimensions(data: bytes, content_type: str) -> dict[str, int]:
    """``width``/``height`` to keep with a stored attachment whose bytes are an image (else nothing)."""
    found = probe(data)
    if found is None:
        return {}
    return {"width": found[1], "height": found[2]}


def image_json(att: dict[str, object], url: str) -> dict[str, object]:
    """The image keys of an attachment's answer: width, height and thumbnails. Every thumbnail's URL is
    the file itself (the sandbox does not resize: a deliberate gap, see docs/sandbox.md)."""
    w, h = att.get("width"), att.get("height")
    if not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
        return {}
    thumbs = {name: {"url": url, "width": tw, "height": th} for name, (tw, th) in thumbnail_sizes(w, h).items()}
    return {"width": w, "height": h, "thumbnails": thumbs}


def attachment_type(filename: str, fetched: tuple[bytes, str | None]) -> str:
    """The type of fetched content: an image's own header first, then the server's Content-Type, then
    the file name's extension."""
    import mimetypes

    data, header = fetched
    found = probe(data)
    if found is not None:
        return found[0]
    if header and header != "application/octet-stream":
        return header
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
