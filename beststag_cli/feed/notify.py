"""Airtable's ping (`POST` to the webhook's notificationUrl): checking its MAC, and the pulls it starts.

The ping carries no payload, only `{"base": {"id"}, "webhook": {"id"}, "timestamp"}` and the header
`X-Airtable-Content-MAC: hmac-sha256=<hex>`, the HMAC-SHA256 of the raw body under the webhook's
base64-decoded MAC secret (Airtable's webhooks docs; pyairtable's `WebhookNotification.from_request`).
The receiver answers at once and pulls in the background: `Puller` runs one pull at a time and, when
pings arrive during a pull, exactly one more after it (payloads are read from the stored cursor, so a
single later pull sees everything the pings announced).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("beststag.feed")

MAC_HEADER = "X-Airtable-Content-MAC"
_PREFIX = "hmac-sha256="


def mac_of(secret_b64: str, body: bytes) -> str:
    """The header value Airtable sends for `body` under the MAC secret."""
    key = base64.b64decode(secret_b64)
    return _PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def mac_ok(secret_b64: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of the ping's MAC; False for any malformed header or secret."""
    if not header or not header.startswith(_PREFIX):
        return False
    try:
        want = mac_of(secret_b64, body)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(want.encode(), header.strip().encode())


def ping_ids(body: bytes) -> tuple[str, str] | None:
    """(base id, webhook id) of a ping body, or None when it is not one."""
    try:
        data = json.loads(body)
        return str(data["base"]["id"]), str(data["webhook"]["id"])
    except (ValueError, KeyError, TypeError):
        return None


class Puller:
    """One background pull at a time; pings during a pull ask for exactly one more."""

    def __init__(self, pull: Callable[[], Any]) -> None:
        self._pull = pull
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self.pulls = 0
        self.last_error: str | None = None
        self._idle = threading.Event()
        self._idle.set()

    def request(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self._idle.clear()
        threading.Thread(target=self._run, name="beststag-feed-pull", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._pull()
                self.last_error = None
            except Exception as e:  # logged; the next ping or poll tries again
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("feed pull failed: %s", self.last_error)
            self.pulls += 1
            with self._lock:
                if not self._again:
                    self._running = False
                    self._idle.set()
                    return
                self._again = False

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)
