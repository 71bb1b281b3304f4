"""Who holds a cache lock, and whether that process is gone (so the lock can be broken at once).

A lock's value names its holder: pid, the kernel's boot id (``/proc/sys/kernel/random/boot_id``),
the host name, the process's start time (``/proc/<pid>/stat``, so a reused pid is not taken for
the holder) and a random nonce (so a holder releases only its own lock). A waiter that finds a
lock held by a process on the *same host and boot* that no longer exists breaks it at once,
instead of waiting for the lock's expiry (a ``kill -9`` during a cache miss used to block the
next read of that query for up to the lock's TTL). Holders on another host or boot are judged by
the expiry only.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from ..lockholder import boot_id, host, start_time  # one notion of "this process" for every lock


def token() -> bytes:
    """A fresh lock value naming this process (JSON bytes)."""
    pid = os.getpid()
    return json.dumps(
        {"pid": pid, "boot": boot_id(), "host": host(), "start": start_time(pid) or "", "nonce": uuid.uuid4().hex},
        separators=(",", ":"),
    ).encode()


def parse(value: Any) -> dict[str, Any] | None:
    """The holder a lock value names, or None (not one of ours, or garbage)."""
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes | bytearray):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or isinstance(data.get("pid"), bool):
        return None
    return data


def is_dead(value: Any) -> bool:
    """True only when the holder is certainly gone: same host and boot, and its pid is not that process."""
    h = parse(value)
    if h is None or not boot_id() or h.get("boot") != boot_id() or h.get("host") != host():
        return False
    pid = int(h["pid"])
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    if _zombie(pid):
        return True  # exited, not yet reaped by its parent: it holds nothing
    started = start_time(pid)
    if started is None:
        return not os.path.exists(f"/proc/{pid}")
    want = h.get("start")
    return bool(want) and want != started  # the pid was reused by another process


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped (state Z)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        return raw[raw.rindex(b")") + 2 :].split()[0] == b"Z"
    except (OSError, ValueError, IndexError):
        return False
