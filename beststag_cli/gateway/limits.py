"""What both rate limiters share: the `Limiter` protocol, Airtable's numbers, `Hold` and the wait loop.

`ratelimit.RateLimiter` (a state file per base, one host) and `redis_ratelimit.RedisRateLimiter`
(a sorted set per base, every host) both import this module and neither imports the other, so
the pair has no import cycle; `ratelimit.make_limiter` picks one by `airtable.limiter`. The
gateway depends on `Limiter` only. `tests/remote/test_limiter_contract.py` runs one contract
against both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

DEFAULT_MARGIN_S = 0.08  # covers scheduling jitter and a server counting windows on its own clock
#: Airtable's lockout after a 429
AIRTABLE_PENALTY_S = 30.0
#: the longest penalty any state may impose, from the moment it was recorded (longer: corrupt or a clock jump)
MAX_PENALTY_S = AIRTABLE_PENALTY_S + 2.0
#: a held slot whose release never came (process killed, call hung) stops counting this long after its grant
DEFAULT_HOLD_S = 60.0
#: waits longer than this are said on the console (once) and logged, with their reason
NOTE_AFTER_S = 2.0
#: the same note (base, reason) is not repeated by one process within this many seconds
NOTE_EVERY_S = 60.0

REASON_PENALTY = "penalty"
REASON_WINDOW = "window"

_log = logging.getLogger("beststag.ratelimit")
_event_log = logging.getLogger("beststag.event")


class Hold:
    """A granted slot that keeps counting in the window until :meth:`release` (then one window more).

    Release it as soon as the request's answer (or its failure) is in; ``with limiter.hold(base):``
    does. Releasing twice is harmless.
    """

    def __init__(self, release: Callable[[], None], waited: float) -> None:
        self._release: Callable[[], None] | None = release
        self.waited = waited

    def release(self) -> None:
        """Never raises: the request is done; a release that cannot be recorded (the state file or
        Redis failed) leaves the slot counting until its process is gone or ``hold_s`` passed."""
        fn, self._release = self._release, None
        if fn is not None:
            try:
                fn()
            except Exception as e:  # the answer must reach the caller, not this
                _log.debug("could not release a rate-limit slot: %s: %s", type(e).__name__, e)

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@runtime_checkable
class Limiter(Protocol):
    """At most ``per_second`` requests per ``window_s`` (+ ``margin_s``) per base id, shared by
    every thread and process (and, for Redis, host) that uses the same storage; a penalty after a
    429 stops them all. What the gateway relies on."""

    per_second: int
    window_s: float
    margin_s: float
    hold_s: float

    @property
    def effective_window_s(self) -> float: ...

    def acquire(self, base_id: str, timeout: float | None = None) -> float:
        """Block until a request may be sent (the grant counts from now); the seconds waited.
        :raises TimeoutError: when ``timeout`` passes without a slot."""
        ...

    def hold(self, base_id: str, timeout: float | None = None) -> Hold:
        """Block until a request may be sent; the slot counts until released, then one window more."""
        ...

    def try_acquire(self, base_id: str) -> bool:
        """Take a slot if one is free now; never waits."""
        ...

    def penalize(self, base_id: str, seconds: float = AIRTABLE_PENALTY_S) -> None:
        """No grant for ``base_id`` for ``seconds`` (at most ``MAX_PENALTY_S``); never shortens one."""
        ...

    def penalty_remaining(self, base_id: str) -> float: ...

    def wait_time(self, base_id: str) -> float:
        """Seconds until a slot would be free (0: now)."""
        ...

    def reset(self, base_id: str) -> None:
        """Forget requests and penalties of ``base_id``."""
        ...

    def close(self) -> None: ...


_noted: dict[tuple[str, str], float] = {}
_noted_lock = threading.Lock()


def note_wait(
    base_id: str,
    waited: float,
    seconds: float,
    reason: str,
    *,
    per_second: int,
    window_s: float,
    where: str | None = None,
    repaired: bool = False,
) -> None:
    """Say once (per process, base and reason, every ``NOTE_EVERY_S``) that a request waits, and why.

    One record: the JSON log gets event ``ratelimit.wait`` with its fields, the console one line
    (shown on a terminal; hidden under ``--quiet`` and in cron, as every non-error console line).
    """
    key = (base_id, reason)
    mono = time.monotonic()
    with _noted_lock:
        last = _noted.get(key)
        if last is not None and mono - last < NOTE_EVERY_S:
            return
        _noted[key] = mono
    if reason == REASON_PENALTY:
        why = "Airtable answered 429 (rate limit); every client of the base pauses"
    else:
        why = f"the rate window ({per_second} requests per {window_s:g} s, in flight included) is full"
    how_long = f"waiting {seconds:.1f} s" if waited < 0.05 else f"waited {waited:.1f} s, waiting {seconds:.1f} s more"
    msg = f"{how_long} before the next request to {base_id}: {why}"
    if repaired and where:
        msg += f" (the limiter state {where} was damaged or from another clock: repaired)"
    _event_log.warning(
        msg,
        extra={
            "event": "ratelimit.wait",
            "fields": {
                "base": base_id,
                "reason": reason,
                "wait_s": round(seconds, 3),
                "waited_s": round(waited, 3),
                "state": where,
                "repaired": repaired,
            },
        },
    )


def wait_for_grant(
    try_grant: Callable[[], tuple[float, str]],
    queue: threading.Lock,
    base_id: str,
    timeout: float | None,
    time_fn: Callable[[], float],
    sleep_fn: Callable[[float], None],
    note: Callable[[float, float, str], None] | None = None,
) -> float:
    """The acquire loop both limiters share: one waiter per base in this process (`queue`), asking
    `try_grant` (``(0, _)`` = granted, else seconds to wait and why) until granted; returns the seconds
    waited. Once the wait for a slot (after this process's own queue) passes ``NOTE_AFTER_S``,
    ``note(seconds waited, seconds still to wait at least, reason)`` is called, once."""
    start = time_fn()
    deadline = None if timeout is None else start + timeout
    if not queue.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
        raise TimeoutError(f"no rate-limit slot for {base_id} within {timeout} s")
    noted = False
    polling = time_fn()  # waits behind this process's own threads (the queue) are normal: not said
    try:
        while True:
            wait, reason = try_grant()
            if wait <= 0:
                return time_fn() - start
            if deadline is not None:
                left = deadline - time_fn()
                if left <= 0 or wait > left:
                    raise TimeoutError(f"no rate-limit slot for {base_id} within {timeout} s")
            spent = time_fn() - polling
            if note is not None and not noted and spent + wait > NOTE_AFTER_S:
                noted = True
                note(spent, wait, reason)
            sleep_fn(wait)
    finally:
        queue.release()
