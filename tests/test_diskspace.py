"""`diskspace.as_disk_full`: which failures are a full disk (one answer for every module)."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from beststag_cli import diskspace
from beststag_cli.errors import DiskFull


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit __context__ is the point
    except BaseException as e:
        return e


@pytest.mark.parametrize(
    "free, err, full",
    [
        (10**9, OSError(errno.ENOSPC, "No space left on device", "/d/x"), True),
        (10**9, OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (10**9, OSError(errno.EACCES, "Permission denied"), False),
        (10**9, sqlite3.OperationalError("database or disk is full"), True),
        (10**9, sqlite3.OperationalError("disk I/O error"), False),  # plenty of room: not a full disk
        (40_000, sqlite3.OperationalError("disk I/O error"), True),
        (40_000, sqlite3.OperationalError("unable to open database file"), True),
        (40_000, sqlite3.OperationalError("database is locked"), False),
        (None, sqlite3.OperationalError("disk I/O error"), False),  # cannot tell: not claimed
        (
            40_000,
            _chained(
                sqlite3.OperationalError("cannot rollback - no transaction is active"),
                sqlite3.OperationalError("disk I/O error"),
            ),
            True,
        ),
        (10**9, _chained(RuntimeError("wrapped"), OSError(errno.ENOSPC, "full")), True),
        (10**9, ValueError("no"), False),
    ],
)
def test_what_counts_as_a_full_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int | None, err: BaseException, full: bool
) -> None:
    monkeypatch.setattr(diskspace, "free_bytes", lambda _p: free)
    got = diskspace.as_disk_full(err, tmp_path)
    assert (got is not None) == full
    if got is not None:
        assert isinstance(got, DiskFull) and "disk full" in got.message


def test_free_bytes_walks_up_to_an_existing_parent(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    got = diskspace.free_bytes(tmp_path / "not" / "yet")
    assert got is not None and abs(got - st.f_bavail * st.f_frsize) < 64 * 2**20


def test_a_cycle_of_causes_ends(tmp_path: Path) -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert diskspace.as_disk_full(a, tmp_path) is None
