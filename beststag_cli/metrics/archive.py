"""`metrics archive`: move journal rows older than the retention into compressed monthly files.

Rows go to ``<data_dir>/metrics/archive/<table>-YYYY-MM.jsonl.gz`` (one JSON object per line;
a later run for the same month appends a new gzip member, which ``gzip.open`` reads as one
stream). Each file is written beside its final name and renamed, and only then are its rows
deleted, so a crash loses nothing (at worst a month's rows are archived twice). The hourly
rollups are refreshed first and kept, so 30-day figures and lifetime counters survive.

Count snapshots are kept at least 62 days (two 30-day windows: growth and its trend need them).

One archive at a time: a run holds ``<locks>/metrics-archive.lock`` (a second one exits 75 at once),
since two that read a month before either deletes it would archive its rows twice, and two that
copy a month's file at once would lose one's rows.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import LockHeld
from ..fsutil import atomic_writer, check_safe_path, ensure_private_dir
from ..journal import Journal, _locked_retry
from . import rollup
from .windows import iso_utc

if TYPE_CHECKING:
    from ..config import Settings

ARCHIVED_TABLES = ("requests", "cache_events", "count_snapshots")
SNAPSHOT_MIN_DAYS = 62


def _month_bounds(ts: float) -> tuple[float, float, str]:
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp(), f"{d.year:04d}-{d.month:02d}"


def _append_month(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_writer(path, "wb") as out:
        if path.exists():
            with open(path, "rb") as old:
                shutil.copyfileobj(old, out)
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            for r in rows:
                gz.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")


@contextlib.contextmanager
def archive_lock(settings: Settings) -> Iterator[None]:
    """Hold ``<locks>/metrics-archive.lock`` or raise :class:`LockHeld` at once (exit 75)."""
    from filelock import FileLock, Timeout

    from ..lockholder import clear_holder, holder_text, write_holder

    ensure_private_dir(settings.paths.locks)
    path = check_safe_path(settings.paths.locks / "metrics-archive.lock")
    lock = FileLock(str(path), timeout=0, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise LockHeld(f"another metrics archive is running ({holder_text(path)}lock {path})") from None
    try:
        write_holder(path)
        yield
    finally:
        clear_holder(path)
        lock.release()


def archive(settings: Settings, journal: Journal, *, now: float | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Archive and delete raw rows older than ``metrics.retention_days``; rows moved per table and file.

    :raises LockHeld: when another (non dry-run) archive is running.
    """
    if dry_run:
        return _archive(settings, journal, now=now, dry_run=True)
    with archive_lock(settings):
        return _archive(settings, journal, now=now, dry_run=False)


def _archive(settings: Settings, journal: Journal, *, now: float | None, dry_run: bool) -> dict[str, Any]:
    now = clock.timestamp() if now is None else now
    days = settings.metrics.retention_days
    cutoff = now - days * 86400
    rollup.refresh(journal)
    folder = settings.paths.metrics / "archive"
    result: dict[str, Any] = {
        "cutoff": iso_utc(cutoff),
        "retention_days": days,
        "folder": str(folder),
        "dry_run": dry_run,
        "tables": {},
        "files": [],
    }
    conn = journal.conn
    for table in ARCHIVED_TABLES:
        t_cut = min(cutoff, now - SNAPSHOT_MIN_DAYS * 86400) if table == "count_snapshots" else cutoff
        top = journal.query(f"SELECT max(rowid) AS m FROM {table} WHERE ts < ?", (t_cut,))[0]["m"]
        moved = 0
        if top is not None:
            lo = journal.query(f"SELECT min(ts) AS m FROM {table} WHERE ts < ? AND rowid <= ?", (t_cut, top))[0]["m"]
            while lo is not None and lo < t_cut:
                m_start, m_end, label = _month_bounds(lo)
                hi = min(m_end, t_cut)
                rows = journal.query(
                    f"SELECT * FROM {table} WHERE ts >= ? AND ts < ? AND rowid <= ? ORDER BY ts", (m_start, hi, top)
                )
                if rows and not dry_run:
                    ensure_private_dir(folder)
                    path = folder / f"{table}-{label}.jsonl.gz"
                    _append_month(path, rows)

                    def delete(t: str = table, a: float = m_start, b: float = hi, r: int = top) -> None:
                        conn.execute(f"DELETE FROM {t} WHERE ts >= ? AND ts < ? AND rowid <= ?", (a, b, r))

                    _locked_retry(delete)
                    if str(path) not in result["files"]:
                        result["files"].append(str(path))
                moved += len(rows)
                lo = m_end
        result["tables"][table] = moved
    if not dry_run:
        rollup.reset_watermarks_if_empty(journal)
        journal.checkpoint()
    return result


def read_archive(path: Path) -> list[dict[str, Any]]:
    """Every row of one archive file (all its gzip members)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
