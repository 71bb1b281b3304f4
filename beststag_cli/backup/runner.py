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
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import clock, errors
from beststag_cli.config import BACKUP_TYPES, Settings
from beststag_cli.fsutil import _fsync_dir, atomic_write, check_safe_path, ensure_private_dir
from beststag_cli.logs import log_event
from beststag_cli.names import did_you_mean

from .layout import (
    ATTACHMENTS,
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
    table_file,
    write_json_file,
    write_manifest,
)
from .verify import verify_dir

if TYPE_CHECKING:
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal

#: incremental windows start this long before the parent's start (clock skew, in-flight writes)
SAFETY_OVERLAP = timedelta(minutes=5)
#: field types whose values are small: the id listing of an incremental asks for one of them only
_SMALL_TYPES = ("checkbox", "autoNumber", "number", "rating", "percent", "currency", "singleSelect", "date",
                "count", "duration")
_DOWNLOAD_TRIES = 4
_DOWNLOAD_BACKOFF_S = 0.2

#: progress callback: (event, table, info) with event in start | page | done | failed
Progress = Callable[[str, str, dict[str, Any]], None]


@dataclass
class BackupResult:
    """What a run produced: its manifest and where it lives."""

    manifest: Manifest
    path: Path
    failed: dict[str, str] = field(default_factory=dict)
    #: the upload to backup.remote: {"status": "uploaded"|"failed", "url", ...}; None without a remote
    remote: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.manifest.status

    def summary(self) -> dict[str, Any]:
        out = self.manifest.summary(self.path)
        if self.remote is not None:
            out["remote"] = self.remote
        return out


# --------------------------------------------------------------------------------------------
# locks


