"""The journal: one SQLite file that every beststag process appends to.

Every upstream request, cache event, backup and restore run and record-count snapshot lands
here; the metrics are computed from it. Several processes (the CLI, cron jobs, the webhook
server) write at once, so the file runs in WAL mode with a busy timeout, each append is one
INSERT in autocommit mode, and a write that still meets ``database is locked`` is retried.

The schema is versioned llm-style: ordered ``mNNN_name`` functions, the applied names kept in
``_migrations``, and :func:`migrate` is idempotent (safe to run from many processes at once).

>>> j = Journal(tmp / "journal.sqlite")            # doctest: +SKIP
>>> j.record_request(base="app...", table_name="Tarefas", method="GET", operation="list",
...                  status=200, duration_ms=112.5, records=100)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from beststag_cli import clock
from beststag_cli.errors import CorruptFile, UnsafePath
from beststag_cli.fsutil import ensure_private_dir, modes_kept, refuse_symlinks, touch_private

BUSY_TIMEOUT_MS = 5000
#: give up retrying a locked write after this long (the busy timeout already waited per try)
LOCKED_RETRY_TOTAL_S = 60.0

#: SQLite's companions of a database file (opened by name: each must not be a planted symlink)
COMPANIONS = ("-wal", "-shm", "-journal")
#: tables every migrated journal has (a file without them is not our journal)
REQUIRED_TABLES = frozenset(
    {
        "requests",
        "cache_events",
        "backup_runs",
        "restore_runs",
        "count_snapshots",
        "alert_state",
        "kv",
        "requests_hourly",
        "cache_hourly",
        "restore_items",
        "webhook_requests",
        "feed",
        "feed_gaps",
        "feed_activity",
        "feed_records",
        "drills",
    }
)

CACHE_EVENTS = ("hit", "miss", "stale", "set", "invalidate", "evict", "write_applied", "lock_broken")

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# migrations

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register a migration; they run in the order they are defined, each exactly once."""
    MIGRATIONS.append(fn)
    return fn


