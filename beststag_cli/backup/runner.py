"""`backup run`: fetch tables through the gateway into a `.partial/` folder, verify it, rename it into place.

Guarantees (issue 7):

- **Atomic.** Everything is written under ``<backups>/.partial/<type>-<ts>-<pid>/``; the folder is
  renamed to ``<backups>/<type>/<ts>/`` only after the run has verified its own files. A kill at
  any moment leaves either nothing listed or a complete, verified backup.
- **Streaming.** Pages are written to the compressed file as they arrive; memory does not grow
  with the size of a table.
- **Parallel, within the limit.** ``backup.parallel_tables`` tables are fetched at once; every
  request goes through the gateway, whose limiter keeps the whole base (all threads and
  processes) within 5 requests a second.
- **Locked per base.** A second run for the same base fails at once with :class:`LockHeld` (75).
- **Partial success.** A table that fails is left out and named in the manifest; the other tables
  are kept, the backup is marked ``partial`` and the CLI exits 3.
- **Incremental.** Per table: records whose ``LAST_MODIFIED_TIME()`` or ``CREATED_TIME()`` is after
  the parent's start minus a safety overlap, plus the list of every current record id (so
  deletions are known). The parent is the newest good complete or incremental backup holding that
  table; without one the table is copied whole (a chain must start from a full copy).
- **Attachments** are downloaded during the run (Airtable's URLs expire after ~2 h) into the
  shared content-addressed store; a file already stored under the same attachment id is reused.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import clock, errors, interrupts
from beststag_cli.config import BACKUP_TYPES, Settings
from beststag_cli.diskspace import as_disk_full
from beststag_cli.fsutil import _fsync_dir, atomic_write, check_safe_path, ensure_private_dir
from beststag_cli.logs import log_event
from beststag_cli.names import did_you_mean
from beststag_cli.progress import Reporter, Task, guard

from .chain import table_chain, table_ids
from .layout import (
    ATTACHMENTS,
    BACKUP_ID_RE,
    FAILED,
    OK,
    PARTIAL,
    PARTIAL_DIR,
    RUN_INFO,
    SCHEMA,
    BackupInfo,
    BlobStore,
    LineWriter,
    Manifest,
    TableEntry,
    format_ts,
    iso,
    list_backups,
    parse_iso,
    read_attachment_list,
    read_manifest,
    table_file,
    write_json_file,
    write_manifest,
)
from .verify import verify_dir

if TYPE_CHECKING:
    from beststag_cli.feed.since import CatchUp, RecordChanges
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal

#: incremental windows start this long before the parent's start (clock skew, in-flight writes)
SAFETY_OVERLAP = timedelta(minutes=5)
#: field types whose values are small: the id listing of an incremental asks for one of them only
_SMALL_TYPES = (
    "checkbox",
    "autoNumber",
    "number",
    "rating",
    "percent",
    "currency",
    "singleSelect",
    "date",
    "count",
    "duration",
)
_DOWNLOAD_TRIES = 4
_DOWNLOAD_BACKOFF_S = 0.2
#: a parent whose as_of is later than Airtable's clock by more than this is not used (its clock ran ahead)
FUTURE_TOLERANCE = timedelta(seconds=5)
#: journal status of a run stopped by SIGINT/SIGTERM (not a failure for the backup alert)
INTERRUPTED = "interrupted"
#: how long an interrupted run waits for its in-flight table workers (each ends at its next page)
_STOP_WAIT_S = 30.0
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: how long a backup waits for another pull of the change feed (serve's loop, cron's) to finish
_FEED_WAIT_S = 10.0
#: records fetched again by id per request (a page; the formula stays well within a URL)
_FEED_BATCH = 100


@dataclass
class BackupResult:
    """What a run produced: its manifest and where it lives."""

    manifest: Manifest
    path: Path
    failed: dict[str, str] = field(default_factory=dict)
    #: the upload to backup.remote: {"status": "uploaded"|"failed", "url", ...}; None without a remote
    remote: dict[str, Any] | None = None
    #: one line each: parents refused (dated after Airtable's clock), ...
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.manifest.status

    def summary(self) -> dict[str, Any]:
        out = self.manifest.summary(self.path)
        if self.remote is not None:
            out["remote"] = self.remote
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# --------------------------------------------------------------------------------------------
# Airtable's clock, and a full disk


class AirtableClock:
    """Airtable's time, read from the ``Date`` header of its answers (issue 15 #4).

    Each answer gives a lower bound of Airtable's time when it arrived (the header is whole seconds,
    rounded down, and was written before the answer left); the estimate of "now" is the largest
    such bound carried forward by the monotonic time elapsed since. The local clock (which may be
    set anywhere) is never used for ``since``/``as_of``.
    """

    def __init__(self, endpoint_url: str) -> None:
        self._prefix = endpoint_url.rstrip("/")
        self._lock = threading.Lock()
        self._best: datetime | None = None  # Airtable's time at monotonic 0 (max over answers)

    def hook(self, resp: Any, *args: Any, **kwargs: Any) -> None:
        """A requests response hook: remember the answer's Date (answers from the endpoint only)."""
        if not str(getattr(resp, "url", "")).startswith(self._prefix):
            return
        self.observe(resp.headers.get("Date"), time.monotonic())

    def observe(self, header: str | None, monotonic: float) -> None:
        if not header:
            return
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        origin = when - timedelta(seconds=monotonic)
        with self._lock:
            if self._best is None or origin > self._best:
                self._best = origin

    def now(self) -> datetime | None:
        """Airtable's time now (a lower bound within a second or so), or None before any answer."""
        with self._lock:
            best = self._best
        return None if best is None else best + timedelta(seconds=time.monotonic())


