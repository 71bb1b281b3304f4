"""The one clock of the tool.

Every module asks `clock.now()` instead of `datetime.now()`, so tests and the simulated cron
week can move time. `BESTSTAG_FAKE_NOW` (an ISO-8601 instant) pins the clock for a whole process;
`set_now()` / `advance()` move it inside one process. This is a testing aid, documented as such.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

_offset: float | None = None  # seconds added to the real clock when set in-process
_fixed: datetime | None = None


def _parse(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def now() -> datetime:
    """Current time, aware, in UTC."""
    if _fixed is not None:
        return _fixed
    env = os.environ.get("BESTSTAG_FAKE_NOW")
    if env:
        return _parse(env)
    real = datetime.now(UTC)
    return real + timedelta(seconds=_offset) if _offset else real


def timestamp() -> float:
    """Current time as a POSIX timestamp (follows the fake clock)."""
    if _fixed is None and _offset is None and not os.environ.get("BESTSTAG_FAKE_NOW"):
        return time.time()
    return now().timestamp()


def set_now(value: datetime | str | None) -> None:
    """Pin the in-process clock (None returns to real time)."""
    global _fixed
    _fixed = _parse(value) if isinstance(value, str) else value


def advance(seconds: float) -> None:
    """Move a pinned clock forward, or shift the real clock when none is pinned."""
    global _fixed, _offset
    if _fixed is not None:
        _fixed = _fixed + timedelta(seconds=seconds)
    else:
        _offset = (_offset or 0.0) + seconds


def reset() -> None:
    global _fixed, _offset
    _fixed = None
    _offset = None
