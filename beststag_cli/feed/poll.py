"""`beststag serve`'s poll loop: the change feed pulled every `feed.poll_s` seconds (0: off).

For installations Airtable cannot ping (no `feed.notification_url`; with one, the pings pull and the loop
is off). One daemon
thread per `serve` process. Each tick reads the base's feed row from the journal (one SELECT): a feed
enabled or disabled while `serve` runs is noticed at the next tick. A tick pulls only when nobody else
has pulled for `poll_s` (a ping's pull, cron's `feed pull`, another worker's loop all store
`last_pull_ts`), so the loop adds no request to a base already pulled often enough; when another pull
is running it skips (`service.pull(wait=0)`: the running one reads everything from the stored cursor).

A pull that fails (Airtable down, 429 past the client's retries, a webhook gone) or leaves gaps is one
JSON line in the log (`feed.poll_failed`, `feed.poll_gap`), and the next tick waits twice as long, up to
`MAX_BACKOFF_S`; the first whole pull goes back to `poll_s`. Stopping sets an event the loop sleeps on:
it ends at once between pulls, or after the page in flight (each page's cursor is stored in one
transaction after its changes are delivered, so a pull cut anywhere repeats payloads, never skips them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .. import clock

MAX_BACKOFF_S = 300.0
#: a tick that finds the feed off sleeps this long at most before looking again
OFF_RECHECK_S = 5.0


class Poller:
    """One thread pulling the base's feed every `interval` seconds while `feed_row()` says it is on."""

    def __init__(
        self,
        interval: float,
        feed_row: Callable[[], Any],
        pull: Callable[[], Any],
        log: Callable[..., None],
    ) -> None:
        self.interval = float(interval)
        self._feed_row, self._pull, self._log = feed_row, pull, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_last: float | None = None  # last_pull_ts as our own last pull left it
        self.failures = 0
        self.pulls = 0
        self.skipped = 0

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="beststag-feed-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the loop to end and wait for it (a pull in flight finishes its page); False on timeout."""
        self._stop.set()
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    def _run(self) -> None:
        delay = 0.0  # the first tick at once: a serve started after downtime catches up now
        while not self._stop.wait(delay):
            delay = self.tick()

    def tick(self) -> float:
        """One look at the feed (and one pull when due); returns the seconds until the next tick."""
        try:
            row = self._feed_row()
        except Exception as e:  # the journal unreadable for a moment: look again later
            return self._failed("the journal could not be read", e)
        if row is None:
            self.failures, self._own_last = 0, None
            return min(self.interval, OFF_RECHECK_S)
        last = row["last_pull_ts"]
        if last is not None and last != self._own_last:  # pulled by someone else (a ping, cron, a worker)
            age = clock.timestamp() - float(last)
            if 0 <= age < self.interval:
                return max(0.05, self.interval - age)
        try:
            res = self._pull()
        except Exception as e:
            return self._failed("the feed pull failed", e)
        if res.skipped:
            self.skipped += 1
            return self._backoff(self.interval)
        self.pulls += 1
        try:
            after = self._feed_row()
            self._own_last = after["last_pull_ts"] if after is not None else None
        except Exception:
            self._own_last = None
        if res.gaps:
            self.failures += 1
            delay = self._backoff(self.interval)
            self._log(
                "feed.poll_gap",
                _level=logging.WARNING,
                tables=sorted(res.gaps),
                reasons=sorted(set(res.gaps.values())),
                retry_in_s=round(delay, 3),
            )
            return delay
        self.failures = 0
        return self.interval

    def _backoff(self, base: float) -> float:
        return min(max(base, 0.05) * 2**self.failures, max(MAX_BACKOFF_S, self.interval))

    def _failed(self, what: str, e: Exception) -> float:
        from ..logs import redact

        self.failures += 1
        delay = self._backoff(self.interval)
        self._log(
            "feed.poll_failed",
            _level=logging.WARNING,
            error=redact(f"{what}: {type(e).__name__}: {e}"),
            failures=self.failures,
            retry_in_s=round(delay, 3),
        )
        return delay
