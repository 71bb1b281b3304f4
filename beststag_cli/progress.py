"""Progress of long work: one protocol the core calls, whatever shows it (or nothing).

Core modules (backup, restore, verify, cache warm, sandbox seed) take a :class:`Reporter`
(default :data:`NULL`), open one :class:`Task` per unit of work and call ``advance(n, bytes)`` as
records and files go by. The CLI passes a live display on a terminal (``cli/progress_view.py``)
and a :class:`LogReporter` otherwise: JSON lines in the log file at intervals and at the end,
nothing on the console, so cron mails stay empty.

A total is given only when the current run knows it (a restore's plan, a backup's manifest, the
rows being seeded), never a count from an earlier run: a stale total made bars sit full while the
listing went on. Without a total a display shows a count and a rate, no bar and no ETA.

Every call is guarded (:func:`guard`): a display that fails never fails the work.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Protocol

from .logs import log_event

#: seconds between two JSON progress lines of one task (the last line comes at the end)
LOG_INTERVAL_S = 30.0


class Task(Protocol):
    """One unit of work: a table being backed up, restored, verified; a sample base being loaded."""

    def advance(self, n: int = 0, bytes: int = 0) -> None:
        """``n`` more records (or items) done, ``bytes`` more bytes moved (downloads, uploads, files read)."""

    def set_total(self, total: int | None) -> None:
        """The run now knows how many items this task holds (None: it does not)."""

    def done(self, note: str = "") -> None:
        """The task finished; ``note`` says how (``"3 files uploaded"``)."""

    def failed(self, error: str) -> None:
        """The task stopped on ``error``; the run may go on with others."""


class Reporter(Protocol):
    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        """Start a task named ``label`` (``"backup Usuários"``) counting ``unit``."""


class _NullTask:
    def advance(self, n: int = 0, bytes: int = 0) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def done(self, note: str = "") -> None:
        pass

    def failed(self, error: str) -> None:
        pass


class NullReporter:
    """Reports nothing (library calls, tests)."""

    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        return _NullTask()


NULL: Reporter = NullReporter()


class _GuardedTask:
    def __init__(self, inner: Task) -> None:
        self._inner = inner

    def advance(self, n: int = 0, bytes: int = 0) -> None:
        with contextlib.suppress(Exception):
            self._inner.advance(n, bytes)

    def set_total(self, total: int | None) -> None:
        with contextlib.suppress(Exception):
            self._inner.set_total(total)

    def done(self, note: str = "") -> None:
        with contextlib.suppress(Exception):
            self._inner.done(note)

    def failed(self, error: str) -> None:
        with contextlib.suppress(Exception):
            self._inner.failed(error)


class _GuardedReporter:
    def __init__(self, inner: Reporter) -> None:
        self._inner = inner

    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        try:
            return _GuardedTask(self._inner.task(label, total=total, unit=unit))
        except Exception:  # a display problem must never fail a backup
            return _NullTask()


def guard(reporter: Reporter | None) -> Reporter:
    """``reporter`` with every call's exceptions swallowed (None: :data:`NULL`)."""
    if reporter is None:
        return NULL
    if isinstance(reporter, _GuardedReporter | NullReporter):
        return reporter
    return _GuardedReporter(reporter)


class _LogTask:
    def __init__(self, owner: LogReporter, label: str, total: int | None, unit: str) -> None:
        self._owner = owner
        self.label, self.total, self.unit = label, total, unit
        self.n = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._t0 = owner.monotonic()
        self._last = self._t0
        self._closed = False

    def advance(self, n: int = 0, bytes: int = 0) -> None:
        with self._lock:
            self.n += n
            self.bytes += bytes
            now = self._owner.monotonic()
            due = now - self._last >= self._owner.interval_s
            if due:
                self._last = now
        if due:
            self._emit("running")

    def set_total(self, total: int | None) -> None:
        self.total = total

    def done(self, note: str = "") -> None:
        self._close("done", note=note)

    def failed(self, error: str) -> None:
        self._close("failed", error=error)

    def _close(self, status: str, **extra: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._emit(status, **{k: v for k, v in extra.items() if v})

    def _emit(self, status: str, **extra: Any) -> None:
        elapsed = max(self._owner.monotonic() - self._t0, 1e-9)
        rate = self.n / elapsed
        eta = (self.total - self.n) / rate if self.total is not None and rate > 0 and self.total >= self.n else None
        log_event(
            "progress",
            task=self.label,
            status=status,
            unit=self.unit,
            done=self.n,
            total=self.total,
            bytes=self.bytes,
            seconds=round(elapsed, 3),
            rate_per_s=round(rate, 3),
            bytes_per_s=round(self.bytes / elapsed, 1),
            eta_s=None if eta is None else round(eta, 1),
            **extra,
        )


class LogReporter:
    """Progress as ``progress`` JSON events in the log: one every ``interval_s`` per task, one at its end."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        # durations, not recorded instants: the monotonic clock (clock.py's pinned time would never advance)
        self.monotonic = time.monotonic

    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        return _LogTask(self, label, total, unit)
