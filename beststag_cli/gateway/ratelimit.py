"""Client-side rate limiter: at most N requests per window per base, across threads and processes.

Airtable allows 5 requests per second per base and answers a 6th with 429 and a 30-second
penalty for every client of that base. A cron backup and the webhook server can run at the same
time, so the limit has to hold across processes, not only across threads.

How: a sliding-window log. For each base a tiny state file under ``state_dir`` (the data dir's
``locks/``) keeps the times of the last grants and a "penalty until" time. ``acquire`` takes an
exclusive ``flock`` on that file, reads it, and grants a slot when the N-th most recent grant is
at least ``window_s + margin_s`` old; otherwise it releases the lock and sleeps until that grant
leaves the window (no busy spin). Inside one process, waiting threads queue on a
``threading.Lock`` so only one of them polls the file at a time.

Why the actual grant time is logged (rather than handing out future reservations): a thread that
oversleeps would then fire later than its reservation, close to the next grants. Logging the time
the grant is made, under the lock, keeps the spacing true to what is sent. The margin covers the
few microseconds between the grant and the request and a server that counts windows on its own
clock.

Times are ``time.monotonic()``, which on Linux (CLOCK_MONOTONIC) is shared by every process of the
machine and never jumps. Deliberately not ``clock.now()``: a fake clock must not speed up real
requests. State left from before a reboot (times far in the future) is discarded.

The cost of an ``acquire`` that does not wait is a lock, a 100-byte ``pread``/``pwrite`` and an
unlock: tens of microseconds.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from beststag_cli.fsutil import FILE_MODE, check_safe_path, ensure_private_dir

try:  # POSIX: flock on the state file itself (one open fd per process and base)
    import fcntl

    _HAVE_FCNTL = True
except ImportError:  # pragma: no cover - Windows: filelock on a sibling .lock file
    _HAVE_FCNTL = False

DEFAULT_MARGIN_S = 0.08  # covers scheduling jitter between the grant and the request reaching Airtable
#: penalties longer than this are treated as corrupt state (Airtable's is 30 s)
MAX_PENALTY_S = 3600.0

# state file: magic, penalty_until, count, then `count` grant times (all little-endian doubles)
_MAGIC = 0x42535452  # "BSTR"
_HEADER = struct.Struct("<IdI")


@dataclass
class _State:
    grants: list[float] = field(default_factory=list)
    penalty_until: float = 0.0


def _pack(state: _State, keep: int) -> bytes:
    grants = state.grants[-keep:]
    return _HEADER.pack(_MAGIC, state.penalty_until, len(grants)) + struct.pack(f"<{len(grants)}d", *grants)


def _unpack(data: bytes, now: float, horizon: float) -> _State:
    if len(data) < _HEADER.size:
        return _State()
    magic, penalty, n = _HEADER.unpack_from(data)
    if magic != _MAGIC or len(data) < _HEADER.size + 8 * n:
        return _State()
    grants = list(struct.unpack_from(f"<{n}d", data, _HEADER.size))
    # Times beyond `horizon` cannot come from this boot (monotonic restarts at boot): drop them.
    grants = [g for g in grants if g <= now + horizon]
    if penalty > now + MAX_PENALTY_S:
        penalty = 0.0
    return _State(grants=sorted(grants), penalty_until=penalty)


def _safe_name(base_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base_id) or "_"


class _Slot:
    """Per-base state of one process: the queue lock, the I/O lock, and the open state file."""

    def __init__(self) -> None:
        self.queue = threading.Lock()  # waiting threads of this process line up here
        self.io = threading.Lock()  # guards fd and the in-memory state
        self.fd: int | None = None
        self.filelock: object | None = None
        self.memory = _State()


def wait_for_grant(try_grant: Callable[[], float], queue: threading.Lock, base_id: str, timeout: float | None,
                   time_fn: Callable[[], float], sleep_fn: Callable[[float], None]) -> float:
    """The acquire loop both limiters share: one waiter per base in this process (`queue`), asking
    `try_grant` (0 = granted, else seconds to wait) until granted; returns the seconds waited."""
    start = time_fn()
    deadline = None if timeout is None else start + timeout
    if not queue.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
        raise TimeoutError(f"no rate-limit slot for {base_id} within {timeout} s")
    try:
        while True:
            wait = try_grant()
            if wait <= 0:
                return time_fn() - start
            if deadline is not None:
                left = deadline - time_fn()
                if left <= 0 or wait > left:
                    raise TimeoutError(f"no rate-limit slot for {base_id} within {timeout} s")
            sleep_fn(wait)
    finally:
        queue.release()


class RateLimiter:
    """At most ``per_second`` grants per ``window_s`` (+ margin) per base id.

    :param state_dir: folder for the shared state files (created 0700); None keeps the state in
        this process only (for when no data dir is writable).
    :param per_second: grants allowed per window (Airtable: 5 per base).
    :param window_s: the window length (1 s for Airtable).
    :param margin_s: added to the window, so a server counting on a slightly different clock
        never sees ``per_second + 1`` in its window.
    """

    def __init__(
        self,
        state_dir: Path | str | None,
        per_second: int = 5,
        window_s: float = 1.0,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.per_second = per_second
        self.window_s = window_s
        self.margin_s = margin_s
        self._time = time_fn
        self._sleep = sleep_fn
        self._keep = max(per_second, 16)
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._pid = os.getpid()
        if self.state_dir is not None:
            ensure_private_dir(self.state_dir)

    @property
    def effective_window_s(self) -> float:
        return self.window_s + self.margin_s

    # ---- public API

    def acquire(self, base_id: str, timeout: float | None = None) -> float:
        """Block until a request to ``base_id`` may be sent; return the seconds waited.

        :raises TimeoutError: when ``timeout`` seconds pass without a free slot.
        """
        slot = self._slot(base_id)
        return wait_for_grant(lambda: self._try_grant(base_id, slot), slot.queue, base_id, timeout,
                              self._time, self._sleep)

    def try_acquire(self, base_id: str) -> bool:
        """Take a slot if one is free now; never waits (other threads may be queued)."""
        slot = self._slot(base_id)
        if not slot.queue.acquire(blocking=False):
            return False
        try:
            return self._try_grant(base_id, slot) <= 0
        finally:
            slot.queue.release()

    def penalize(self, base_id: str, seconds: float = 30.0) -> None:
        """Stop every process from sending to ``base_id`` for ``seconds`` (after a 429)."""
        slot = self._slot(base_id)

        def update(state: _State, now: float) -> float:
            state.penalty_until = max(state.penalty_until, now + seconds)
            return 0.0

        self._with_state(base_id, slot, update)

    def penalty_remaining(self, base_id: str) -> float:
        """Seconds left of a penalty on ``base_id`` (0 when none)."""
        slot = self._slot(base_id)
        out = 0.0

        def read(state: _State, now: float) -> float:
            nonlocal out
            out = max(0.0, state.penalty_until - now)
            return 0.0

        self._with_state(base_id, slot, read, write=False)
        return out

    def wait_time(self, base_id: str) -> float:
        """Seconds until a slot would be free for ``base_id`` (0 when one is free now)."""
        slot = self._slot(base_id)
        out = 0.0

        def read(state: _State, now: float) -> float:
            nonlocal out
            out = self._next_free(state, now) - now
            return 0.0

        self._with_state(base_id, slot, read, write=False)
        return max(0.0, out)

    def reset(self, base_id: str) -> None:
        """Forget grants and penalties for ``base_id`` (tests, `doctor --fix`)."""
        slot = self._slot(base_id)

        def clear(state: _State, now: float) -> float:
            state.grants.clear()
            state.penalty_until = 0.0
            return 0.0

        self._with_state(base_id, slot, clear)

    def close(self) -> None:
        """Close the state files this process opened."""
        with self._slots_lock:
            slots, self._slots = self._slots, {}
        if self._pid != os.getpid():
            return
        for s in slots.values():
            with s.io:
                if s.fd is not None:
                    os.close(s.fd)
                    s.fd = None

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- internals

    def _slot(self, base_id: str) -> _Slot:
        if self._pid != os.getpid():
            # After fork the inherited fds share the parent's open file description, and flock
            # would not exclude parent from child: start over with fresh files and locks.
            self._slots = {}
            self._slots_lock = threading.Lock()
            self._pid = os.getpid()
        slot = self._slots.get(base_id)
        if slot is None:
            with self._slots_lock:
                slot = self._slots.setdefault(base_id, _Slot())
        return slot

    def _next_free(self, state: _State, now: float) -> float:
        earliest = state.penalty_until
        if len(state.grants) >= self.per_second:
            earliest = max(earliest, state.grants[-self.per_second] + self.effective_window_s)
        return max(earliest, now)

    def _try_grant(self, base_id: str, slot: _Slot) -> float:
        def grant(state: _State, now: float) -> float:
            free_at = self._next_free(state, now)
            if free_at > now:
                return free_at - now
            state.grants.append(now)
            return 0.0

        return self._with_state(base_id, slot, grant)

    def _with_state(
        self,
        base_id: str,
        slot: _Slot,
        fn: Callable[[_State, float], float],
        *,
        write: bool = True,
    ) -> float:
        horizon = self.effective_window_s + 1.0
        with slot.io:
            if self.state_dir is None:
                now = self._time()
                result = fn(slot.memory, now)
                slot.memory.grants = slot.memory.grants[-self._keep :]
                return result
            fd = self._open(base_id, slot)
            if _HAVE_FCNTL:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:  # pragma: no cover
                slot.filelock.acquire()  # type: ignore[union-attr]
            try:
                now = self._time()  # read under the lock, so grant times are ordered
                data = os.pread(fd, _HEADER.size + 8 * self._keep + 8 * 64, 0)
                state = _unpack(data, now, horizon)
                before = (list(state.grants), state.penalty_until)
                result = fn(state, now)
                if write and (state.grants, state.penalty_until) != before:
                    payload = _pack(state, self._keep)
                    os.pwrite(fd, payload, 0)
                    if len(payload) < len(data):
                        os.ftruncate(fd, len(payload))
                return result
            finally:
                if _HAVE_FCNTL:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:  # pragma: no cover
                    slot.filelock.release()  # type: ignore[union-attr]

    def _open(self, base_id: str, slot: _Slot) -> int:
        if slot.fd is None:
            assert self.state_dir is not None
            path = self.state_dir / f"ratelimit.{_safe_name(base_id)}.state"
            fd = _open_state(path)
            try:
                os.fchmod(fd, FILE_MODE)
            except OSError:  # pragma: no cover - not our file; the limiter still works
                pass
            slot.fd = fd
            if not _HAVE_FCNTL:  # pragma: no cover
                import filelock

                slot.filelock = filelock.FileLock(str(path) + ".lock")
        return slot.fd


def _open_state(path: Path) -> int:
    """Open the state file, never through a symlink planted in the data dir (UnsafePath)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
                       FILE_MODE)
    except OSError:
        check_safe_path(path)
        raise


def make_limiter(settings: Any) -> RateLimiter | Any:
    """The limiter ``airtable.limiter`` configures: per host (a state file) or across hosts (Redis)."""
    per_second = int(settings.airtable.rate_limit_per_s)
    if settings.airtable.limiter == "redis":
        from .redis_ratelimit import RedisRateLimiter

        return RedisRateLimiter(str(settings.limiter_redis_url), per_second=per_second)
    return RateLimiter(settings.paths.locks, per_second=per_second)
