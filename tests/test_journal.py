from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from beststag_cli import clock
from beststag_cli import journal as jmod
from beststag_cli.journal import Journal, applied_migrations, migrate


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "data" / "journal.sqlite"


@pytest.fixture
def journal(jpath: Path):  # type: ignore[no-untyped-def]
    with Journal(jpath) as j:
        yield j


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


# ---- schema


def test_migrations_from_blank_are_idempotent(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "blank.sqlite", isolation_level=None)
    assert applied_migrations(conn) == []
    assert migrate(conn) == [m.__name__ for m in jmod.MIGRATIONS]
    assert migrate(conn) == []
    assert migrate(conn) == []
    assert applied_migrations(conn) == [m.__name__ for m in jmod.MIGRATIONS]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "_migrations",
        "requests",
        "cache_events",
        "backup_runs",
        "restore_runs",
        "count_snapshots",
        "alert_state",
        "kv",
    } <= tables
    conn.close()


def test_migration_names_are_ordered_and_unique() -> None:
    names = [m.__name__ for m in jmod.MIGRATIONS]
    assert names[0] == "m001_initial"
    assert names == sorted(names)
    assert len(set(names)) == len(names)


def test_a_new_migration_is_applied_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sqlite3.connect(tmp_path / "j.sqlite", isolation_level=None)
    migrate(conn)

    def m999_add_note(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE kv ADD COLUMN note TEXT")

    monkeypatch.setattr(jmod, "MIGRATIONS", [*jmod.MIGRATIONS, m999_add_note])
    assert migrate(conn) == ["m999_add_note"]
    assert migrate(conn) == []
    cols = [r[1] for r in conn.execute("PRAGMA table_info(kv)")]
    assert "note" in cols
    conn.close()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sqlite3.connect(tmp_path / "j.sqlite", isolation_level=None)
    migrate(conn)

    def m998_broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        c.execute("THIS IS NOT SQL")

    monkeypatch.setattr(jmod, "MIGRATIONS", [*jmod.MIGRATIONS, m998_broken])
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert "m998_broken" not in applied_migrations(conn)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()


def test_time_range_indexes_start_with_ts(journal: Journal) -> None:
    for table in ("requests", "cache_events", "count_snapshots"):
        plan = journal.query(f"EXPLAIN QUERY PLAN SELECT count(*) FROM {table} WHERE ts >= ? AND ts < ?", (0, 1))
        assert any("USING" in row["detail"] and "INDEX" in row["detail"] for row in plan), plan


def test_pragmas(journal: Journal) -> None:
    conn = journal.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == jmod.BUSY_TIMEOUT_MS
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


# ---- permissions


def test_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "var" / "journal.sqlite"
        with Journal(path) as j:
            j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
            assert mode(path.parent) == 0o700
            for p in path.parent.iterdir():  # the db and its -wal / -shm companions
                assert mode(p) == 0o600, p
    finally:
        os.umask(old)


# ---- appends and reads


def test_record_request_round_trip(journal: Journal) -> None:
    clock.set_now("2025-03-01T12:00:00Z")
    try:
        journal.record_request(
            base="appX",
            table_name="Tarefas",
            method="GET",
            operation="list",
            status=429,
            duration_ms=12.5,
            records=0,
            bytes=321,
            error_type="RateLimited",
            retries=2,
            source="cron",
        )
    finally:
        clock.reset()
    (row,) = journal.query("SELECT * FROM requests")
    assert row == {
        "ts": clock._parse("2025-03-01T12:00:00Z").timestamp(),
        "base": "appX",
        "table_name": "Tarefas",
        "method": "GET",
        "operation": "list",
        "status": 429,
        "duration_ms": 12.5,
        "records": 0,
        "bytes": 321,
        "error_type": "RateLimited",
        "retries": 2,
        "source": "cron",
    }


def test_default_source(jpath: Path) -> None:
    with Journal(jpath, source="webhook") as j:
        j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
        assert j.query("SELECT source FROM requests") == [{"source": "webhook"}]


def test_cache_events(journal: Journal) -> None:
    journal.record_cache_event(event="hit", table_name="Usuários", key="k1", bytes=10, age_s=3.5)
    journal.record_cache_event(event="miss", table_name="Usuários", key="k2")
    rows = journal.query('SELECT event, "key", age_s FROM cache_events ORDER BY rowid')
    assert rows == [{"event": "hit", "key": "k1", "age_s": 3.5}, {"event": "miss", "key": "k2", "age_s": None}]
    with pytest.raises(ValueError, match="unknown cache event"):
        journal.record_cache_event(event="bogus", table_name="T")


def test_backup_and_restore_runs_upsert(journal: Journal) -> None:
    journal.record_backup_run(id="b1", type="critical", status="running", started=100.0)
    journal.record_backup_run(
        id="b1",
        type="critical",
        status="ok",
        started=100.0,
        finished=112.5,
        records=40,
        bytes=2048,
        tables={"Usuários": {"records": 40}},
    )
    (row,) = journal.query("SELECT * FROM backup_runs")
    assert row["status"] == "ok"
    assert row["duration_s"] == 12.5
    assert row["tables_json"] == '{"Usuários": {"records": 40}}'
    journal.record_restore_run(
        id="r1", backup_id="b1", status="done", started=1.0, finished=3.0, records=4, progress={"Usuários": "done"}
    )
    (r,) = journal.query("SELECT * FROM restore_runs")
    assert (r["duration_s"], r["progress_json"]) == (2.0, '{"Usuários": "done"}')


def test_count_snapshots(journal: Journal) -> None:
    journal.add_count_snapshot(table_name="Tarefas", records=10, base="appX", ts=5.0)
    journal.add_count_snapshots({"Usuários": 3, "Eventos": 7}, base="appX", ts=6.0)
    rows = journal.query("SELECT ts, table_name, records FROM count_snapshots ORDER BY ts, table_name")
    assert rows == [
        {"ts": 5.0, "table_name": "Tarefas", "records": 10},
        {"ts": 6.0, "table_name": "Eventos", "records": 7},
        {"ts": 6.0, "table_name": "Usuários", "records": 3},
    ]


def test_alert_state_and_kv(journal: Journal) -> None:
    assert journal.get_alert_state("cache_hit_ratio") is None
    journal.set_alert_state("cache_hit_ratio", firing=True, value=0.4, since=10.0)
    assert journal.get_alert_state("cache_hit_ratio") == {
        "name": "cache_hit_ratio",
        "firing": 1,
        "since": 10.0,
        "last_notified": None,
        "value": 0.4,
    }
    assert journal.kv_get("x", "dflt") == "dflt"
    journal.kv_set("x", "1")
    journal.kv_set("x", "2")
    assert journal.kv_get("x") == "2"


def test_prune(journal: Journal) -> None:
    for ts in (1.0, 2.0, 3.0):
        journal.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1, ts=ts)
        journal.record_cache_event(event="hit", table_name="T", ts=ts)
        journal.add_count_snapshot(table_name="T", records=1, ts=ts)
    assert journal.prune(2.5) == {"requests": 2, "cache_events": 2, "count_snapshots": 2}
    journal.checkpoint()
    assert journal.query("SELECT count(*) AS n FROM requests") == [{"n": 1}]


