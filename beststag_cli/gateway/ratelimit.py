"""Client-side rate limiter: at most N requests per window per base, across threads and processes.

Airtable allows 5 requests per second per base and answers a 6th with 429 and a 30-second
penalty for every client of that base. A cron backup and the webhook server can run at the same
time, so the limit has to hold across processes, not only across threads.

How: a sliding-window log. For each base a tiny state file under ``state_dir`` (the data dir's
``locks/``) keeps the recent requests and a "penalty until" time. ``acquire``/``hold`` take an
exclusive ``flock`` on that file, read it, and grant a slot when fewer than N requests occupy the
window; otherwise they release the lock and sleep until one leaves it (no busy spin). Inside one
process, waiting threads queue on a ``threading.Lock`` so only one of them polls the file at a time.

What occupies the window (why a request counts until its answer): Airtable counts a request when
it *arrives*, and the arrival lies somewhere between our grant and the answer reaching us. A
process descheduled between grant and send (a loaded machine) sends late, into the window of
later grants; counting grant times only then lets the server see 6 in one second. So a request
taken with :meth:`RateLimiter.hold` occupies its slot from the grant until it is released (its
answer came or it failed), and then for one more window: every request the server can see in a
window was granted while all earlier ones that could share that window still counted, whatever
the delays. A slot never released (the process died, a hung call) is freed when its process is
gone, at the latest ``hold_s`` after the grant. Plain :meth:`RateLimiter.acquire` counts the grant
time only (for callers that cannot report completion).

Distrust of the state file: it is shared, it can be damaged, and a clock can move. Anything that
does not parse is an empty state (rewritten at once, in place under the ``flock``: every process
holds the file open and locks that inode, so a rename would split them onto two files); times
ahead of now are clamped to now (far ahead: left from before a reboot, dropped); a penalty never
lasts more than ``MAX_PENALTY_S`` from the moment it was recorded, so no state file can make a
command wait longer than that plus ``hold_s``. A symlink, a hard link, a FIFO or anything else
than our own regular file at its path is replaced (a fresh file renamed over it, under a lock on
the folder), never followed. A held slot of a process that is gone counts as answered when that is
seen (``kill(pid, 0)``; processes sharing the data dir from another pid namespace would look gone:
share a Redis limiter instead). A wait longer than ``NOTE_AFTER_S`` is said (once) on the console
and in the log, with its reason.

Times are ``time.monotonic()``, which on Linux (CLOCK_MONOTONIC) is shared by every process of the
machine and never jumps. Deliberately not ``clock.now()``: a fake clock must not speed up real
requests.

The cost of an ``acquire`` that does not wait is a lock, a few-hundred-byte ``pread``/``pwrite``
and an unlock: tens of microseconds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import secrets
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from beststag_cli.fsutil import FILE_MODE, check_safe_path, ensure_private_dir, modes_kept

# the parts both limiters share live in .limits, so redis_ratelimit needs nothing of this module
from .limits import (
    AIRTABLE_PENALTY_S,
    DEFAULT_HOLD_S,
    DEFAULT_MARGIN_S,
    MAX_PENALTY_S,
    REASON_PENALTY,
    REASON_WINDOW,
    Hold,
    Limiter,
    note_wait,
    wait_for_grant,
)

try:  # POSIX: flock on the state file itself (one open fd per process and base)
    import fcntl

    _HAVE_FCNTL = True
except ImportError:  # pragma: no cover - Windows: filelock on a sibling .lock file
    _HAVE_FCNTL = False

if TYPE_CHECKING:
    from beststag_cli.config import Settings

# state file v2: magic, penalty_until, penalty_at, count, then `count` entries (time, pid, seq);
# pid 0: a finished request (time = when it finished); else in flight since time, held by pid.
_MAGIC = 0x42535432  # "BST2"
_HEADER = struct.Struct("<IddI")
_ENTRY = struct.Struct("<dii")
# v1 (before 2026-12): magic, penalty_until, count, then `count` grant times
_MAGIC_V1 = 0x42535452  # "BSTR"
_HEADER_V1 = struct.Struct("<IdI")

_log = logging.getLogger("beststag.ratelimit")
_event_log = logging.getLogger("beststag.event")


@dataclass
class _Entry:
    t: float
    pid: int = 0  # 0: finished
    seq: int = 0


@dataclass
class _State:
    entries: list[_Entry] = field(default_factory=list)
    penalty_until: float = 0.0
    penalty_at: float = 0.0


def _pack(state: _State, keep: int) -> bytes:
    entries = state.entries[-keep:]
    out = [_HEADER.pack(_MAGIC, state.penalty_until, state.penalty_at, len(entries))]
    out += [_ENTRY.pack(e.t, e.pid, e.seq) for e in entries]
    return b"".join(out)


def _parse(data: bytes, now: float = 0.0) -> _State | None:
    """The state in ``data`` as written (unchecked), or None when it is not a state file."""
    if len(data) >= _HEADER.size:
        magic, until, at, n = _HEADER.unpack_from(data)
        if magic == _MAGIC and len(data) == _HEADER.size + _ENTRY.size * n:
            entries = [_Entry(*_ENTRY.unpack_from(data, _HEADER.size + _ENTRY.size * i)) for i in range(n)]
            return _State(entries, until, at)
    if len(data) >= _HEADER_V1.size:
        magic, until, n = _HEADER_V1.unpack_from(data)
        if magic == _MAGIC_V1 and len(data) == _HEADER_V1.size + 8 * n:
            times = struct.unpack_from(f"<{n}d", data, _HEADER_V1.size)
            # v1 did not record when the penalty began: at the latest now (so it is cut to MAX_PENALTY_S from now)
            return _State([_Entry(t) for t in times], until, min(until - AIRTABLE_PENALTY_S, now))
    return None


def _unpack(data: bytes, now: float, horizon: float) -> tuple[_State, bool]:
    """The state in ``data``, made sane for ``now``; and whether it had to be repaired.

    Every time is finite and at most ``now``: a time ahead of now by up to ``horizon`` (clock
    skew, a clock moved back) is clamped to now; further ahead it cannot come from this boot
    (monotonic time restarts at boot) and is dropped. A penalty lasts at most ``MAX_PENALTY_S``
    from when it was recorded.
    """
    raw = _parse(data, now)
    if raw is None:
        return _State(), bool(data)
    bad = False
    entries: list[_Entry] = []
    for e in raw.entries:
        if not math.isfinite(e.t) or e.t > now + horizon or e.pid < 0:
            bad = True
            continue
        if e.t > now:
            e.t, bad = now, True
        entries.append(e)
    entries.sort(key=lambda e: e.t)
    until, at = raw.penalty_until, raw.penalty_at
    if not (math.isfinite(until) and math.isfinite(at)) or at > now + horizon:
        until, at, bad = 0.0, 0.0, bad or until != 0.0
    elif until > now:
        if at > now:
            at, bad = now, True
        if until > at + MAX_PENALTY_S:
            until, bad = at + MAX_PENALTY_S, True
    return _State(entries, until, at), bad


def _safe_name(base_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base_id) or "_"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process: alive
    except (ProcessLookupError, OverflowError, ValueError, OSError):
        return False
    return True


class _FileLock(Protocol):
    """filelock.FileLock, used only where fcntl is missing."""

    def acquire(self) -> object: ...

    def release(self) -> None: ...


class _Slot:
    """Per-base state of one process: the queue lock, the I/O lock, and the open state file."""

    def __init__(self) -> None:
        self.queue = threading.Lock()  # waiting threads of this process line up here
        self.io = threading.Lock()  # guards fd and the in-memory state
        self.fd: int | None = None
        self.filelock: _FileLock | None = None  # where fcntl is missing (not on Linux)
        self.memory = _State()
        self.broken = False  # the state file cannot be used: this process keeps the state in memory
        self.repaired = False  # this process found the state file damaged (and rewrote it)


class RateLimiter:
    """At most ``per_second`` requests per ``window_s`` (+ margin) per base id.

    :param state_dir: folder for the shared state files (created 0700); None keeps the state in
        this process only (for when no data dir is writable).
    :param per_second: requests allowed per window (Airtable: 5 per base).
    :param window_s: the window length (1 s for Airtable).
    :param margin_s: added to the window, so a server counting on a slightly different clock
        never sees ``per_second + 1`` in its window.
    :param hold_s: a held slot never released stops counting this long after its grant.
    """

    def __init__(
        self,
        state_dir: Path | str | None,
        per_second: int = 5,
        window_s: float = 1.0,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        hold_s: float = DEFAULT_HOLD_S,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if hold_s <= 0:
            raise ValueError("hold_s must be positive")
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.per_second = per_second
        self.window_s = window_s
        self.margin_s = margin_s
        self.hold_s = hold_s
        self._time = time_fn
        self._sleep = sleep_fn
        self._keep = max(per_second, 16)
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._pid = os.getpid()
        self._seq = secrets.randbits(31)
        self._seq_lock = threading.Lock()
        if self.state_dir is not None:
            ensure_private_dir(self.state_dir)

    @property
    def effective_window_s(self) -> float:
        return self.window_s + self.margin_s

    # ---- public API

    def acquire(self, base_id: str, timeout: float | None = None) -> float:
        """Block until a request to ``base_id`` may be sent; return the seconds waited.

        The grant counts in the window from now; prefer :meth:`hold` when the caller can say when
        the answer came.

        :raises TimeoutError: when ``timeout`` seconds pass without a free slot.
        """
        slot = self._slot(base_id)
        return self._wait(base_id, slot, lambda: self._try_grant(base_id, slot, None), timeout)

    def hold(self, base_id: str, timeout: float | None = None) -> Hold:
        """Block until a request to ``base_id`` may be sent; the slot counts until released.

        >>> with limiter.hold(base):  # doctest: +SKIP
        ...     send_the_request()

        :raises TimeoutError: when ``timeout`` seconds pass without a free slot.
        """
        slot = self._slot(base_id)
        with self._seq_lock:
            self._seq = self._seq % 0x7FFFFFFF + 1
            seq = self._seq
        waited = self._wait(base_id, slot, lambda: self._try_grant(base_id, slot, seq), timeout)
        return Hold(lambda: self._release(base_id, slot, seq), waited)

    def try_acquire(self, base_id: str) -> bool:
        """Take a slot if one is free now; never waits (other threads may be queued)."""
        slot = self._slot(base_id)
        if not slot.queue.acquire(blocking=False):
            return False
        try:
            return self._try_grant(base_id, slot, None)[0] <= 0
        finally:
            slot.queue.release()

    def penalize(self, base_id: str, seconds: float = AIRTABLE_PENALTY_S) -> None:
        """Stop every process from sending to ``base_id`` for ``seconds`` (after a 429; at most ``MAX_PENALTY_S``)."""
        slot = self._slot(base_id)
        seconds = min(max(float(seconds), 0.0), MAX_PENALTY_S) if math.isfinite(seconds) else MAX_PENALTY_S

        def update(state: _State, now: float) -> float:
            if now + seconds > state.penalty_until:
                state.penalty_until, state.penalty_at = now + seconds, now
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
        """Seconds until a slot would be free for ``base_id`` (0 when one is free now; a lower
        bound while requests are in flight)."""
        slot = self._slot(base_id)
        out = 0.0

        def read(state: _State, now: float) -> float:
            nonlocal out
            out = self._next_free(state, now)[0] - now
            return 0.0

        self._with_state(base_id, slot, read, write=False)
        return max(0.0, out)

    def reset(self, base_id: str) -> None:
        """Forget requests and penalties for ``base_id`` (tests, `doctor --fix`)."""
        slot = self._slot(base_id)

        def clear(state: _State, now: float) -> float:
            state.entries.clear()
            state.penalty_until = state.penalty_at = 0.0
            return 0.0

        self._with_state(base_id, slot, clear)

    def state_path(self, base_id: str) -> Path | None:
        """The state file of ``base_id`` (None for the in-memory variant)."""
        return None if self.state_dir is None else self.state_dir / f"ratelimit.{_safe_name(base_id)}.state"

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

    def _wait(
        self, base_id: str, slot: _Slot, try_grant: Callable[[], tuple[float, str]], timeout: float | None
    ) -> float:
        path = self.state_path(base_id)

        def note(waited: float, seconds: float, reason: str) -> None:
            note_wait(
                base_id,
                waited,
                seconds,
                reason,
                per_second=self.per_second,
                window_s=self.window_s,
                where=str(path) if path is not None else None,
                repaired=slot.repaired,
            )

        return wait_for_grant(try_grant, slot.queue, base_id, timeout, self._time, self._sleep, note)

    def _settle(self, state: _State, now: float) -> None:
        """Finish what is over: held slots of dead processes or past ``hold_s``; drop what left the window."""
        me = os.getpid()
        keep: list[_Entry] = []
        for e in state.entries:
            if e.pid:
                if e.t + self.hold_s <= now:
                    e.t, e.pid, e.seq = e.t + self.hold_s, 0, 0
                elif e.pid != me and not _pid_alive(e.pid):
                    e.t, e.pid, e.seq = now, 0, 0  # its request, if sent, was answered or lost by now
            if e.pid or e.t + self.effective_window_s > now:
                keep.append(e)
        keep.sort(key=lambda e: e.t)
        state.entries = keep

    def _next_free(self, state: _State, now: float) -> tuple[float, str]:
        """When a slot frees (a lower bound while the window is full of requests in flight), and why not now."""
        earliest, reason = now, REASON_WINDOW
        n = len(state.entries)
        if n >= self.per_second:
            k = n - self.per_second  # the (k+1)-th entry to leave the window lets us in
            # a finished request leaves at t + window; one in flight at its release + window, so not
            # before now + window (sleeping that long is never late: it has not been released yet)
            leaves = sorted(
                e.t + self.effective_window_s if not e.pid else now + self.effective_window_s for e in state.entries
            )
            earliest = max(earliest, leaves[k])
        if state.penalty_until > earliest:
            earliest, reason = state.penalty_until, REASON_PENALTY
        return earliest, reason

    def _try_grant(self, base_id: str, slot: _Slot, seq: int | None) -> tuple[float, str]:
        why = [REASON_WINDOW]

        def grant(state: _State, now: float) -> float:
            self._settle(state, now)
            free_at, why[0] = self._next_free(state, now)
            if free_at > now:
                return free_at - now
            state.entries.append(_Entry(now, os.getpid(), seq) if seq is not None else _Entry(now))
            return 0.0

        return self._with_state(base_id, slot, grant), why[0]

    def _release(self, base_id: str, slot: _Slot, seq: int) -> None:
        me = os.getpid()

        def release(state: _State, now: float) -> float:
            for e in state.entries:
                if e.pid == me and e.seq == seq:
                    e.t, e.pid, e.seq = now, 0, 0
                    break
            else:  # lost with a damaged file, or settled as dead: it still finished just now
                state.entries.append(_Entry(now))
            state.entries.sort(key=lambda e: e.t)
            return 0.0

        self._with_state(base_id, slot, release)

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
            fd = None if self.state_dir is None or slot.broken else self._open(base_id, slot)
            if fd is None:
                now = self._time()
                state, _ = _unpack(_pack(slot.memory, self._keep), now, horizon)
                result = fn(state, now)
                if write:
                    slot.memory = state
                return result
            if _HAVE_FCNTL:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:  # pragma: no cover
                assert slot.filelock is not None
                slot.filelock.acquire()
            try:
                now = self._time()  # read under the lock, so grant times are ordered
                data = os.pread(fd, _HEADER.size + _ENTRY.size * (self._keep + 64) + 1, 0)
                state, repaired = _unpack(data, now, horizon)
                if repaired:  # said with the wait it causes, if long (a short one is not worth a line)
                    slot.repaired = True
                    _log.debug("repaired the rate limiter's state file %s", self.state_path(base_id))
                result = fn(state, now)
                if write or repaired:
                    payload = _pack(state, self._keep)
                    if payload != data:
                        try:
                            os.pwrite(fd, payload, 0)
                            if len(payload) < len(data):
                                os.ftruncate(fd, len(payload))
                        except OSError as e:  # disk full, I/O error: this grant is still ours
                            _log.debug("cannot write %s: %s", self.state_path(base_id), e)
                return result
            finally:
                if _HAVE_FCNTL:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:  # pragma: no cover
                    assert slot.filelock is not None
                    slot.filelock.release()

    def _open(self, base_id: str, slot: _Slot) -> int | None:
        """The state file, opened once per process; None (state kept in memory) if it cannot be made safe."""
        if slot.fd is not None:
            return slot.fd
        path = self.state_path(base_id)
        assert path is not None
        check_safe_path(path)  # a symlink planted in the data dir: one UnsafePath line, never followed
        fd = _open_state(path)
        if fd is None:
            fd = _replace_state(path)
        if fd is None:
            slot.broken = True
            _event_log.warning(
                "cannot use the rate limiter's state file %s; this process limits itself alone",
                path,
                extra={"event": "ratelimit.state_unusable", "fields": {"base": base_id, "state": str(path)}},
            )
            return None
        slot.fd = fd
        if not _HAVE_FCNTL:  # pragma: no cover
            import filelock

            slot.filelock = filelock.FileLock(str(path) + ".lock")
        return fd


_OPEN_FLAGS = (
    os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
)


def _open_state(path: Path) -> int | None:
    """Open ``path`` if it is (or is created as) a regular file with one link (not a symlink); else None."""
    try:
        fd = os.open(path, _OPEN_FLAGS, FILE_MODE)
    except OSError:
        return None  # a symlink (ELOOP), a directory, a socket, ...
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            return None
        if stat.S_IMODE(st.st_mode) != FILE_MODE and not modes_kept():
            with contextlib.suppress(OSError):  # not our file: the limiter still works
                os.fchmod(fd, FILE_MODE)
        return fd
    except OSError:
        os.close(fd)
        return None


def _replace_state(path: Path) -> int | None:
    """Put a fresh state file where something unsafe was (renaming over it: a symlink's target,
    a hard link's other name are left alone), under a lock on the folder so concurrent repairs
    cannot leave two processes on two files."""
    try:
        dfd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if _HAVE_FCNTL:
            fcntl.flock(dfd, fcntl.LOCK_EX)
        fd = _open_state(path)  # repaired by another process meanwhile?
        if fd is not None:
            return fd
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            tfd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
            os.close(tfd)
            os.rename(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if e.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY, errno.EACCES, errno.EPERM):
                _log.debug("replacing %s failed: %s", path, e)
            return None
        return _open_state(path)
    finally:
        os.close(dfd)  # releases the flock


def make_limiter(settings: Settings) -> Limiter:
    """The limiter ``airtable.limiter`` configures: per host (a state file) or across hosts (Redis).

    Redis's module (and the redis package) is imported only when configured; it imports
    ``.limits``, never this module, so the pair has no cycle."""
    per_second = int(settings.airtable.rate_limit_per_s)
    if settings.airtable.limiter == "redis":
        from .redis_ratelimit import RedisRateLimiter

        return RedisRateLimiter(str(settings.limiter_redis_url), per_second=per_second)
    return RateLimiter(settings.paths.locks, per_second=per_second)
