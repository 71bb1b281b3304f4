"""The wire trap: an HTTP proxy on loopback that answers every request with 403 and remembers it.

`tests/conftest.py` points HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (both cases) at it for every test, with
NO_PROXY for loopback (the servers tests start themselves: `sandbox serve`, redis, moto). Anything
a test or a subprocess it started sends to another host (plain HTTP as an absolute-form request,
HTTPS as CONNECT) reaches the trap instead, and the test fails at teardown naming method, host and
path. The proxy URL carries a per-test tag as its user name, so requests from subprocesses (which
inherit the environment) are attributed to the test that started them.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
LOOPBACK = "127.0.0.1,localhost,::1"


@dataclass(frozen=True)
class Hit:
    """One request the trap received."""

    tag: str
    method: str
    host: str
    path: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _trap(self) -> None:
        method, target = self.command, self.path
        if method == "CONNECT":
            host, path = target, ""
        elif "://" in target:
            parts = urlsplit(target)
            host = parts.netloc
            path = parts.path + ("?" + parts.query if parts.query else "")
        else:
            host, path = self.headers.get("Host", "?"), target
        self.server.trap.record(Hit(_tag(self.headers.get("Proxy-Authorization")), method, host, path))
        body = b"blocked by the beststag test wire trap: no test may talk to another host\n"
        self.send_response(403, "Blocked by the wire trap")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_CONNECT = _trap


def _tag(header: str | None) -> str:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(value.strip()).decode("utf-8", "replace").partition(":")[0]
    except ValueError:
        return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    trap: WireTrap


class WireTrap:
    """Start once per test session (per xdist worker); `mark()` before a test, `hits_since(mark)` after."""

    def __init__(self) -> None:
        self._hits: list[Hit] = []
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.trap = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="wire-trap"
        )
        self._thread.start()

    def new_tag(self, name: str) -> str:
        """A URL-safe tag for the test called `name` (its node id), shown with the hits it caused."""
        with self._lock:
            tag = f"t{len(self._names) + 1}"
            self._names[tag] = name
            return tag

    def describe(self, hit: Hit) -> str:
        origin = self._names.get(hit.tag, "a client that sent no proxy credentials" if not hit.tag else hit.tag)
        return f"{hit.method} {hit.host}{hit.path}  (from {origin})"

    def proxy_url(self, tag: str) -> str:
        return f"http://{tag}:trap@127.0.0.1:{self.port}"

    def environ(self, tag: str) -> dict[str, str]:
        """The proxy variables a test (and every subprocess it starts) runs with."""
        url = self.proxy_url(tag)
        return {**{k: url for k in PROXY_VARS}, **{k: LOOPBACK for k in NO_PROXY_VARS}}

    def record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    def mark(self) -> int:
        with self._lock:
            return len(self._hits)

    def hits_since(self, mark: int) -> list[Hit]:
        with self._lock:
            return list(self._hits[mark:])

    def forget_since(self, mark: int) -> list[Hit]:
        """Take the hits since `mark` out of the record (the trap's own tests, which leak on purpose)."""
        with self._lock:
            out = self._hits[mark:]
            del self._hits[mark:]
            return out

    def check(self, mark: int) -> None:
        """AssertionError naming every request the trap received since `mark`."""
        hits = self.hits_since(mark)
        if hits:
            shown = "\n  ".join(self.describe(h) for h in hits[:20])
            raise AssertionError(f"the wire trap received {len(hits)} request(s) meant for another host:\n  {shown}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