def disk_full(e: BaseException, where: Path, journal_path: Path | None = None) -> errors.DiskFull | None:
    """``e`` as :class:`DiskFull` when a full disk is why it happened, else None (see :mod:`diskspace`)."""
    return as_disk_full(e, where, journal_path)


# --------------------------------------------------------------------------------------------
# locks


@contextlib.contextmanager
def base_lock(settings: Settings, base_id: str, job: str = "backup") -> Iterator[Path]:
    """Hold ``<locks>/<job>-<base>.lock`` or raise :class:`LockHeld` at once (exit 75)."""
    from filelock import FileLock, Timeout

    from ..lockholder import clear_holder, holder_text, write_holder

    ensure_private_dir(settings.paths.locks)
    path = check_safe_path(settings.paths.locks / f"{job}-{base_id}.lock")  # filelock truncates a link's target
    lock = FileLock(str(path), timeout=0, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise errors.LockHeld(f"another {job} of base {base_id} is running ({holder_text(path)}lock {path})") from None
    try:
        write_holder(path)
        yield path
    finally:
        clear_holder(path)
        lock.release()


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class _Ctx:
    settings: Settings
    gateway: Gateway
    backup_type: str
    partial: Path
    store: BlobStore
    compression: str
    schema_tables: dict[str, dict[str, Any]]
    known_atts: dict[str, tuple[str, int]]
    #: guarded: a display problem never fails a backup
    progress: Reporter
    airtable: AirtableClock | None = None
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    exceptions: dict[str, BaseException] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: set when the run must stop (interrupted, disk full): workers end at their next page
    stop: threading.Event = field(default_factory=threading.Event)
    #: an error that ends the whole run (not one table's failure): a full disk
    fatal: errors.BestStagError | None = None
    #: the change feed's catch-up before any table was read (None: no journal)
    feed: CatchUp | None = None

    def airtable_now(self) -> datetime:
        """Airtable's clock (see :class:`AirtableClock`); the local clock only if no answer had a Date."""
        now = self.airtable.now() if self.airtable is not None else None
        if now is None:
            log_event("backup.no_airtable_clock", _level=30, note="no Date header seen; using the local clock")
            return clock.now()
        return now


class _Stopped(Exception):
    """Raised inside a table worker when the run is stopping."""


def run_backup(
    settings: Settings,
    gateway: Gateway,
    backup_type: str,
    tables: list[str] | None = None,
    *,
    progress: Reporter | None = None,
) -> BackupResult:
    """Run one backup of ``backup_type`` over ``tables`` (default: the type's tables from config).

    :return: the result; ``status`` is ``ok`` or ``partial`` (some tables failed, the rest kept).
    :raises BadInput: unknown type or table (before anything is written).
    :raises LockHeld: another backup of this base is running.
    :raises UpstreamUnavailable | OperationFailed: nothing could be backed up (nothing is kept).
    :raises DiskFull: a write failed with ENOSPC/EDQUOT (the partial run is removed at once).
    :raises Interrupted | KeyboardInterrupt: SIGTERM/SIGINT (workers stopped, partial run removed,
        journal row closed as ``interrupted``).
    """
    if backup_type not in BACKUP_TYPES:
        raise errors.BadInput(f"unknown backup type {backup_type!r} (expected one of {', '.join(BACKUP_TYPES)})")
    names = list(tables) if tables else list(settings.backup.of(backup_type).tables)
    for n in names:
        if not n.strip() or "/" in n or n in (".", ".."):
            raise errors.UnknownTable(f"{n!r} is not a table name")
    if len(set(names)) != len(names):
        raise errors.BadInput(f"a table is named twice in {names}")
    try:
        return _run_locked(settings, gateway, backup_type, names, progress)
    except (OSError, sqlite3.OperationalError) as e:
        full = disk_full(e, settings.paths.backups, settings.paths.journal)
        if full is not None:
            raise full from None
        raise


def _run_locked(
    settings: Settings, gateway: Gateway, backup_type: str, names: list[str], progress: Reporter | None
) -> BackupResult:
    base = gateway.base_id
    with base_lock(settings, base):  # first: a second run exits 75 before it opens anything
        airtable = AirtableClock(settings.endpoint_url)
        session = gateway.api.session
        session.hooks["response"].append(airtable.hook)
        try:
            return _run_with_clock(settings, gateway, backup_type, names, progress, airtable)
        finally:
            with contextlib.suppress(ValueError):
                session.hooks["response"].remove(airtable.hook)


def _run_with_clock(
    settings: Settings,
    gateway: Gateway,
    backup_type: str,
    names: list[str],
    progress: Reporter | None,
    airtable: AirtableClock,
) -> BackupResult:
    base = gateway.base_id
    root = settings.paths.backups
    schema = gateway.schema()
    by_name = {t["name"]: t for t in schema.get("tables", [])}
    for n in names:
        if n not in by_name:
            raise errors.UnknownTable(
                f"base {base} has no table {n!r}{did_you_mean(n, list(by_name))}",
                hint="`beststag sandbox info` or the Airtable UI lists the tables",
            )
    journal = gateway.journal
    ensure_private_dir(root)
    close_dead_runs(root, base, journal)
    started = clock.now()
    when = started.replace(microsecond=0)
    while _id_taken(root, backup_type, format_ts(when), journal):
        when += timedelta(seconds=1)
    backup_id = f"{backup_type}/{format_ts(when)}"
    partial = root / PARTIAL_DIR / f"{backup_type}-{format_ts(when)}-{os.getpid()}"
    t0 = time.monotonic()
    try:
        ensure_private_dir(partial / "tables")
        write_json_file(
            partial / RUN_INFO, {"id": backup_id, "base": base, "pid": os.getpid(), "started": iso(started)}
        )
        if journal is not None:
            journal.record_backup_run(id=backup_id, type=backup_type, status="running", started=started.timestamp())
        log_event("backup.started", backup_id=backup_id, type=backup_type, base=base, tables=names)
        result = _run(
            settings,
            gateway,
            backup_type,
            backup_id,
            names,
            schema,
            by_name,
            root,
            partial,
            started,
            progress,
            airtable,
        )
    except BaseException as e:
        signum = interrupts.requested()
        if signum is not None and not isinstance(e, errors.Interrupted | KeyboardInterrupt):
            e = errors.Interrupted(signum)  # whatever the signal's exception was turned into on its way
        full = _close_failed_run(settings, journal, backup_id, backup_type, partial, started, t0, e)
        if full is not None and full is not e:
            raise full from None  # with the free space as it was when the write failed
        raise e from None
    m = result.manifest
    if journal is not None:
        try:
            journal.record_backup_run(
                id=backup_id,
                type=backup_type,
                status=m.status,
                started=started.timestamp(),
                finished=clock.timestamp(),
                duration_s=time.monotonic() - t0,
                records=m.records,
                bytes=m.bytes,
                tables={
                    n: {"records": t.records, "bytes": t.bytes + t.ids_bytes, "status": t.status}
                    for n, t in m.tables.items()
                },
                error="; ".join(f"{k}: {v}" for k, v in result.failed.items())[:500] or None,
            )
        except sqlite3.Error as e:  # the backup is in place; the next run closes the row from it
            log_event("backup.journal_unwritable", _level=30, backup_id=backup_id, error=str(e)[:200])
    log_event(
        "backup.finished",
        backup_id=backup_id,
        status=m.status,
        records=m.records,
        bytes=m.bytes,
        duration_s=m.duration_s,
        failed=sorted(result.failed),
    )
    if settings.backup.remote:  # off-site copy, still under the lock (cleanup cannot interleave)
        from .remote import upload_after_run

        result.remote = upload_after_run(settings, BackupInfo(backup_id, backup_type, result.path, m))
    return result


def _close_failed_run(
    settings: Settings,
    journal: Journal | None,
    backup_id: str,
    backup_type: str,
    partial: Path,
    started: datetime,
    t0: float,
    e: BaseException,
) -> errors.DiskFull | None:
    """A run that raised: remove its partial folder when it must not stay (a full disk, an interruption),
    close its journal row (``failed`` or ``interrupted``) when the journal can be written, log it.

    :return: ``e`` as :class:`DiskFull` when it was ENOSPC/EDQUOT (the caller raises that instead)."""
    full = disk_full(e, partial, settings.paths.journal)
    interrupted = isinstance(e, errors.Interrupted | KeyboardInterrupt)
    if full is not None or interrupted:
        shutil.rmtree(partial, ignore_errors=True)  # at once: it holds the space the disk lacks
    status = INTERRUPTED if interrupted else FAILED
    message = (full.message if full is not None else str(getattr(e, "message", e)))[:500] or type(e).__name__
    if journal is not None:
        try:
            journal.record_backup_run(
                id=backup_id,
                type=backup_type,
                status=status,
                started=started.timestamp(),
                finished=clock.timestamp(),
                duration_s=time.monotonic() - t0,
                error=message,
            )
        except Exception as je:  # a full disk may refuse this too; the next run closes the row
            with contextlib.suppress(Exception):
                log_event("backup.journal_unwritable", _level=30, backup_id=backup_id, error=str(je)[:200])
    with contextlib.suppress(Exception):
        log_event(
            "backup.interrupted" if interrupted else "backup.failed", _level=30, backup_id=backup_id, error=message
        )
    return full


def _run(
    settings: Settings,
    gateway: Gateway,
    backup_type: str,
    backup_id: str,
    names: list[str],
    schema: dict[str, Any],
    by_name: dict[str, dict[str, Any]],
    root: Path,
    partial: Path,
    started: datetime,
    progress: Reporter | None,
    airtable: AirtableClock | None = None,
) -> BackupResult:
    compression = settings.backup.compression
    if compression == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            log_event("backup.zstd_unavailable", _level=30, note="zstandard is not installed; using gzip")
            compression = "gzip"
    schema_bytes, schema_sha = write_json_file(partial / SCHEMA, schema)
    backups = [
        b for b in list_backups(root) if b.good and b.manifest is not None and b.manifest.base == gateway.base_id
    ]
    ctx = _Ctx(
        settings=settings,
        gateway=gateway,
        backup_type=backup_type,
        partial=partial,
        store=BlobStore(root),
        compression=compression,
        schema_tables=by_name,
        known_atts=_known_attachments(backups),
        progress=guard(progress),
        airtable=airtable,
    )
    warnings: list[str] = []
    ctx.feed = _feed_catch_up(settings, gateway, schema)
    airtable_now = ctx.airtable_now()
    plans = {n: _plan_table(backup_type, n, by_name[n]["id"], backups, airtable_now, warnings) for n in names}
    for w in warnings:
        log_event("backup.parent_refused", _level=30, backup_id=backup_id, warning=w)
    for n, plan in plans.items():
        _plan_feed(ctx, n, plan, backups)

    entries = _run_tables(ctx, names, plans)
    if ctx.fatal is not None:
        raise ctx.fatal
    failed = {n: e.error or "failed" for n, e in entries.items() if e.status != OK}
    if len(failed) == len(names):
        first = next(iter(failed.values()))
        shutil.rmtree(partial, ignore_errors=True)
        msg = f"backup {backup_id} failed: every table failed; first: {first}"
        if all(isinstance(e, errors.UpstreamUnavailable) for e in ctx.exceptions.values()):
            raise errors.UpstreamUnavailable(msg)
        raise errors.OperationFailed(msg)

    atts = sorted(ctx.attachments.values(), key=lambda a: a["id"])
    att_lines = "".join(json.dumps(a, ensure_ascii=False, sort_keys=True) + "\n" for a in atts).encode()
    atomic_write(partial / ATTACHMENTS, att_lines)
    finished = clock.now()
    parents = [e.parent for e in entries.values() if e.parent]
    m = Manifest(
        id=backup_id,
        type=backup_type,
        base=gateway.base_id,
        started=iso(started),
        finished=iso(finished),
        duration_s=round((finished - started).total_seconds(), 3),
        status=PARTIAL if failed else OK,
        parent=max(parents) if parents else None,
        compression=compression,
        schema_sha256=schema_sha,
        schema_bytes=schema_bytes,
        attachments_sha256=hashlib.sha256(att_lines).hexdigest(),
        attachments_count=len(atts),
        attachments_bytes=sum(int(a["size"]) for a in atts),
        tables=entries,
    )
    write_manifest(partial, m)
    # Self-verification: the folder only becomes a backup when it reads back whole.
    verify_dir(partial, store=ctx.store, expected_id=backup_id, hash_blobs=False)
    final = root / backup_id
    ensure_private_dir(final.parent)
    _fsync_dir(partial / "tables")
    _fsync_dir(partial)
    try:
        # run.json moves with the folder: a kill right after the rename leaves a finished backup whose
        # journal row the next run closes (close_dead_runs); a kill before it, a partial it recognises
        os.rename(partial, final)
    except OSError as e:
        if e.errno in _DISK_FULL_ERRNOS:
            raise
        raise errors.OperationFailed(
            f"cannot move the finished backup into {final}: {e.strerror}", hint=f"the files are kept in {partial}"
        ) from None
    _fsync_dir(final.parent)
    (final / RUN_INFO).unlink(missing_ok=True)
    _prune_feed_log(ctx, plans, entries)
    return BackupResult(m, final, failed, warnings=warnings)


def _run_tables(ctx: _Ctx, names: list[str], plans: dict[str, _TablePlan]) -> dict[str, TableEntry]:
    """Back up each table in a worker thread; on an exception here (SIGINT/SIGTERM raised in this, the
    main thread) or a fatal error in a worker: start nothing new, cancel what is queued, let the
    in-flight workers stop at their next page (bounded wait), then raise."""
    workers = max(1, min(ctx.settings.backup.parallel_tables, len(names)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup")
    futures: dict[str, Future[TableEntry]] = {}
    try:
        for n in names:
            futures[n] = pool.submit(_backup_table, ctx, n, plans[n])
        pending: set[Future[TableEntry]] = set(futures.values())
        while pending and ctx.fatal is None:
            interrupts.check()  # a signal whose exception something swallowed is not lost
            # a timed wait, so that a signal handler runs promptly in this thread
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        interrupts.check()
    except BaseException:
        _stop_workers(ctx, pool, futures)
        raise
    if ctx.fatal is not None:
        _stop_workers(ctx, pool, futures)
        return {}
    pool.shutdown(wait=True)
    return {n: f.result() for n, f in futures.items()}


def _stop_workers(ctx: _Ctx, pool: ThreadPoolExecutor, futures: dict[str, Future[TableEntry]]) -> None:
    ctx.stop.set()
    pool.shutdown(wait=False, cancel_futures=True)
    running = [f for f in futures.values() if not f.done()]
    if running:
        _, still = wait(running, timeout=_STOP_WAIT_S)
        if still:
            log_event("backup.workers_still_running", _level=30, count=len(still))


# --------------------------------------------------------------------------------------------
# planning: full or incremental, and from which parent


@dataclass
class _TablePlan:
    table_id: str
    mode: str
    parent: str | None = None
    since: datetime | None = None
    #: an incremental's changes from the feed's record log (None: from a listing, for `fallback`'s reason)
    feed: RecordChanges | None = None
    fallback: str | None = None
    parent_cursor: int = 0


def _plan_table(
    backup_type: str,
    name: str,
    table_id: str,
    backups: list[BackupInfo],
    airtable_now: datetime | None = None,
    warnings: list[str] | None = None,
) -> _TablePlan:
    """Full or incremental, and from which parent: the newest good complete or incremental backup of
    the table whose chain is whole and whose ``as_of`` is not after Airtable's clock (a parent taken
    with a clock ahead would make ``since`` skip every change made until that clock is reached)."""
    if backup_type != "incremental":
        return _TablePlan(table_id, "full")
    index = {b.id: b for b in backups}
    for b in reversed(backups):
        if b.type not in ("complete", "incremental") or b.manifest is None:
            continue
        t = b.manifest.tables.get(name)
        if t is None or t.status != OK or t.table_id != table_id or not t.as_of:
            continue
        as_of = parse_iso(t.as_of)
        if airtable_now is not None and as_of > airtable_now + FUTURE_TOLERANCE:
            if warnings is not None:
                warnings.append(
                    f"{b.id} is not used as the parent of {name}: it is dated {iso(as_of)}, "
                    f"{_ago(as_of - airtable_now)} after Airtable's clock (a clock ahead when it "
                    "ran); the table is taken from an earlier backup or in full"
                )
            continue
        try:
            table_chain(b, name, index)
        except errors.OperationFailed:
            continue  # its chain is broken: an incremental on top of it could never be restored
        return _TablePlan(table_id, "incremental", parent=b.id, since=as_of - SAFETY_OVERLAP)
    return _TablePlan(table_id, "full")


def _feed_catch_up(settings: Settings, gateway: Gateway, schema: dict[str, Any]) -> CatchUp | None:
    """Pull the change feed up to now (when it is on), so its record log can stand in for id listings."""
    journal = gateway.journal
    if journal is None:
        return None
    from beststag_cli.feed.since import catch_up

    feed = catch_up(gateway, journal, schema, max_pages=settings.feed.max_pages, wait=_FEED_WAIT_S)
    if feed.point is not None:
        log_event("backup.feed", cursor=feed.point.cursor, usable=feed.reason is None, reason=feed.reason)
    return feed


def _plan_feed(ctx: _Ctx, name: str, plan: _TablePlan, backups: list[BackupInfo]) -> None:
    """An incremental uses the feed's record log when it is whole since the parent; else why not."""
    if plan.mode != "incremental":
        return
    feed = ctx.feed
    if feed is None or feed.point is None or feed.reason is not None:
        plan.fallback = feed.reason if feed is not None and feed.reason else "the change feed is off"
        return
    parent = next(b for b in backups if b.id == plan.parent)
    assert parent.manifest is not None
    pe = parent.manifest.tables[name]
    if pe.feed_webhook is None or not pe.feed_cursor:
        plan.fallback = f"the parent {parent.id} was taken without the change feed"
        return
    from beststag_cli.feed.since import Point, changes_since

    journal = ctx.gateway.journal
    assert journal is not None
    got = changes_since(journal, ctx.gateway.base_id, plan.table_id, Point(pe.feed_webhook, pe.feed_cursor), feed.point)
    if isinstance(got, str):
        plan.fallback = got
        return
    plan.feed, plan.parent_cursor = got, pe.feed_cursor


def _prune_feed_log(ctx: _Ctx, plans: dict[str, _TablePlan], entries: dict[str, TableEntry]) -> None:
    """A table whose incremental used the log no longer needs its rows before its parent's point (a later
    incremental starts from this backup's point; one from an older parent falls back, told by the mark)."""
    journal = ctx.gateway.journal
    for name, plan in plans.items():
        e = entries.get(name)
        if journal is None or plan.feed is None or e is None or e.status != OK:
            continue
        from beststag_cli.feed.since import prune

        try:
            prune(journal, ctx.gateway.base_id, plan.table_id, plan.parent_cursor)
        except sqlite3.Error as err:  # the backup is in place; the log is pruned next time
            log_event("backup.feed_prune_failed", _level=30, table=name, error=str(err)[:200])


def _ago(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    if secs >= 2 * 86400:
        return f"{secs // 86400} days"
    if secs >= 2 * 3600:
        return f"{secs // 3600} hours"
    if secs >= 120:
        return f"{secs // 60} minutes"
    return f"{secs} s"


def _id_taken(root: Path, backup_type: str, ts: str, journal: Journal | None) -> bool:
    """An id is never reused: not by a finished backup, a killed run's leftovers, nor a journal row."""
    if (root / backup_type / ts).exists() or any((root / PARTIAL_DIR).glob(f"{backup_type}-{ts}-*")):
        return True
    return bool(
        journal is not None and journal.query("SELECT 1 FROM backup_runs WHERE id = ?", (f"{backup_type}/{ts}",))
    )


def _known_attachments(backups: list[BackupInfo]) -> dict[str, tuple[str, int]]:
    """Attachment id → (sha256, size) from the attachment lists of earlier backups."""
    out: dict[str, tuple[str, int]] = {}
    for b in backups[-20:]:
        try:
            for a in read_attachment_list(b.path):
                out[str(a["id"])] = (str(a["sha256"]), int(a["size"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def close_dead_runs(root: Path, base: str, journal: Journal | None) -> list[str]:
    """Close the journal rows of runs that died without closing them (SIGKILL, power loss).

    Called under the base's backup lock, so no run of this base is alive: a ``running`` row whose
    run folder is still in ``.partial/`` (with this base in its run.json) becomes ``interrupted``;
    one whose backup was renamed into place (killed between the rename and the journal write) gets
    the status of its manifest; one with neither folder (its leftovers were cleaned up) becomes
    ``interrupted``. Rows of other bases' live runs (their partial names another base) are left.
    :return: the ids closed.
    """
    if journal is None:
        return []
    closed: list[str] = []
    pdir = root / PARTIAL_DIR
    partial_base: dict[str, tuple[str | None, Path]] = {}
    for d in pdir.iterdir() if pdir.is_dir() else []:
        try:
            info = json.loads((d / RUN_INFO).read_text(encoding="utf-8"))
            partial_base[str(info["id"])] = (info.get("base"), d)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for r in journal.query("SELECT * FROM backup_runs WHERE status = 'running'"):
        rid = str(r["id"])
        if not BACKUP_ID_RE.match(rid):
            continue
        where = partial_base.get(rid)
        if where is not None:
            if where[0] != base:
                continue
            status, note = INTERRUPTED, f"the run was killed; its files are in {where[1]}"
        else:
            final = root / rid
            info_file = final / RUN_INFO
            try:
                m = read_manifest(final)
            except (OSError, ValueError, KeyError, TypeError, errors.BadInput):
                m = None
            if m is not None:
                if m.base != base:
                    continue
                journal.record_backup_run(
                    id=rid,
                    type=r["type"],
                    status=m.status,
                    started=r["started"],
                    finished=parse_iso(m.finished).timestamp() if m.finished else None,
                    duration_s=m.duration_s,
                    records=m.records,
                    bytes=m.bytes,
                    error="the run was killed after its backup was in place",
                )
                info_file.unlink(missing_ok=True)
                closed.append(rid)
                log_event("backup.row_closed", _level=30, backup_id=rid, status=m.status)
                continue
            status, note = INTERRUPTED, "the run was killed; nothing of it is left"
        journal.record_backup_run(
            id=rid, type=r["type"], status=status, started=r["started"], finished=None, error=note
        )
        closed.append(rid)
        log_event("backup.interrupted", _level=30, backup_id=rid, note=note)
    return closed


# --------------------------------------------------------------------------------------------
# one table


def _small_field(table: dict[str, Any]) -> str:
    for f in table["fields"]:
        if f["type"] in _SMALL_TYPES:
            return str(f["name"])
    primary = table.get("primaryFieldId")
    for f in table["fields"]:
        if f["id"] == primary:
            return str(f["name"])
    return str(table["fields"][0]["name"])


def _changed_since(since: datetime) -> str:
    t = iso(since)
    return f"OR(IS_AFTER(LAST_MODIFIED_TIME(), DATETIME_PARSE('{t}')), IS_AFTER(CREATED_TIME(), DATETIME_PARSE('{t}')))"


def _backup_table(ctx: _Ctx, name: str, plan: _TablePlan) -> TableEntry:
    entry = TableEntry(
        name=name,
        table_id=plan.table_id,
        mode=plan.mode,
        parent=plan.parent,
        since=iso(plan.since) if plan.since else None,
        changes="feed" if plan.feed is not None else "listing",
        fallback=plan.fallback,
    )
    point = ctx.feed.point if ctx.feed is not None else None
    if point is not None:  # taken before this table is read: what its listing missed is after it
        entry.feed_webhook, entry.feed_cursor = point.webhook, point.cursor
    # Airtable's time before the first listing request: every change after it is in this run or the next
    entry.as_of = iso(ctx.airtable_now())
    tdef = ctx.schema_tables[name]
    att_fields = [f["name"] for f in tdef["fields"] if f["type"] == "multipleAttachments"]
    writers: list[LineWriter] = []
    t0 = time.monotonic()
    # no total: Airtable does not say how many records a listing holds, and an earlier backup's count
    # is stale (a bar full while the listing went on); the display shows the count and its rate
    task = ctx.progress.task(f"backup {name}" + (" (changes)" if plan.mode == "incremental" else ""))
    log_event("backup.table_started", table=name, mode=plan.mode, parent=plan.parent, since=entry.since)
    try:
        gw = ctx.gateway
        if plan.feed is not None:
            pages = _feed_pages(ctx, name, plan, plan.feed, entry, writers)
        elif plan.mode == "incremental":
            # ids first: a record created after this listing shows up among the changes below, so
            # (parent ∩ ids) ∪ changes never misses a record that exists when the run ends
            rel = table_file(name, plan.table_id, "ids", ctx.compression)
            w = LineWriter(ctx.partial / rel, ctx.compression)
            writers.append(w)
            ids_task = ctx.progress.task(f"backup {name} (ids)")
            for page in gw.iterate(name, fields=[_small_field(tdef)]):
                _check_stop(ctx)
                for r in page:
                    w.write_line(r["id"])
                ids_task.advance(len(page))
            entry.ids_file, entry.ids = rel, w.lines
            entry.ids_bytes, entry.ids_sha256 = w.close()
            ids_task.done(f"{entry.ids:,} ids")
            pages = gw.iterate(name, formula=_changed_since(plan.since))  # type: ignore[arg-type]
        else:
            pages = gw.iterate(name)
        rel = table_file(name, plan.table_id, "jsonl", ctx.compression)
        w = LineWriter(ctx.partial / rel, ctx.compression)
        writers.append(w)
        n_atts = 0
        for page in pages:
            _check_stop(ctx)
            for r in page:
                if att_fields and ctx.settings.backup.attachments:
                    _check_stop(ctx)
                    n_atts += _fetch_attachments(ctx, name, r, att_fields, task)
                w.write_json(r)
            task.advance(len(page))
        entry.file, entry.records = rel, w.lines
        entry.bytes, entry.sha256 = w.close()
        entry.attachments = n_atts
    except Exception as e:
        for w in writers:
            w.abort()
        full = disk_full(e, ctx.partial, ctx.settings.paths.journal)
        if full is not None:  # not one table's problem: the whole run stops
            with ctx.lock:
                if ctx.fatal is None:
                    ctx.fatal = full
            ctx.stop.set()
            e = full
        msg = e.message if isinstance(e, errors.BestStagError) else f"{type(e).__name__}: {e}"
        entry = TableEntry(name=name, table_id=plan.table_id, status=FAILED, mode=plan.mode, error=msg[:300])
        ctx.exceptions[name] = e
        if ctx.stop.is_set() or isinstance(e, _Stopped):
            # the whole run is stopping (a signal, a full disk): its one line says why, not each table
            log_event("backup.table_stopped", table=name, reason=entry.error)
            task.failed("stopped")
            return entry
        task.failed(entry.error or "")
        log_event("backup.table_failed", _level=40, table=name, error=entry.error)
        return entry
    atts = entry.attachments
    task.done(f"{entry.records:,} records" + (f", {atts} attachment{'s' if atts != 1 else ''}" if atts else ""))
    log_event(
        "backup.table_finished",
        table=name,
        mode=plan.mode,
        records=entry.records,
        ids=entry.ids,
        bytes=entry.bytes + entry.ids_bytes,
        attachments=entry.attachments,
        seconds=round(time.monotonic() - t0, 3),
    )
    return entry


def _feed_pages(
    ctx: _Ctx, name: str, plan: _TablePlan, changes: RecordChanges, entry: TableEntry, writers: list[LineWriter]
) -> Iterator[list[dict[str, Any]]]:
    """The records the feed named, fetched again by id (a page of 100 a request); the id list is the
    parent's minus what the feed saw destroyed — and minus what it named but is gone by now — plus what
    was fetched. Pages are yielded as they come; the id list is written once the last one is in."""
    index = {b.id: b for b in list_backups(ctx.settings.paths.backups)}
    parent = index.get(str(plan.parent))
    if parent is None:
        raise errors.OperationFailed(f"the parent {plan.parent} of {name} is gone")
    ids = table_ids(parent, name, index) - changes.destroyed
    wanted = sorted(changes.upserted)
    found: set[str] = set()
    ids_task = ctx.progress.task(f"backup {name} (changes from the feed)")
    for i in range(0, len(wanted), _FEED_BATCH):
        batch = wanted[i : i + _FEED_BATCH]
        formula = "OR(" + ",".join(f"RECORD_ID()='{rid}'" for rid in batch) + ")"
        for page in ctx.gateway.iterate(name, formula=formula):
            _check_stop(ctx)
            found.update(str(r["id"]) for r in page)
            ids_task.advance(len(page))
            yield page
    ids = (ids - set(wanted)) | found  # named but not found: deleted after the feed was read
    rel = table_file(name, plan.table_id, "ids", ctx.compression)
    w = LineWriter(ctx.partial / rel, ctx.compression)
    writers.append(w)
    for rid in sorted(ids):
        w.write_line(rid)
    entry.ids_file, entry.ids = rel, w.lines
    entry.ids_bytes, entry.ids_sha256 = w.close()
    ids_task.done(f"{len(found):,} of {len(wanted):,} named records, {len(changes.destroyed):,} destroyed")


def _check_stop(ctx: _Ctx) -> None:
    if ctx.stop.is_set() or interrupts.requested() is not None:
        raise _Stopped("the run is stopping")


def _fetch_attachments(ctx: _Ctx, table: str, record: dict[str, Any], att_fields: list[str], task: Task) -> int:
    n = 0
    for fname in att_fields:
        for att in record.get("fields", {}).get(fname) or []:
            att_id = str(att.get("id", ""))
            known = ctx.known_atts.get(att_id)
            if known is not None and ctx.store.has(known[0], known[1]):
                sha, size = known
                ctx.store.touch(sha)
            else:
                sha, size = _download(ctx, table, record["id"], fname, att)
                task.advance(0, bytes=size)  # downloaded bytes; a file already stored moves none
                with ctx.lock:
                    ctx.known_atts[att_id] = (sha, size)
            att["sha256"] = sha
            # the file is in the blob store; Airtable's signed URLs expire in ~2 h and grant access
            # while they live, so they are not kept in the backup
            att.pop("url", None)
            att.pop("thumbnails", None)
            with ctx.lock:
                ctx.attachments[att_id] = {
                    "id": att_id,
                    "sha256": sha,
                    "size": size,
                    "filename": att.get("filename"),
                    "type": att.get("type"),
                }
            n += 1
    return n


def _download(ctx: _Ctx, table: str, record_id: str, field_name: str, att: dict[str, Any]) -> tuple[str, int]:
    """Download one attachment into the store; a stale URL is refreshed by re-reading the record."""
    import requests

    session = ctx.gateway.api.session
    url = str(att.get("url", ""))
    timeout = (10.0, ctx.settings.airtable.timeout_s)
    last = ""
    for attempt in range(_DOWNLOAD_TRIES):
        try:
            # no Authorization header: attachment URLs are signed and live on another host
            with session.get(url, timeout=timeout, stream=True, headers={"Authorization": None}) as resp:
                if resp.status_code == 200:
                    return ctx.store.put_chunks(resp.iter_content(1 << 16))
                last = f"HTTP {resp.status_code}"
                if resp.status_code in (403, 404, 410):
                    fresh = ctx.gateway.get(table, record_id).get("fields", {}).get(field_name) or []
                    match = [a for a in fresh if a.get("id") == att.get("id")]
                    if not match:
                        raise errors.OperationFailed(
                            f"attachment {att.get('id')} of {table}/{record_id} disappeared while the backup ran"
                        )
                    url = str(match[0].get("url", ""))
        except (requests.ConnectionError, requests.Timeout) as e:
            last = type(e).__name__
        if attempt + 1 < _DOWNLOAD_TRIES:
            time.sleep(min(2.0, _DOWNLOAD_BACKOFF_S * 2**attempt))
    raise errors.UpstreamUnavailable(
        f"cannot download attachment {att.get('id')} ({att.get('filename')}) of {table}/{record_id}: {last}"
    )
