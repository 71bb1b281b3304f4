"""`beststag sandbox serve`: the sandbox WSGI app on a real socket (threaded, stdlib only)."""

from __future__ import annotations

import re
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .app import DropConnection


class _ServerHandler(ServerHandler):
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
        handler = _ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                multithread=True)
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.http_version = "1.1"
        try:
            handler.run(self.server.get_app())  # type: ignore[attr-defined]
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()


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