@contextlib.contextmanager
def base_lock(settings: Settings, base_id: str, job: str = "backup") -> Iterator[Path]:
    """Hold ``<locks>/<job>-<base>.lock`` or raise :class:`LockHeld` at once (exit 75)."""
    from filelock import FileLock, Timeout

    ensure_private_dir(settings.paths.locks)
    path = check_safe_path(settings.paths.locks / f"{job}-{base_id}.lock")  # filelock truncates a link's target
    lock = FileLock(str(path), timeout=0, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise errors.LockHeld(f"another {job} of base {base_id} is running (lock {path})") from None
    try:
        yield path
    finally:
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
    progress: Progress | None
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    exceptions: dict[str, BaseException] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_backup(settings: Settings, gateway: Gateway, backup_type: str, tables: list[str] | None = None, *,
               progress: Progress | None = None) -> BackupResult:
    """Run one backup of ``backup_type`` over ``tables`` (default: the type's tables from config).

    :return: the result; ``status`` is ``ok`` or ``partial`` (some tables failed, the rest kept).
    :raises BadInput: unknown type or table (before anything is written).
    :raises LockHeld: another backup of this base is running.
    :raises UpstreamUnavailable | OperationFailed: nothing could be backed up (nothing is kept).
    """
    if backup_type not in BACKUP_TYPES:
        raise errors.BadInput(f"unknown backup type {backup_type!r} (expected one of {', '.join(BACKUP_TYPES)})")
    names = list(tables) if tables else list(settings.backup.of(backup_type).tables)
    for n in names:
        if not n.strip() or "/" in n or n in (".", ".."):
            raise errors.UnknownTable(f"{n!r} is not a table name")
    if len(set(names)) != len(names):
        raise errors.BadInput(f"a table is named twice in {names}")
    base = gateway.base_id
    root = settings.paths.backups
    with base_lock(settings, base):
        schema = gateway.schema()
        by_name = {t["name"]: t for t in schema.get("tables", [])}
        for n in names:
            if n not in by_name:
                raise errors.UnknownTable(f"base {base} has no table {n!r}{did_you_mean(n, list(by_name))}",
                                          hint="`beststag sandbox info` or the Airtable UI lists the tables")
        journal = gateway.journal
        ensure_private_dir(root)
        _mark_interrupted(root, base, journal)
        started = clock.now()
        when = started.replace(microsecond=0)
        while _id_taken(root, backup_type, format_ts(when), journal):
            when += timedelta(seconds=1)
        backup_id = f"{backup_type}/{format_ts(when)}"
        partial = root / PARTIAL_DIR / f"{backup_type}-{format_ts(when)}-{os.getpid()}"
        ensure_private_dir(partial / "tables")
        write_json_file(partial / RUN_INFO, {"id": backup_id, "base": base, "pid": os.getpid(),
                                             "started": iso(started)})
        t0 = time.monotonic()
        if journal is not None:
            journal.record_backup_run(id=backup_id, type=backup_type, status="running", started=started.timestamp())
        log_event("backup.started", backup_id=backup_id, type=backup_type, base=base, tables=names)
        try:
            result = _run(settings, gateway, backup_type, backup_id, names, schema, by_name, root, partial, started,
                          progress)
        except BaseException as e:
            if journal is not None:
                journal.record_backup_run(id=backup_id, type=backup_type, status=FAILED,
                                          started=started.timestamp(), finished=clock.timestamp(),
                                          duration_s=time.monotonic() - t0,
                                          error=str(getattr(e, "message", e))[:500] or type(e).__name__)
            log_event("backup.failed", backup_id=backup_id, error=str(e)[:500])
            raise
        m = result.manifest
        if journal is not None:
            journal.record_backup_run(
                id=backup_id, type=backup_type, status=m.status, started=started.timestamp(),
                finished=clock.timestamp(), duration_s=time.monotonic() - t0, records=m.records, bytes=m.bytes,
                tables={n: {"records": t.records, "bytes": t.bytes + t.ids_bytes, "status": t.status}
                        for n, t in m.tables.items()},
                error="; ".join(f"{k}: {v}" for k, v in result.failed.items())[:500] or None)
        log_event("backup.finished", backup_id=backup_id, status=m.status, records=m.records, bytes=m.bytes,
                  duration_s=m.duration_s, failed=sorted(result.failed))
        if settings.backup.remote:  # off-site copy, still under the lock (cleanup cannot interleave)
            from .remote import upload_after_run

            result.remote = upload_after_run(settings, BackupInfo(backup_id, backup_type, result.path, m))
        return result


def _run(settings: Settings, gateway: Gateway, backup_type: str, backup_id: str, names: list[str],
         schema: dict[str, Any], by_name: dict[str, dict[str, Any]], root: Path, partial: Path, started: datetime,
         progress: Progress | None) -> BackupResult:
    compression = settings.backup.compression
    if compression == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            log_event("backup.zstd_unavailable", _level=30, note="zstandard is not installed; using gzip")
            compression = "gzip"
    schema_bytes, schema_sha = write_json_file(partial / SCHEMA, schema)
    backups = [b for b in list_backups(root)
               if b.good and b.manifest is not None and b.manifest.base == gateway.base_id]
    ctx = _Ctx(settings=settings, gateway=gateway, backup_type=backup_type, partial=partial,
               store=BlobStore(root), compression=compression, schema_tables=by_name,
               known_atts=_known_attachments(backups), progress=progress)
    plans = {n: _plan_table(backup_type, n, by_name[n]["id"], backups) for n in names}

    workers = max(1, min(settings.backup.parallel_tables, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup") as pool:
        futures = {n: pool.submit(_backup_table, ctx, n, plans[n]) for n in names}
        entries = {n: f.result() for n, f in futures.items()}
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
    m = Manifest(id=backup_id, type=backup_type, base=gateway.base_id, started=iso(started), finished=iso(finished),
                 duration_s=round((finished - started).total_seconds(), 3), status=PARTIAL if failed else OK,
                 parent=max(parents) if parents else None, compression=compression, schema_sha256=schema_sha,
                 schema_bytes=schema_bytes, attachments_sha256=hashlib.sha256(att_lines).hexdigest(),
                 attachments_count=len(atts), attachments_bytes=sum(int(a["size"]) for a in atts),
                 tables=entries)
    write_manifest(partial, m)
    # Self-verification: the folder only becomes a backup when it reads back whole.
    verify_dir(partial, store=ctx.store, expected_id=backup_id, hash_blobs=False)
    final = root / backup_id
    ensure_private_dir(final.parent)
    _fsync_dir(partial / "tables")
    _fsync_dir(partial)
    (partial / RUN_INFO).unlink(missing_ok=True)
    try:
        os.rename(partial, final)
    except OSError as e:
        raise errors.OperationFailed(f"cannot move the finished backup into {final}: {e.strerror}",
                                     hint=f"the files are kept in {partial}") from None
    _fsync_dir(final.parent)
    return BackupResult(m, final, failed)


# --------------------------------------------------------------------------------------------
# planning: full or incremental, and from which parent


@dataclass
class _TablePlan:
    table_id: str
    mode: str
    parent: str | None = None
    since: datetime | None = None
    estimate: int | None = None


def _plan_table(backup_type: str, name: str, table_id: str, backups: list[BackupInfo]) -> _TablePlan:
    estimate = None
    for b in reversed(backups):
        t = b.manifest.tables.get(name) if b.manifest else None
        if t is not None and t.status == OK and t.mode == "full":
            estimate = t.records
            break
    if backup_type != "incremental":
        return _TablePlan(table_id, "full", estimate=estimate)
    for b in reversed(backups):
        if b.type not in ("complete", "incremental") or b.manifest is None:
            continue
        t = b.manifest.tables.get(name)
        if t is not None and t.status == OK and t.table_id == table_id and t.as_of:
            return _TablePlan(table_id, "incremental", parent=b.id, since=parse_iso(t.as_of) - SAFETY_OVERLAP,
                              estimate=estimate)
    return _TablePlan(table_id, "full", estimate=estimate)


def _id_taken(root: Path, backup_type: str, ts: str, journal: Journal | None) -> bool:
    """An id is never reused: not by a finished backup, a killed run's leftovers, nor a journal row."""
    if (root / backup_type / ts).exists() or any((root / PARTIAL_DIR).glob(f"{backup_type}-{ts}-*")):
        return True
    return bool(journal is not None and journal.query("SELECT 1 FROM backup_runs WHERE id = ?",
                                                      (f"{backup_type}/{ts}",)))


def _known_attachments(backups: list[BackupInfo]) -> dict[str, tuple[str, int]]:
    """Attachment id → (sha256, size) from the attachment lists of earlier backups."""
    out: dict[str, tuple[str, int]] = {}
    for b in backups[-20:]:
        try:
            for a in read_attachment_list(b.path):
                out[str(a["id"])] = (str(a["sha256"]), int(a["size"]))
        except (OSError, ValueError, KeyError):
            continue
    return out


def _mark_interrupted(root: Path, base: str, journal: Journal | None) -> None:
    """Runs of this base left in `.partial/` are dead (we hold the base lock): say so in the journal."""
    pdir = root / PARTIAL_DIR
    if journal is None or not pdir.is_dir():
        return
    for d in pdir.iterdir():
        try:
            info = json.loads((d / RUN_INFO).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if info.get("base") != base:
            continue
        rows = journal.query("SELECT * FROM backup_runs WHERE id = ? AND status = 'running'", (info.get("id"),))
        for r in rows:
            journal.record_backup_run(id=r["id"], type=r["type"], status="interrupted", started=r["started"],
                                      finished=None, error=f"the run was killed; its files are in {d}")
            log_event("backup.interrupted", _level=30, backup_id=r["id"], partial=str(d))


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
    return (f"OR(IS_AFTER(LAST_MODIFIED_TIME(), DATETIME_PARSE('{t}')), "
            f"IS_AFTER(CREATED_TIME(), DATETIME_PARSE('{t}')))")


def _emit(ctx: _Ctx, event: str, table: str, **info: Any) -> None:
    if ctx.progress is not None:
        with contextlib.suppress(Exception):  # a display problem must never fail a backup
            ctx.progress(event, table, info)


def _backup_table(ctx: _Ctx, name: str, plan: _TablePlan) -> TableEntry:
    entry = TableEntry(name=name, table_id=plan.table_id, mode=plan.mode, parent=plan.parent,
                       since=iso(plan.since) if plan.since else None)
    as_of = clock.now()
    entry.as_of = iso(as_of)
    tdef = ctx.schema_tables[name]
    att_fields = [f["name"] for f in tdef["fields"] if f["type"] == "multipleAttachments"]
    writers: list[LineWriter] = []
    t0 = time.monotonic()
    _emit(ctx, "start", name, mode=plan.mode, total=plan.estimate)
    log_event("backup.table_started", table=name, mode=plan.mode, parent=plan.parent, since=entry.since)
    try:
        gw = ctx.gateway
        if plan.mode == "incremental":
            # ids first: a record created after this listing shows up among the changes below, so
            # (parent ∩ ids) ∪ changes never misses a record that exists when the run ends
            rel = table_file(name, plan.table_id, "ids", ctx.compression)
            w = LineWriter(ctx.partial / rel, ctx.compression)
            writers.append(w)
            for page in gw.iterate(name, fields=[_small_field(tdef)]):
                for r in page:
                    w.write_line(r["id"])
            entry.ids_file, entry.ids = rel, w.lines
            entry.ids_bytes, entry.ids_sha256 = w.close()
            pages = gw.iterate(name, formula=_changed_since(plan.since))  # type: ignore[arg-type]
        else:
            pages = gw.iterate(name)
        rel = table_file(name, plan.table_id, "jsonl", ctx.compression)
        w = LineWriter(ctx.partial / rel, ctx.compression)
        writers.append(w)
        n_atts = 0
        for page in pages:
            for r in page:
                if att_fields and ctx.settings.backup.attachments:
                    n_atts += _fetch_attachments(ctx, name, r, att_fields)
                w.write_json(r)
            _emit(ctx, "page", name, records=w.lines, total=plan.estimate)
        entry.file, entry.records = rel, w.lines
        entry.bytes, entry.sha256 = w.close()
        entry.attachments = n_atts
    except Exception as e:
        for w in writers:
            w.abort()
        msg = e.message if isinstance(e, errors.BestStagError) else f"{type(e).__name__}: {e}"
        entry = TableEntry(name=name, table_id=plan.table_id, status=FAILED, mode=plan.mode, error=msg[:300])
        ctx.exceptions[name] = e
        _emit(ctx, "failed", name, error=entry.error)
        log_event("backup.table_failed", _level=40, table=name, error=entry.error)
        return entry
    _emit(ctx, "done", name, records=entry.records, bytes=entry.bytes + entry.ids_bytes)
    log_event("backup.table_finished", table=name, mode=plan.mode, records=entry.records, ids=entry.ids,
              bytes=entry.bytes + entry.ids_bytes, attachments=entry.attachments,
              seconds=round(time.monotonic() - t0, 3))
    return entry


def _fetch_attachments(ctx: _Ctx, table: str, record: dict[str, Any], att_fields: list[str]) -> int:
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
                with ctx.lock:
                    ctx.known_atts[att_id] = (sha, size)
            att["sha256"] = sha
            # the file is in the blob store; Airtable's signed URLs expire in ~2 h and grant access
            # while they live, so they are not kept in the backup
            att.pop("url", None)
            att.pop("thumbnails", None)
            with ctx.lock:
                ctx.attachments[att_id] = {"id": att_id, "sha256": sha, "size": size,
                                           "filename": att.get("filename"), "type": att.get("type")}
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
                        raise errors.OperationFailed(f"attachment {att.get('id')} of {table}/{record_id} "
                                                     "disappeared while the backup ran")
                    url = str(match[0].get("url", ""))
        except (requests.ConnectionError, requests.Timeout) as e:
            last = type(e).__name__
        if attempt + 1 < _DOWNLOAD_TRIES:
            time.sleep(min(2.0, _DOWNLOAD_BACKOFF_S * 2 ** attempt))
    raise errors.UpstreamUnavailable(f"cannot download attachment {att.get('id')} ({att.get('filename')}) of "
                                     f"{table}/{record_id}: {last}")
