"""`sandbox serve` keeps a keep-alive connection usable after an error answered before the body was read."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from beststag_cli.sandbox import SANDBOX_BASE_ID, FaultConfig, Sandbox
from beststag_cli.sandbox import app as app_mod
from beststag_cli.sandbox import server as server_mod
from beststag_cli.sandbox.server import serve_in_thread

BASE = SANDBOX_BASE_ID
USERS = "/v0/" + BASE + "/Usu%C3%A1rios"
AUTH = {"Authorization": "Bearer sandbox"}
BODY = json.dumps({"fields": {"Nome": "keep-alive " + "x" * 3000}}).encode()  # larger than one read


@pytest.fixture
def port(sandbox: Sandbox) -> Iterator[int]:
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def _ask(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, Any]:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return resp, json.loads(data) if data else None


# (what is wrong, method, path, headers, expected status): each answered before the app reads the body
EARLY_ERRORS = [
    ("no token", "POST", USERS, {}, 401),
    ("wrong token", "PATCH", USERS, {"Authorization": "Bearer nope"}, 401),
    ("unknown base", "POST", "/v0/appNoSuchBase00000/Usu%C3%A1rios", AUTH, 403),
    ("unknown route", "POST", "/v1/nothing/here", AUTH, 404),
    ("GET with a body", "GET", USERS + "?maxRecords=1&bogus=1", AUTH, 422),
    ("unknown comment", "DELETE", USERS + "/recNoSuchRecord000/comments/comNoSuchComment00", AUTH, 404),
    ("a comment without text", "POST", USERS + "/recNoSuchRecord000/comments", AUTH, 422),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "headers", "status"), EARLY_ERRORS, ids=[e[0] for e in EARLY_ERRORS]
)
def test_the_next_request_on_the_connection_gets_a_proper_answer(
    port: int, what: str, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        first, err = _ask(conn, method, path, BODY, headers)
        assert first.status == status, err
        assert not first.will_close  # the body was drained: the connection stays open
        sock = conn.sock
        second, page = _ask(conn, "GET", USERS + "?maxRecords=2", headers=AUTH)
        assert conn.sock is sock  # the same TCP connection answered
        assert second.status == 200, page
        assert len(page["records"]) == 2
        third, created = _ask(conn, "POST", USERS, BODY, AUTH)  # a write with a body, read in full, still fine
        assert third.status == 200, created
        assert created["fields"]["Nome"].startswith("keep-alive ")
    finally:
        conn.close()


def test_a_fault_answered_before_the_body_keeps_the_connection(port: int, sandbox: Sandbox) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        sandbox.app.set_faults(FaultConfig(rate_503=1.0))
        first, err = _ask(conn, "POST", USERS, BODY, AUTH)
        assert first.status == 503 and err["error"]["type"] == "RETRIABLE_ERROR"
        sandbox.app.set_faults(FaultConfig())
        second, created = _ask(conn, "POST", USERS, BODY, AUTH)
        assert second.status == 200, created
        assert created["id"].startswith("rec")
    finally:
        conn.close()


def test_a_body_too_large_to_drain_closes_the_connection_and_says_so(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "MAX_DRAIN_BYTES", 100)  # not 16 MB of test traffic
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        first, _ = _ask(conn, "POST", USERS, BODY)
        assert first.status == 401
        assert first.getheader("Connection", "").lower() == "close" and first.will_close
        # http.client opens a new connection for the next request: it gets a proper answer
        second, page = _ask(conn, "GET", USERS + "?maxRecords=1", headers=AUTH)
        assert second.status == 200 and len(page["records"]) == 1
    finally:
        conn.close()


def test_a_413_answered_before_the_body_keeps_the_connection(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # the app refuses the body by its Content-Length, unread; the server (limit unchanged) drains it
    monkeypatch.setattr(app_mod, "MAX_BODY_BYTES", 100)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        first, err = _ask(conn, "POST", USERS, BODY, AUTH)
        assert first.status == 413 and err["error"]["type"] == "REQUEST_TOO_LARGE"
        assert not first.will_close
        sock = conn.sock
        second, page = _ask(conn, "GET", USERS + "?maxRecords=1", headers=AUTH)
        assert conn.sock is sock
        assert second.status == 200 and len(page["records"]) == 1
    finally:
        conn.close()