def test_appends_are_cheap(journal: Journal) -> None:
    journal.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
    n = 300
    start = time.perf_counter()
    for _ in range(n):
        journal.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
    per_append = (time.perf_counter() - start) / n
    assert per_append < 0.005, f"{per_append * 1e6:.0f} µs per append"


# ---- concurrency


def test_threads_share_one_journal(journal: Journal) -> None:
    def work(i: int) -> None:
        for j in range(100):
            journal.record_request(base="b", table_name=f"t{i}", method="GET", status=200, duration_ms=j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import gc

    gc.collect()
    assert len(journal._conns) == 0  # each thread's connection went away with its thread
    assert journal.query("SELECT count(*) AS n FROM requests") == [{"n": 800}]


def _append_many(path: str, worker: int, n: int, start_at: float) -> None:
    # Start together, so the writers really collide.
    time.sleep(max(0.0, start_at - time.time()))
    with Journal(path, source=f"p{worker}") as j:
        for i in range(n):
            j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0, records=i)
            if i % 50 == 0:
                j.record_cache_event(event="set", table_name="T", key=f"{worker}-{i}")


def test_four_processes_times_500_appends_lose_nothing(jpath: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5  # spawn needs a moment to import
    procs = [ctx.Process(target=_append_many, args=(str(jpath), w, 500, start_at)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Journal(jpath) as j:
        rows = j.query("SELECT source, count(*) AS n, count(DISTINCT records) AS d FROM requests GROUP BY source")
        assert sorted((r["source"], r["n"], r["d"]) for r in rows) == [(f"p{w}", 500, 500) for w in range(4)]
        assert j.query("SELECT count(*) AS n FROM cache_events") == [{"n": 40}]
        assert applied_migrations(j.conn) == [m.__name__ for m in jmod.MIGRATIONS]


def test_forked_child_opens_its_own_connection(jpath: Path) -> None:
    j = Journal(jpath)
    j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_child_append, args=(j,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert j.query("SELECT count(*) AS n FROM requests") == [{"n": 2}]
    j.close()


def _child_append(j: Journal) -> None:
    j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
    j.close()


def test_locked_database_is_retried(jpath: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny busy timeout makes SQLite give up at once; the journal's own retry must carry on.
    monkeypatch.setattr(jmod, "BUSY_TIMEOUT_MS", 1)
    with Journal(jpath) as j:
        j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=1.0)
        blocker = sqlite3.connect(jpath, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        released = threading.Event()

        def release() -> None:
            time.sleep(0.3)
            blocker.execute("COMMIT")
            released.set()

        t = threading.Thread(target=release)
        t.start()
        j.record_request(base="b", table_name="T", method="GET", status=200, duration_ms=2.0)
        assert released.is_set()
        t.join()
        blocker.close()
        assert j.query("SELECT count(*) AS n FROM requests") == [{"n": 2}]


def test_close_then_reuse(jpath: Path) -> None:
    j = Journal(jpath)
    j.kv_set("a", "1")
    j.close()
    assert j.kv_get("a") == "1"  # reopens lazily
    j.close()


# ---- a damaged journal (issue 15, defect 10): one CorruptFile naming the file, never an internal error


def _seed(path: Path) -> None:
    with Journal(path) as j:
        for i in range(300):
            j.record_request(base="app", table_name="T", method="GET", status=200, duration_ms=float(i), ts=1000.0 + i)
        j.kv_set("k", "v")


def _garbage(p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 64)


def _truncated(p: Path) -> None:
    os.truncate(p, 5000)


def _malformed(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[4096 * 2 :] = b"\x07" * (len(data) - 4096 * 2)
    p.write_bytes(bytes(data))


def _wrong_schema(p: Path) -> None:
    conn = sqlite3.connect(p, isolation_level=None)
    conn.execute("DROP TABLE backup_runs")
    conn.close()


def _newer_schema(p: Path) -> None:
    conn = sqlite3.connect(p, isolation_level=None)
    conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', 1)")
    conn.close()


DAMAGE = {
    "garbage": _garbage,
    "truncated": _truncated,
    "malformed": _malformed,
    "wrong_schema": _wrong_schema,
    "newer_schema": _newer_schema,
}


def _checkpointed(path: Path) -> None:
    with Journal(path) as j:
        j.checkpoint()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_journal_is_one_corrupt_file_error(jpath: Path, damage: str) -> None:
    from beststag_cli.errors import CorruptFile

    _seed(jpath)
    _checkpointed(jpath)
    DAMAGE[damage](jpath)
    j = Journal(jpath)
    with pytest.raises(CorruptFile) as e:
        j.query("SELECT count(*) AS n FROM requests WHERE duration_ms >= 0")
        j.record_backup_run(id="b1", type="complete", status="running", started=1.0)
    assert str(jpath) in e.value.message and "\n" not in e.value.message
    assert "doctor --repair" in e.value.hint
    # telemetry appends (every request, every cache event) are skipped instead: reads must keep working
    j.record_request(base="app", table_name="T", method="GET", status=200, duration_ms=1.0)
    j.record_cache_event(event="hit", table_name="T")
    j.record_webhook_request(endpoint="query", status=200, duration_ms=1.0)
    assert jmod.quick_check(j) is not None
    j.close()


def test_garbage_in_the_wal_is_ignored_not_fatal(jpath: Path) -> None:
    _seed(jpath)
    Path(str(jpath) + "-wal").write_bytes(bytes(range(256)) * 100)
    with Journal(jpath) as j:
        assert j.query("SELECT count(*) AS n FROM requests")[0]["n"] >= 0
        j.record_backup_run(id="b1", type="complete", status="ok", started=1.0)
        assert jmod.quick_check(j) is None


def test_set_aside_moves_the_damage_and_a_fresh_journal_starts(jpath: Path) -> None:
    _seed(jpath)
    _garbage(jpath)
    Path(str(jpath) + "-wal").write_bytes(b"junk")
    clock.set_now("2026-12-01T21:00:00Z")
    dest = jmod.set_aside(jpath)
    assert dest is not None and dest.parent == jpath.parent and dest.name == "journal.sqlite.corrupt-20261201T210000Z"
    assert dest.read_bytes() == bytes(range(256)) * 64
    assert Path(str(dest) + "-wal").read_bytes() == b"junk"
    assert not jpath.exists() and not Path(str(jpath) + "-wal").exists()
    with Journal(jpath) as j:
        assert j.query("SELECT count(*) AS n FROM requests")[0]["n"] == 0
        assert jmod.quick_check(j) is None


class Landed(BaseException):
    """Stands for a signal's exception arriving right after COMMIT returned."""


def test_an_exception_landing_right_after_commit_is_not_masked_by_a_failed_rollback(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite")
    fired: list[int] = []

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code.co_name == "run" and frame.f_code.co_filename.endswith("journal.py"):
            frame.f_trace_opcodes = True
            seen_tx: list[int] = []

            def local(frame, event, arg):  # type: ignore[no-untyped-def]
                if j.conn.in_transaction:
                    seen_tx.append(1)
                elif event == "opcode" and seen_tx and not fired:  # COMMIT has returned, still inside try
                    fired.append(1)
                    raise Landed()
                return local

            return local
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(Landed):  # the old code raised sqlite3.OperationalError("cannot rollback ...")
            j._write_many("INSERT INTO kv (key, value) VALUES (?, ?)", [("k", "v")])
    finally:
        sys.settrace(None)
    assert fired
    j._write_many("INSERT INTO kv (key, value) VALUES (?, ?)", [("k2", "v")])  # still usable
