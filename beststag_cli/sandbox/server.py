"""`beststag sandbox serve`: the sandbox WSGI app on a real socket (threaded, stdlib only)."""

from __future__ import annotations

import re
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import IO, Any, cast
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .app import MAX_BODY_BYTES, DropConnection

#: an unread request body up to this size is read and thrown away after the answer (keep-alive goes on);
#: a larger one (or one whose length is unknown) gets `Connection: close` and the connection is closed
MAX_DRAIN_BYTES = MAX_BODY_BYTES
_CHUNK = 1 << 16


class _Body:
    """`wsgi.input` limited to the request's Content-Length; knows how much the app left unread.

    Keep-alive needs every request's body consumed: an error answered before the body was read
    (401, 404, 422, a fault) would otherwise leave it in the stream, to be parsed as the next
    request line (`400 Bad request syntax`)."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.left = length

    def read(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.read(n)
        self.left = 0 if not data else self.left - len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.readline(n)
        self.left = 0 if not data else self.left - len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        out = []
        while line := self.readline():
            out.append(line)
        return out

    def __iter__(self) -> Any:
        return iter(self.readlines())

    def drain(self) -> bool:
        """Read and drop what the app did not read; False when the stream ended first."""
        while self.left > 0:
            if not self.read(min(_CHUNK, self.left)):
                return False
        return True


class _ServerHandler(ServerHandler):
    #: set when the connection must close after this answer (body too large to drain, or unframed)
    close_after = False
    # set by BaseHandler (start_response, finish_response); typeshed does not declare them
    headers: Headers
    status: str | None

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if self.close_after:
            self.headers["Connection"] = "close"

    def handle_error(self) -> None:
        # wsgiref answers 500 for any exception; a fault-injected drop must close the socket instead
        if isinstance(sys.exc_info()[1], DropConnection):
            raise DropConnection()
        super().handle_error()

    def close(self) -> None:
        if self.status is None:  # dropped before any answer: nothing to log as a status
            self.status = "000 Dropped"
        super().close()


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI logs instead
        pass

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["REQUEST_URI"] = re.sub(r"^([^?]*[^/?])/+(?=\?|$)", r"\1", self.path)  # airtable.js: POST /Tbl/
        return env

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        length, framed = _body_length(self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"))
        body = _Body(self.rfile, length)
        wfile = cast(IO[bytes], self.wfile)  # a BufferedIOBase: what wsgiref writes to
        handler = _ServerHandler(body, wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.http_version = "1.1"
        if not framed or length > MAX_DRAIN_BYTES:
            handler.close_after = True
            self.close_connection = True
        try:
            handler.run(self.server.get_app())  # type: ignore[attr-defined]
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if not self.close_connection and not body.drain():
            self.close_connection = True

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()


def _body_length(content_length: str | None, transfer_encoding: str | None) -> tuple[int, bool]:
    """(bytes of body, whether that length is known): chunked or a malformed length cannot be framed."""
    if transfer_encoding is not None and transfer_encoding.strip().lower() != "identity":
        return 0, False
    if content_length is None:
        return 0, True
    text = content_length.strip()
    if not text.isascii() or not text.isdigit():
        return 0, False
    return int(text), True


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8765) -> WSGIServer:
    server = _ThreadingServer((host, port), _Handler)
    server.set_app(app)
    return server


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> tuple[WSGIServer, threading.Thread]:
    """Start a server on a free port in a daemon thread (tests); returns (server, thread)."""
    server = make_server(app, host, port)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return server, t
