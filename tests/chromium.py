"""Headless Chromium for the page tests (the HTML report, the webhook server's /docs), driven over
the DevTools protocol by Playwright with Debian's own browser (no browser download).

`watched_page()` opens a page at 1400 px and records every console message, page error and request,
so a test can say "no console errors, nothing fetched but the page itself". Screenshots go to
$BESTSTAG_ARTIFACTS (read at import, before clean_env clears BESTSTAG_*) or test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("BESTSTAG_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")
#: what works as root in a container: no sandbox, no GPU, nothing phoning home
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    # the browser's own traffic (component updater, Google sign-in) would still try to go out
    # through the wire trap's proxy: no proxy, and no name resolves but loopback's. The
    # page's own requests are recorded by watched_page whether they succeed or not.
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
#: generous: a loaded CI machine takes tens of seconds to start Chromium
TIMEOUT_MS = 120_000

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless check needs Debian's chromium (apt-get install -y chromium)"
)


@dataclass
class Watched:
    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [m for m in self.console if m.startswith(("error:", "warning:"))] + self.errors

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True, timeout=TIMEOUT_MS)
        return path


@contextmanager
def watched_page(width: int = 1400, height: int = 900) -> Iterator[Watched]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as p:
        # Playwright gives the browser a new empty --user-data-dir of its own
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            w = Watched(page)
            page.on("console", lambda m: w.console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: w.errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: w.requests.append(r.url))
            page.on("requestfailed", lambda r: w.failed.append(f"{r.url}: {r.failure}"))
            yield w
        finally:
            browser.close()
