"""Bugs found by the reliability suite, each pinned by the smallest test that failed before its fix."""

from __future__ import annotations

import pytest

from beststag_cli.errors import FilterError


def _deep_and(n: int) -> str:
    return '{"and":[' * n + '{"status":"Ativo"}' + "]}" * n


@pytest.mark.parametrize("depth", [150, 10_000])
def test_deeply_nested_filter_is_a_filter_error_not_a_recursion_error(depth: int) -> None:
    from beststag_cli.query.spec import QuerySpec, load_filter_json

    with pytest.raises(FilterError, match="nest"):
        QuerySpec.parse({"table": "Usuários", "filters": load_filter_json(_deep_and(depth))})


@pytest.mark.parametrize("where", ["data", "file"])
def test_deeply_nested_records_json_is_bad_input(where: str) -> None:
    from beststag_cli.errors import BadInput
    from beststag_cli.query.writes import read_items

    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(BadInput, match="nests too deeply"):
        read_items(deep, None) if where == "data" else read_items(None, [deep])


@pytest.mark.parametrize(
    "body",
    [
        b'{"operation":"get","table":"\xff\xfe"}',
        b'{"operation":"get","table":"T","filters":' + b'{"and":[' * 5000 + b"]}" * 5000 + b"}",
    ],
    ids=["not-utf8", "nested-5000"],
)
def test_webhook_body_that_cannot_be_decoded_is_422_in_our_error_shape(client, body: bytes) -> None:
    r = client.post("/webhook/airtable/cache", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "invalid_body"


def _seed_for_first_attempt() -> int:
    """A FaultConfig seed whose first draw under rate 0.5 injects the fault and whose second does not."""
    import random

    for seed in range(100):
        rng = random.Random(seed)
        if rng.random() < 0.5 and rng.random() >= 0.5:
            return seed
    raise AssertionError("no seed")  # pragma: no cover


def test_delete_retried_after_a_lost_answer_reports_success(gateway, sandbox) -> None:
    """Drop-after: the first DELETE is applied, its answer lost; the retry finds the row gone (was exit 2)."""
    from beststag_cli.query.writes import Writer
    from beststag_cli.sandbox import FaultConfig

    gateway.sleep = lambda s: None
    w = Writer(gateway)
    ids = [r["id"] for r in w.write("create", "Tarefas", [{"fields": {"Título": "del me"}}] * 2).records]
    before = sandbox.store.count("appBestStagSandbx", "Tarefas")
    sandbox.app.set_faults(FaultConfig(seed=_seed_for_first_attempt(), rate_drop_after=0.5))
    res = w.write("delete", "Tarefas", ids)
    sandbox.app.set_faults(FaultConfig())
    assert [r["id"] for r in res.records] == ids
    assert sandbox.store.count("appBestStagSandbx", "Tarefas") == before - 2


def test_delete_of_an_unknown_id_is_still_an_error(gateway) -> None:
    from beststag_cli.errors import BadInput
    from beststag_cli.query.writes import Writer

    with pytest.raises(BadInput):
        Writer(gateway).write("delete", "Tarefas", ["recAAAAAAAAAAAAAA"])


def test_create_whose_answer_is_lost_says_so_and_the_cache_forgets_the_table(sandbox, settings) -> None:
    """Drop-after on a create: exit 4 naming the batch, never retried, and no cached answer hides the record."""
    from beststag_cli.cache import connect
    from beststag_cli.errors import WriteOutcomeUnknown
    from beststag_cli.query.spec import QuerySpec
    from beststag_cli.query.writes import Writer
    from beststag_cli.sandbox import FaultConfig

    gateway, cache = connect(settings, sandbox=sandbox, source="test")  # as every process wires them
    gateway.sleep = lambda s: None
    try:
        spec = QuerySpec.parse({"table": "Tarefas", "filters": {"Título": "lost answer"}})
        assert cache.get(spec).records == []
        before = sandbox.store.count("appBestStagSandbx", "Tarefas")
        sandbox.app.set_faults(FaultConfig(rate_drop_after=1.0))
        with pytest.raises(WriteOutcomeUnknown, match=r"records 1-1 .*may or may not") as e:
            Writer(gateway).write("create", "Tarefas", [{"fields": {"Título": "lost answer"}}])
        sandbox.app.set_faults(FaultConfig())
        assert e.value.exit_code == 4 and "upsert --merge-on" in e.value.hint
        assert sandbox.store.count("appBestStagSandbx", "Tarefas") == before + 1  # applied once, not retried
        got = cache.get(spec)
        assert got.status == "miss" and len(got.records) == 1
    finally:
        cache.close()
        gateway.close()


def test_a_pickled_cache_entry_reads_as_a_miss_and_is_dropped(tmp_path) -> None:
    """A tampered entry was refused (never unpickled) but surfaced as 'internal_error' (exit 1)."""
    import pickle
    import sqlite3

    import diskcache

    from beststag_cli.cache.store import CacheStore

    store = CacheStore(tmp_path / "c")
    store.set("q:x", {"records": []}, expire_s=None)
    store.set("g:x", 3, expire_s=None)
    conn = sqlite3.connect(tmp_path / "c" / "store" / "cache.db")
    conn.execute("UPDATE Cache SET mode = ?, value = ?", (diskcache.core.MODE_PICKLE, pickle.dumps(print)))
    conn.commit()
    conn.close()
    assert store.get("q:x") is None and store.get_int("g:x") == 0
    assert len(store) == 0  # both dropped
    store.close()


def test_opening_a_journal_connection_keeps_the_locks_of_other_connections(tmp_path) -> None:
    """connect() used to open and close the journal file each time; closing any fd of a file drops all of
    this process's POSIX locks on it (SQLite's shared lock included), so another process closing its
    connection believed it was the last one, checkpointed and deleted the WAL under our feet (found as
    'database disk image is malformed' with a backup, the webhook server and prunes running together)."""
    import subprocess
    import sys

    from beststag_cli.journal import Journal, connect

    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    j.kv_set("x", "1")  # this process has the journal open (shared lock, WAL in use)
    other = connect(path)  # another thread's connection, opened meanwhile
    probe = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('SELECT COUNT(*) FROM kv').fetchone()\n"
        "c.close()\n"
    )
    subprocess.run([sys.executable, "-c", probe, str(path)], check=True, timeout=30)
    wal_kept = (tmp_path / "journal.sqlite-wal").exists()
    other.close()
    j.close()
    assert wal_kept  # the other process saw our connection: it did not checkpoint and delete the WAL