def _run(conn: sqlite3.Connection, script: str) -> None:
    # Statement by statement (not executescript, which commits) so a migration is one transaction.
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE TABLE requests (
            ts REAL NOT NULL,
            base TEXT,
            table_name TEXT,
            method TEXT NOT NULL,
            operation TEXT,
            status INTEGER,
            duration_ms REAL,
            records INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            error_type TEXT,
            retries INTEGER NOT NULL DEFAULT 0,
            source TEXT
        );
        CREATE INDEX idx_requests_ts ON requests (ts, base, table_name);

        CREATE TABLE cache_events (
            ts REAL NOT NULL,
            base TEXT,
            table_name TEXT,
            event TEXT NOT NULL,
            "key" TEXT,
            bytes INTEGER,
            age_s REAL
        );
        CREATE INDEX idx_cache_events_ts ON cache_events (ts, table_name, event);

        CREATE TABLE backup_runs (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            started REAL NOT NULL,
            finished REAL,
            duration_s REAL,
            records INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            tables_json TEXT,
            error TEXT
        );
        CREATE INDEX idx_backup_runs_started ON backup_runs (started, type);
        CREATE INDEX idx_backup_runs_type ON backup_runs (type, started);

        CREATE TABLE restore_runs (
            id TEXT PRIMARY KEY,
            backup_id TEXT NOT NULL,
            started REAL NOT NULL,
            finished REAL,
            duration_s REAL,
            records INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            progress_json TEXT
        );
        CREATE INDEX idx_restore_runs_started ON restore_runs (started);

        CREATE TABLE count_snapshots (
            ts REAL NOT NULL,
            base TEXT,
            table_name TEXT NOT NULL,
            records INTEGER NOT NULL
        );
        CREATE INDEX idx_count_snapshots_ts ON count_snapshots (ts, base, table_name);
        CREATE INDEX idx_count_snapshots_table ON count_snapshots (table_name, ts);

        CREATE TABLE alert_state (
            name TEXT PRIMARY KEY,
            firing INTEGER NOT NULL DEFAULT 0,
            since REAL,
            last_notified REAL,
            value REAL
        );

        CREATE TABLE kv (
            "key" TEXT PRIMARY KEY,
            value TEXT
        )
        """,
    )


@migration
def m002_metrics_hourly_rollups(conn: sqlite3.Connection) -> None:
    """Hourly pre-aggregates of requests and cache events (beststag_cli/metrics/rollup.py).

    ``hour`` is the POSIX second the UTC hour starts. Rows are folded in by rowid (a watermark in
    kv), so late appends still land in their hour; `metrics archive` keeps these when it moves
    old raw rows out.
    """
    _run(
        conn,
        """
        CREATE TABLE requests_hourly (
            hour INTEGER NOT NULL,
            table_name TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            rate_limited INTEGER NOT NULL DEFAULT 0,
            retried INTEGER NOT NULL DEFAULT 0,
            duration_n INTEGER NOT NULL DEFAULT 0,
            duration_sum_ms REAL NOT NULL DEFAULT 0,
            duration_max_ms REAL,
            records INTEGER NOT NULL DEFAULT 0,
            list_records INTEGER NOT NULL DEFAULT 0,
            list_bytes INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, table_name)
        );
        CREATE TABLE requests_duration_hourly (
            hour INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            n INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, bucket)
        );
        CREATE TABLE cache_hourly (
            hour INTEGER NOT NULL,
            table_name TEXT NOT NULL DEFAULT '',
            event TEXT NOT NULL,
            n INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            age_n INTEGER NOT NULL DEFAULT 0,
            age_sum_s REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, table_name, event)
        );
        CREATE INDEX idx_backup_runs_status ON backup_runs (type, status, finished)
        """,
    )


@migration
def m003_restore_items(conn: sqlite3.Connection) -> None:
    """What a restore has already written (beststag_cli/backup/restore.py), so a crashed one resumes.

    One row per record and phase: ``create`` (``src`` = id in the backup, ``dst`` = the new id),
    ``update``, ``upload`` (``src`` = record|field|attachment), ``link``, ``delete``.
    """
    _run(
        conn,
        """
        CREATE TABLE restore_items (
            restore_id TEXT NOT NULL,
            table_name TEXT NOT NULL,
            phase TEXT NOT NULL,
            src TEXT NOT NULL,
            dst TEXT,
            ts REAL NOT NULL
        );
        CREATE INDEX idx_restore_items ON restore_items (restore_id, phase)
        """,
    )


@migration
def m004_webhook_requests(conn: sqlite3.Connection) -> None:
    """One row per request answered by `beststag serve` (the webhook path's own performance)."""
    _run(
        conn,
        """
        CREATE TABLE webhook_requests (
            ts REAL NOT NULL,
            endpoint TEXT NOT NULL,
            operation TEXT,
            table_name TEXT,
            status INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            cache_status TEXT
        );
        CREATE INDEX idx_webhook_requests_ts ON webhook_requests (ts)
        """,
    )


@migration
def m005_feed(conn: sqlite3.Connection) -> None:
    """The change feed (beststag_cli/feed/): one webhook per base, its cursor, and what it saw.

    ``feed`` holds the webhook's id, MAC secret (the journal is 0600 like every data file; the secret
    is never logged or shown), the cursor of the next payload, its expiry and, while the feed is
    broken, since when and why. ``feed_gaps`` names the tables whose changes the feed missed (they
    are revalidated the old way until the feed is whole again). ``feed_activity`` counts the changes
    per hour, table, kind, source and user, for the usage metrics.
    """
    _run(
        conn,
        """
        CREATE TABLE feed (
            base TEXT PRIMARY KEY,
            webhook_id TEXT NOT NULL,
            mac_secret TEXT NOT NULL,
            cursor INTEGER NOT NULL DEFAULT 1,
            expiration TEXT,
            tables TEXT NOT NULL,
            created_ts REAL NOT NULL,
            last_pull_ts REAL,
            continuous_since_ts REAL,
            broken_since_ts REAL,
            broken_reason TEXT
        );
        CREATE TABLE feed_gaps (
            base TEXT NOT NULL,
            table_name TEXT NOT NULL,
            since_ts REAL NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (base, table_name)
        );
        CREATE TABLE feed_activity (
            hour_ts REAL NOT NULL,
            base TEXT NOT NULL,
            table_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            user_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (hour_ts, base, table_name, kind, source, user_id)
        )
        """,
    )


@migration
def m006_feed_records(conn: sqlite3.Connection) -> None:
    """The change feed's record log: which records the payloads named, for incremental backups.

    One row per (base, table id, record id): the number of the last payload that named the record and
    whether it created/updated it (``upsert``) or destroyed it (``destroy``). Table-wide marks use the
    record ids ``*gap`` (payloads up to that number may be lost), ``*fields`` (the table's fields or
    metadata changed at that payload) and ``*pruned`` (rows of older payloads were deleted). An
    incremental backup whose parent was taken at payload N reads the rows of payloads ≥ N instead of
    listing every record id (beststag_cli/feed/since.py). Written in the same transaction as the
    cursor, so a pull killed half-way repeats its payloads and ends in the same rows.
    """
    _run(
        conn,
        """
        CREATE TABLE feed_records (
            base TEXT NOT NULL,
            table_id TEXT NOT NULL,
            record_id TEXT NOT NULL,
            payload INTEGER NOT NULL,
            kind TEXT NOT NULL,
            note TEXT,
            PRIMARY KEY (base, table_id, record_id)
        );
        CREATE INDEX feed_records_by_payload ON feed_records (base, table_id, payload)
        """,
    )


@migration
def m007_drills(conn: sqlite3.Connection) -> None:
    """Restore drills (beststag_cli/backup/drill.py): one row per `backup drill`.

    ``status`` is ``running`` while it runs, then ``passed``, ``failed`` or ``interrupted``;
    ``requests`` is what the drill's restore sent (what a real restore of the backup would need),
    ``schema_requests`` the metadata calls creating the base would add, ``estimate_s`` both at
    ``rate_per_s``; ``problem`` names the first difference or the broken file of a failed drill.
    """
    _run(
        conn,
        """
        CREATE TABLE drills (
            id TEXT PRIMARY KEY,
            backup_id TEXT NOT NULL,
            backup_type TEXT NOT NULL,
            status TEXT NOT NULL,
            started REAL NOT NULL,
            finished REAL,
            duration_s REAL,
            records INTEGER NOT NULL DEFAULT 0,
            attachments INTEGER NOT NULL DEFAULT 0,
            links INTEGER NOT NULL DEFAULT 0,
            requests INTEGER NOT NULL DEFAULT 0,
            schema_requests INTEGER NOT NULL DEFAULT 0,
            rate_per_s REAL,
            estimate_s REAL,
            restore_s REAL,
            problem TEXT,
            detail_json TEXT
        );
        CREATE INDEX idx_drills_backup ON drills (backup_id, started)
        """,
    )


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations applied to this database, in the order they ran."""
    try:
        rows = conn.execute("SELECT name FROM _migrations ORDER BY applied_at, rowid").fetchall()
    except sqlite3.OperationalError:
        return []
    return [r[0] for r in rows]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration; return the names applied now (empty when up to date).

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the row that
    records it, so two processes migrating at once cannot both apply one.
    """
    _locked_retry(
        lambda: conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    )
    done: list[str] = []
    for fn in MIGRATIONS:
        name = fn.__name__
        if name in applied_migrations(conn):
            continue

        def apply(fn: Migration = fn, name: str = name) -> bool:
            try:
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                    conn.execute("COMMIT")
                    return False
                fn(conn)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, clock.timestamp()))
                conn.execute("COMMIT")
                return True
            except BaseException:
                _rollback(conn)
                raise

        if _locked_retry(apply):
            done.append(name)
    return done


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo an open transaction, if there still is one, without hiding why we got here.

    A signal's exception (SIGINT/SIGTERM → KeyboardInterrupt/Interrupted) can land right after COMMIT
    returned, and SQLite rolls back by itself after a failed COMMIT (disk full): an unconditional
    ROLLBACK then raised "cannot rollback - no transaction is active" and masked the real error (a
    SIGINT'd restore exited 1 instead of 130)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# --------------------------------------------------------------------------------------------
# connections


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def _locked_retry(fn: Callable[[], T], total_s: float = LOCKED_RETRY_TOTAL_S) -> T:
    """Run ``fn``, retrying while SQLite says the database is locked or busy.

    The busy timeout already waits inside SQLite; this covers the cases where SQLite returns
    SQLITE_BUSY at once (a read transaction that cannot be upgraded, WAL recovery at start).
    """
    deadline = time.monotonic() + total_s
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.25)


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot)."""


_CREATE_LOCK = threading.Lock()


def connect(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` (creating it 0600 and its folder 0700) with the journal's pragmas.

    Autocommit mode (``isolation_level=None``): each statement outside an explicit BEGIN is its
    own short transaction. WAL and SHM files inherit the main file's permissions.
    """
    p = Path(path)
    ensure_private_dir(p.parent)
    # sqlite3 follows links: a journal (or -wal) planted as a symlink would write to its target
    refuse_symlinks(p, *(str(p) + c for c in COMPANIONS))
    with _CREATE_LOCK:
        # Never open and close the file once it exists: closing any descriptor of a file drops every
        # POSIX lock this process holds on it, including those of SQLite connections of other threads,
        # and another process may then write at the same time (a "malformed" database).
        if not p.exists():
            touch_private(p)
        elif hasattr(os, "getuid") and p.stat().st_uid == os.getuid() and p.stat().st_mode & 0o077 and not modes_kept():
            os.chmod(p, 0o600, follow_symlinks=False)
    conn = sqlite3.connect(
        p,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
        factory=_Connection,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _locked_retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _is_corruption(exc: BaseException) -> bool:
    """SQLite saying the file is not a (sound) database, or lacks our schema."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if not isinstance(exc, sqlite3.OperationalError):
        return True  # SQLITE_CORRUPT "malformed", SQLITE_NOTADB "file is not a database", ...
    msg = str(exc).lower()
    return "no such table" in msg or "no such column" in msg or "malformed" in msg or "already exists" in msg


def corrupt_error(path: Path, detail: str) -> CorruptFile:
    """The one line a damaged journal gives: which file, what SQLite said, and how to recover."""
    return CorruptFile(
        f"the journal {path} is damaged ({detail}); beststag cannot read or write it",
        hint=(
            f"run `beststag doctor --repair` (moves it aside to {path.name}.corrupt-<time> in the data dir and "
            f"starts a fresh one), or move {path.name} and its -wal/-shm files out of {path.parent} yourself"
        ),
    )


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a journal whose schema is not one this beststag wrote (missing tables, unknown migrations)."""
    known = {fn.__name__ for fn in MIGRATIONS}
    unknown = [n for n in applied_migrations(conn) if n not in known]
    if unknown:
        raise corrupt_error(path, f"schema version {unknown[-1]} is newer than this beststag knows")
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = sorted(REQUIRED_TABLES - have)
    if missing:
        raise corrupt_error(path, "wrong schema: no table " + ", ".join(missing))


def quick_check(journal: Journal) -> str | None:
    """None when ``journal``'s file is sound (or absent), else the one line saying what is wrong (`doctor`).

    Opens the file through ``journal`` (SQLite keeps a process's locks right across its own
    connections) and runs ``PRAGMA quick_check``.
    """
    if not journal.path.exists():
        return None
    try:
        rows = journal.query("PRAGMA quick_check")
    except CorruptFile as e:
        return e.message
    result = "; ".join(str(next(iter(r.values()))) for r in rows[:3])
    return None if result == "ok" else corrupt_error(journal.path, result).message


def set_aside(path: str | Path) -> Path | None:
    """Move a damaged journal (and its -wal/-shm) to ``<name>.corrupt-<time>`` beside it; None if absent.

    Renames only (never opens the file); the next :class:`Journal` starts a fresh, empty one.
    """
    p = Path(path)
    if not os.path.lexists(p):
        return None
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    dest = p.with_name(f"{p.name}.corrupt-{stamp}")
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = p.with_name(f"{p.name}.corrupt-{stamp}-{n}")
    for c in COMPANIONS:
        comp = Path(str(p) + c)
        if os.path.lexists(comp):
            os.rename(comp, str(dest) + c)
    os.rename(p, dest)
    return dest


class Journal:
    """Append-mostly store of requests, cache events, backup runs and snapshots.

    Thread-safe: each thread gets its own connection, opened on first use. Fork-safe: a child
    process opens fresh connections instead of sharing its parent's. The schema is migrated
    once, when the first connection opens.

    :param path: the SQLite file (``settings.paths.journal``).
    :param source: default ``source`` of recorded requests (cli, webhook, cron...).
    """

    def __init__(self, path: str | Path, *, source: str = "cli") -> None:
        self.path = Path(path)
        self.source = source
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: a thread's connection lives in its thread-local slot and is closed when the thread
        # ends; this set only lets close() reach the ones still open.
        self._conns: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._migrated = False
        self._pid = os.getpid()
        self._closed = False
        #: set when a telemetry append met a damaged file (warned once; further ones are skipped)
        self._broken = False

    # ---- connection handling

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the schema migrated, on first use)."""
        if self._pid != os.getpid():
            # forked: the parent's connections must not be used (or closed) here
            self._local = threading.local()
            self._conns = weakref.WeakSet()
            self._lock = threading.Lock()
            self._migrated = False
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._guard():
                conn = connect(self.path)
                with self._lock:
                    self._closed = False
                    self._conns.add(conn)
                    if not self._migrated:
                        migrate(conn)
                        check_schema(conn, self.path)
                        self._migrated = True
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's "not a database" / "malformed" / missing-schema errors into one CorruptFile."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            if _is_corruption(e):
                raise corrupt_error(self.path, str(e)) from None
            raise

    def _telemetry(self, write: Callable[[], None]) -> None:
        """Appends that only feed the metrics (requests, cache events, webhook answers): on a damaged
        journal they are skipped, with one warning per process, so reads and writes keep working."""
        if self._broken:
            return
        try:
            write()
        except (CorruptFile, UnsafePath) as e:
            self._broken = True
            logging.getLogger("beststag").warning(
                "%s; not journaling requests until it is repaired (%s)", e.message, e.hint
            )

    def close(self) -> None:
        """Close every connection this object opened (in this process)."""
        with self._lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
            self._local = threading.local()
            self._closed = True
        if self._pid != os.getpid():
            return
        for c in conns:
            try:
                c.close()
            except sqlite3.ProgrammingError:
                pass

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        conn = self.conn
        with self._guard():
            _locked_retry(lambda: conn.execute(sql, params))

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        self._transaction(lambda conn: conn.executemany(sql, rows))

    def _transaction(self, body: Callable[[sqlite3.Connection], Any]) -> None:
        """`body(conn)` inside BEGIN IMMEDIATE … COMMIT (rolled back on any failure), retried while locked."""
        conn = self.conn

        def run() -> None:
            try:
                conn.execute("BEGIN IMMEDIATE")
                body(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

        with self._guard():
            _locked_retry(run)

    # ---- appends

    def record_request(
        self,
        *,
        base: str | None,
        table_name: str | None,
        method: str,
        operation: str | None = None,
        status: int | None,
        duration_ms: float | None,
        records: int = 0,
        bytes: int = 0,
        error_type: str | None = None,
        retries: int = 0,
        source: str | None = None,
        ts: float | None = None,
    ) -> None:
        """Record one upstream HTTP request (``status`` None: no answer, e.g. a network error)."""
        self._telemetry(
            lambda: self._write(
                "INSERT INTO requests (ts, base, table_name, method, operation, status, duration_ms,"
                " records, bytes, error_type, retries, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    clock.timestamp() if ts is None else ts,
                    base,
                    table_name,
                    method,
                    operation,
                    status,
                    duration_ms,
                    records,
                    bytes,
                    error_type,
                    retries,
                    source or self.source,
                ),
            )
        )

    def record_webhook_request(
        self,
        *,
        endpoint: str,
        status: int,
        duration_ms: float,
        operation: str | None = None,
        table_name: str | None = None,
        cache_status: str | None = None,
        ts: float | None = None,
    ) -> None:
        """Record one answer of the webhook server."""
        self._telemetry(
            lambda: self._write(
                "INSERT INTO webhook_requests (ts, endpoint, operation, table_name, status, duration_ms, cache_status)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    clock.timestamp() if ts is None else ts,
                    endpoint,
                    operation,
                    table_name,
                    status,
                    duration_ms,
                    cache_status,
                ),
            )
        )

    def record_cache_event(
        self,
        *,
        event: str,
        table_name: str | None,
        base: str | None = None,
        key: str | None = None,
        bytes: int | None = None,
        age_s: float | None = None,
        ts: float | None = None,
    ) -> None:
        """Record a cache event: one of :data:`CACHE_EVENTS`.

        :raises ValueError: for an unknown event name.
        """
        if event not in CACHE_EVENTS:
            raise ValueError(f"unknown cache event {event!r} (expected one of {', '.join(CACHE_EVENTS)})")
        self._telemetry(
            lambda: self._write(
                'INSERT INTO cache_events (ts, base, table_name, event, "key", bytes, age_s) VALUES (?,?,?,?,?,?,?)',
                (clock.timestamp() if ts is None else ts, base, table_name, event, key, bytes, age_s),
            )
        )

    def record_backup_run(
        self,
        *,
        id: str,
        type: str,
        status: str,
        started: float,
        finished: float | None = None,
        duration_s: float | None = None,
        records: int = 0,
        bytes: int = 0,
        tables: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Insert or replace a backup run (call at start with status running, again at the end)."""
        if duration_s is None and finished is not None:
            duration_s = finished - started
        self._write(
            "INSERT OR REPLACE INTO backup_runs (id, type, status, started, finished, duration_s,"
            " records, bytes, tables_json, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                id,
                type,
                status,
                started,
                finished,
                duration_s,
                records,
                bytes,
                None if tables is None else json.dumps(tables, ensure_ascii=False, sort_keys=True),
                error,
            ),
        )

    def record_restore_run(
        self,
        *,
        id: str,
        backup_id: str,
        status: str,
        started: float,
        finished: float | None = None,
        duration_s: float | None = None,
        records: int = 0,
        progress: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert or replace a restore run (``progress``: per-table state, kept as JSON)."""
        if duration_s is None and finished is not None:
            duration_s = finished - started
        self._write(
            "INSERT OR REPLACE INTO restore_runs (id, backup_id, started, finished, duration_s,"
            " records, status, progress_json) VALUES (?,?,?,?,?,?,?,?)",
            (
                id,
                backup_id,
                started,
                finished,
                duration_s,
                records,
                status,
                None if progress is None else json.dumps(progress, ensure_ascii=False, sort_keys=True),
            ),
        )

    def record_drill(
        self,
        *,
        id: str,
        backup_id: str,
        backup_type: str,
        status: str,
        started: float,
        finished: float | None = None,
        duration_s: float | None = None,
        records: int = 0,
        attachments: int = 0,
        links: int = 0,
        requests: int = 0,
        schema_requests: int = 0,
        rate_per_s: float | None = None,
        estimate_s: float | None = None,
        restore_s: float | None = None,
        problem: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert or replace a restore drill (call at start with status running, again at the end)."""
        self._write(
            "INSERT OR REPLACE INTO drills (id, backup_id, backup_type, status, started, finished, duration_s,"
            " records, attachments, links, requests, schema_requests, rate_per_s, estimate_s, restore_s, problem,"
            " detail_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                id,
                backup_id,
                backup_type,
                status,
                started,
                finished,
                duration_s,
                records,
                attachments,
                links,
                requests,
                schema_requests,
                rate_per_s,
                estimate_s,
                restore_s,
                problem,
                None if detail is None else json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
            ),
        )

    def drills(
        self, *, backup_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recorded drills, newest first (of one backup, with one status, when given)."""
        where, params = [], []
        if backup_id is not None:
            where.append("backup_id = ?")
            params.append(backup_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM drills" + (" WHERE " + " AND ".join(where) if where else "")
        return self.query(sql + " ORDER BY started DESC, rowid DESC LIMIT ?", (*params, limit))

    def add_count_snapshot(
        self, *, table_name: str, records: int, base: str | None = None, ts: float | None = None
    ) -> None:
        """Record how many records a table held at ``ts`` (now by default)."""
        self._write(
            "INSERT INTO count_snapshots (ts, base, table_name, records) VALUES (?,?,?,?)",
            (clock.timestamp() if ts is None else ts, base, table_name, records),
        )

    def add_count_snapshots(
        self, counts: Mapping[str, int], *, base: str | None = None, ts: float | None = None
    ) -> None:
        """Record several tables' counts in one transaction, all with the same ``ts``."""
        when = clock.timestamp() if ts is None else ts
        self._write_many(
            "INSERT INTO count_snapshots (ts, base, table_name, records) VALUES (?,?,?,?)",
            [(when, base, name, n) for name, n in counts.items()],
        )

    # ---- alert state and key/value

    def get_alert_state(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM alert_state WHERE name = ?", (name,))
        return rows[0] if rows else None

    def set_alert_state(
        self,
        name: str,
        *,
        firing: bool,
        value: float | None,
        since: float | None = None,
        last_notified: float | None = None,
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO alert_state (name, firing, since, last_notified, value) VALUES (?,?,?,?,?)",
            (name, int(firing), since, last_notified, value),
        )

    def kv_get(self, key: str, default: str | None = None) -> str | None:
        rows = self.query('SELECT value FROM kv WHERE "key" = ?', (key,))
        return rows[0]["value"] if rows else default

    def kv_set(self, key: str, value: str | None) -> None:
        self._write('INSERT OR REPLACE INTO kv ("key", value) VALUES (?, ?)', (key, value))

    # ---- the change feed (beststag_cli/feed/state.py writes these; the cache and metrics read them too)

    def feed_row(self, base: str) -> dict[str, Any] | None:
        """The base's change-feed row (webhook id, MAC secret, cursor, …), or None while the feed is off."""
        rows = self.query("SELECT * FROM feed WHERE base = ?", (base,))
        return rows[0] if rows else None

    def feed_gaps(self, base: str) -> list[dict[str, Any]]:
        """The tables whose changes the feed missed, by name (table_name, since_ts, reason)."""
        return self.query("SELECT * FROM feed_gaps WHERE base = ? ORDER BY table_name", (base,))

    def write(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        """One write statement, with the journal's lock-retry and telemetry guard."""
        self._write(sql, params)

    def write_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Several write statements in one transaction (all or none)."""

        def body(conn: sqlite3.Connection) -> None:
            for sql, params in statements:
                conn.execute(sql, params)

        self._transaction(body)

    # ---- reading and housekeeping

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[dict[str, Any]]:
        """Run a read query and return its rows as dicts (column name -> value)."""
        conn = self.conn
        with self._guard():
            rows = _locked_retry(lambda: conn.execute(sql, params).fetchall())
        return [dict(r) for r in rows]

    def prune(self, before_ts: float) -> dict[str, int]:
        """Delete request, cache-event and snapshot rows older than ``before_ts``; counts per table.

        Backup and restore runs are kept: they are few and backups may outlive the window.
        """
        deleted: dict[str, int] = {}
        conn = self.conn
        for table in ("requests", "cache_events", "count_snapshots"):
            with self._guard():
                cur = _locked_retry(partial(conn.execute, f"DELETE FROM {table} WHERE ts < ?", (before_ts,)))
            deleted[table] = cur.rowcount
        return deleted

    def checkpoint(self) -> None:
        """Fold the WAL back into the main file (cheap; useful after a big prune)."""
        conn = self.conn
        with self._guard():
            _locked_retry(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
