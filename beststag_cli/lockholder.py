"""Who holds a job lock: a `<lock>.holder` file next to it, so the run that finds the lock taken can
name the holder (pid, host, how long) instead of only the lock's path.

Best effort on both sides: a holder file that cannot be written or read costs the message its
details, never the run. A holder killed with SIGKILL leaves its file behind; the lock itself (an
flock) is free then, and the next holder writes its own.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from pathlib import Path
from typing import Any

from . import clock


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    """The kernel's boot id ("" when unknown): a pid means something only on its boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def host() -> str:
    return socket.gethostname()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if unknown.

    With it a reused pid is not taken for the holder."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    try:
        return raw[raw.rindex(b")") + 2 :].split()[19].decode()
    except (ValueError, IndexError):
        return None


def identity() -> dict[str, Any]:
    """This process: pid, host and boot id (a pid means something only on its boot)."""
    return {"pid": os.getpid(), "host": host(), "boot_id": boot_id()}


def write_holder(lock_path: str | Path) -> None:
    from .errors import BestStagError
    from .fsutil import write_private_file

    # a holder file that cannot be written (a full disk, a link planted at its name: UnsafePath) costs
    # the lock message its details, never the run
    with contextlib.suppress(OSError, BestStagError):
        write_private_file(f"{lock_path}.holder", json.dumps({**identity(), "since": clock.timestamp()}))


def clear_holder(lock_path: str | Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(f"{lock_path}.holder")


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def holder_text(lock_path: str | Path) -> str:
    """``pid 123 on host, for 4 s; `` from the holder file (empty when it is missing or unreadable)."""
    try:
        fd = os.open(f"{lock_path}.holder", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as f:
            h = json.loads(f.read(4096))
        age = max(0, round(clock.timestamp() - float(h["since"])))
        return f"pid {int(h['pid'])} on {h['host']}, for {_age(age)}; "
    except (OSError, ValueError, KeyError, TypeError):
        return ""
