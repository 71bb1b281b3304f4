"""Airtable's ping (`POST` to the webhook's notificationUrl): checking its MAC, and the pulls it starts.

The ping carries no payload, only `{"base": {"id"}, "webhook": {"id"}, "timestamp"}` and the header
`X-Airtable-Content-MAC: hmac-sha256=<hex>`, the HMAC-SHA256 of the raw body under the webhook's
base64-decoded MAC secret (Airtable's webhooks docs; pyairtable's `WebhookNotification.from_request`).
The receiver answers at once and pulls in the background: `Puller` runs one pull at a time and, when
pings arrive during a pull, exactly one more after it (payloads are read from the stored cursor, so a
single later pull sees everything the pings announced). Pulls start at least `spacing_s` apart (`serve`:
`feed.poll_s`, 1 s when the loop is off): a burst of writes, ours included — Airtable pings for every
payload, and it cannot be known which are echoes of beststag's own writes without reading them — costs
one request per `spacing_s`, not one per ping, and a change is still read within `spacing_s` of its ping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
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
    """One background pull at a time, `spacing_s` apart at least; pings during a pull ask for exactly one more."""

    def __init__(self, pull: Callable[[], Any], spacing_s: float = 0.0) -> None:
        self._pull = pull
        self._spacing = float(spacing_s)
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._pulling = False  # the running thread is reading payloads (not waiting for its spacing)
        self._last_start: float | None = None  # time.monotonic() of the last pull's start
        self._stop = threading.Event()
        self.pulls = 0
        self.last_error: str | None = None
        self._idle = threading.Event()
        self._idle.set()

    def request(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return  # shutting down: the next start (or cron) reads from the stored cursor
            if self._running:
                # a pull reading now may have read past the pinged payload's place: one more after it;
                # a pull still waiting for its spacing will read it
                self._again = self._again or self._pulling
                return
            self._running = True
            self._idle.clear()
        threading.Thread(target=self._run, name="beststag-feed-pull", daemon=True).start()

    def _run(self) -> None:
        while True:
            if self._last_start is not None:  # coalesce: the pings of the next spacing_s make one pull
                self._stop.wait(self._last_start + self._spacing - time.monotonic())
            with self._lock:
                self._pulling, self._again = True, False  # every ping so far is covered by this pull
            if not self._stop.is_set():
                self._last_start = time.monotonic()
                try:
                    self._pull()
                    self.last_error = None
                except Exception as e:  # logged; the next ping or poll tries again
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning("feed pull failed: %s", self.last_error)
                self.pulls += 1
            with self._lock:
                self._pulling = False
                if not self._again or self._stop.is_set():
                    self._running = False
                    self._idle.set()
                    return
                self._again = False

    def stop(self, timeout: float | None = None) -> bool:
        """No pull starts from now on (a waiting one is dropped, its payloads stay at the cursor); waits for
        the running one. False when it is still running after `timeout`."""
        self._stop.set()
        return self._idle.wait(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)
