"""Helpers for operations tests: a tiny HTTP server that records pings, the JSON log, a config file."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


class PingServer:
    """Records every request; answers `status` (per path prefix), or sleeps on paths under /slow."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append(
                    {"method": self.command, "path": self.path, "body": json.loads(body) if body else None}
                )
                if self.path.startswith("/slow"):
                    time.sleep(1.0)
                code = next((c for p, c in outer.status.items() if self.path.startswith(p)), 200)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                except OSError:  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def ping_server() -> Iterator[PingServer]:
    s = PingServer()
    yield s
    s.close()


def log_lines(data_dir: Path) -> list[dict[str, Any]]:
    """Every JSON line of the log, rotated files first (oldest first)."""
    logs = data_dir / "logs"
    files = sorted(logs.glob("beststag.jsonl.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    files = [f for f in files if f.suffix[1:].isdigit()] + [logs / "beststag.jsonl"]
    out = []
    for f in files:
        if f.exists():
            out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def job_lines(data_dir: Path, event: str | None = None) -> list[dict[str, Any]]:
    return [
        x
        for x in log_lines(data_dir)
        if str(x.get("event", "")).startswith("job.") and (event is None or x["event"] == event)
    ]


def write_config(tmp_path: Path, text: str) -> Path:
    """A config file holding only `text` (every other setting keeps its default)."""
    p = tmp_path / "ops-config.yaml"
    p.write_text(text, encoding="utf-8")
    return p
