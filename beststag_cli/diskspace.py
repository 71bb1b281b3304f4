"""Is this failure a full disk? One answer for the cache, the journal, backups, restores and the CLI.

A full filesystem does not always say ENOSPC. SQLite says "database or disk is full" when it
knows, but with a few kilobytes left it often fails earlier, growing its -wal/-shm files or a temp
journal, and then it says "disk I/O error" or "unable to open database file". Those words also
mean other things, so they count as a full disk only when the filesystem really is nearly full.
Without this, an operator with 40 KB free got "internal error: disk I/O error" instead of the
`disk_full` line that tells them what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from .errors import DiskFull

#: below this much free space, SQLite's vague I/O errors are taken for a full disk
LOW_WATER_BYTES = 1 << 20

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_VAGUE_SQLITE = ("disk i/o error", "unable to open database file")


def free_bytes(path: str | Path) -> int | None:
    """Space left for us on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while True:
        try:
            st = os.statvfs(p)
            return int(st.f_bavail * st.f_frsize)
        except FileNotFoundError:
            if p.parent == p:
                return None
            p = p.parent
        except OSError:
            return None


def _causes(e: BaseException) -> list[BaseException]:
    """``e`` and what it was raised from (the cause may sit under a failed rollback)."""
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and all(cur is not seen for seen in out):
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def as_disk_full(e: BaseException, where: str | Path, sqlite_path: str | Path | None = None) -> DiskFull | None:
    """``e`` as :class:`DiskFull` when a full disk is why it happened, else None.

    :param where: the directory (or file) that was being written; its filesystem is the one checked.
    :param sqlite_path: the database a SQLite error names (defaults to ``where``).
    """
    for cur in _causes(e):
        if isinstance(cur, DiskFull):
            return cur
        if isinstance(cur, OSError) and cur.errno in _FULL_ERRNOS:
            path = Path(cur.filename) if isinstance(cur.filename, str) and cur.filename else Path(where)
            return DiskFull(str(path), free_bytes(path))
        if isinstance(cur, sqlite3.Error):
            text = str(cur).lower()
            path = Path(sqlite_path or where)
            free = free_bytes(path)
            if "full" in text:
                return DiskFull(str(path), free)
            if any(w in text for w in _VAGUE_SQLITE) and free is not None and free < LOW_WATER_BYTES:
                return DiskFull(str(path), free)
    return None
