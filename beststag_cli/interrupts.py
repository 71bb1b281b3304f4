"""SIGINT/SIGTERM for long commands: raise :class:`errors.Interrupted` in the main thread, once.

The CLI wraps a long command (``backup run``, ``backup restore``, ``backup cleanup``) in
:func:`handling`: the first SIGINT or SIGTERM raises ``Interrupted(signum)`` (exit 128 + signum)
wherever the main thread is, and is also remembered, so that core code which must not be cut
short can poll :func:`check` / :func:`requested` (worker threads never receive signals; an
exception raised inside an ``except Exception`` that swallows it is not lost either). Later
signals are remembered but raise nothing: the run is already stopping and cleans up (removes its
partial output, closes its journal row) without being cut short a second time.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from . import errors

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_lock = threading.Lock()


def requested() -> int | None:
    """The first signal received while :func:`handling` was active, or None."""
    with _lock:
        return _received[0] if _received else None


def check() -> None:
    """Raise :class:`errors.Interrupted` if a SIGINT/SIGTERM was received (any thread may call it)."""
    signum = requested()
    if signum is not None:
        raise errors.Interrupted(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    with _lock:
        first = not _received
        _received.append(signum)
    if first:
        raise errors.Interrupted(signum)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for the ``with`` body (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _lock:
        _received.clear()
    previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        with _lock:
            _received.clear()
