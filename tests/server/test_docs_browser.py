"""/docs on a server without Internet access: Swagger UI comes from the server itself and shows the
operations, in headless Chromium (tests/chromium.py), with no request to any other host."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.chromium import needs_chromium, watched_page


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    """The webhook app under uvicorn on a loopback port, in this process (the test's sandbox)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # listening before uvicorn starts: the browser's first connection just waits
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    t.join(timeout=60)
    sock.close()


@needs_chromium
def test_docs_render_offline(server: str, app: Any) -> None:
    with watched_page(1400, 900) as w:
        w.page.goto(server + "/docs", wait_until="load")
        w.page.wait_for_selector(".opblock-summary-path")
        ops = w.page.eval_on_selector_all(".opblock-summary-path", "es => es.map(e => e.textContent.trim())")
        has_auth = w.page.locator("button.authorize").count() > 0
        w.screenshot("server-docs.png")
    assert {
        "/webhook/airtable/cache",
        "/webhook/airtable/backup",
        "/webhook/airtable/metrics",
        "/jobs/{job_id}",
        "/healthz",
    } <= {o.replace("\u200b", "") for o in ops}, ops
    assert has_auth  # the bearer scheme is offered ("Authorize")
    hosts = {urlsplit(u).netloc for u in w.requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(server).netloc}, w.requests
    assert w.failed == [] and w.console_errors() == [], w.failed + w.console + w.errors
