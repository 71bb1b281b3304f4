"""The cache on Redis: the store contract (both backends), the manager, and two hosts sharing one Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beststag_cli.cache.backend import CacheBackend
from beststag_cli.cache.store import CacheStore
from tests.served import serve_sandbox

from .conftest import write_config

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------------------------
# the store contract, for both implementations


@pytest.fixture(params=["diskcache", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CacheBackend, ...]]:
    """Three stores on the same storage (processes, or hosts for Redis): two with an LRU, one without."""
    if request.param == "diskcache":
        out: tuple[CacheBackend, ...] = (
            CacheStore(tmp_path / "c", lru_items=100),
            CacheStore(tmp_path / "c", lru_items=100),
            CacheStore(tmp_path / "c"),
        )
    else:
        from beststag_cli.cache.redis_store import RedisStore

        url = request.getfixturevalue("redis_url")
        out = (RedisStore(url, lru_items=100), RedisStore(url, lru_items=100), RedisStore(url))
    yield out
    for s in out:
        s.close()


def test_store_contract(stores: tuple[CacheBackend, ...]) -> None:
    a, b, _ = stores
    assert isinstance(a, CacheBackend)
    big = {"records": [{"id": f"rec{i}", "fields": {"Nome": "ç" * 40}} for i in range(200)]}
    assert a.set("q:1", big, expire_s=60) > 0
    assert b.get("q:1") == big and a.get("q:1") == big
    assert a.get("missing") is None
    # counters (table generations) move for everyone at once
    assert a.get_int("g:T") == 0
    assert a.incr("g:T") == 1 and b.incr("g:T") == 2
    assert a.get_int("g:T") == 2
    # index sets
    a.index_add("ix:T:q", "k1")
    b.index_add("ix:T:q", "k2")
    a.index_add("ix:T:q", "k1")
    assert sorted(b.index_members("ix:T:q")) == ["k1", "k2"]
    assert a.index_members("ix:none") == []
    # the in-memory LRU never hides another store's write (the shared epoch moved on)
    a.set("k", {"v": 1}, expire_s=None)
    assert a.get("k") == {"v": 1} and b.get("k") == {"v": 1}
    b.set("k", {"v": 2}, expire_s=None)
    assert a.get("k") == {"v": 2}
    assert b.delete("k") and a.get("k") is None
    assert not a.delete("k")
    assert len(a) >= 3 and a.volume() > 0
    assert a.check() == []
    assert a.clear() >= 3
    assert len(b) == 0 and b.get("q:1") is None and b.get_int("g:T") == 0


def test_entries_expire_natively(stores: tuple[CacheBackend, ...]) -> None:
    a, _, plain = stores  # (an LRU copy may outlive the entry: the manager checks each entry's age itself)
    a.set("short", [1], expire_s=0.2)
    a.set("long", [2], expire_s=60)
    assert plain.get("short") == [1]
    time.sleep(0.35)
    a.expire()
    assert plain.get("short") is None
    assert plain.get("long") == [2]


def test_lock_excludes_other_stores(stores: tuple[CacheBackend, ...]) -> None:
    a, b, _ = stores
    inside: list[int] = []
    overlap: list[bool] = []

    def work(store: CacheBackend, n: int) -> None:
        for _ in range(5):
            with store.lock("key"):
                inside.append(n)
                overlap.append(len(inside) > 1)
                time.sleep(0.005)
                inside.remove(n)

    threads = [threading.Thread(target=work, args=(s, i)) for i, s in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(overlap) == 20 and not any(overlap)


def test_values_are_json_never_pickle(redis_url: str) -> None:
    import redis

    from beststag_cli.cache.redis_store import RedisStore

    s = RedisStore(redis_url, prefix="p:", compress_min_bytes=10**9)
    s.set("k", {"a": [1, "é"]}, expire_s=30)
    raw = redis.Redis.from_url(redis_url).get("p:k")
    assert raw == b'J{"a":[1,"\xc3\xa9"]}'
    redis.Redis.from_url(redis_url).set("p:evil", b"\x80\x04K\x01.")  # a pickle: never run, dropped, a miss
    assert s.get("evil") is None
    assert redis.Redis.from_url(redis_url).get("p:evil") is None


def test_unreachable_redis_is_one_line_error(tmp_path: Path) -> None:
    from beststag_cli.cache.redis_store import RedisStore
    from beststag_cli.errors import CacheUnavailable

    from .conftest import free_port

    s = RedisStore(f"redis://:hunter2@127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    with pytest.raises(CacheUnavailable) as e:
        s.get("k")
    assert "hunter2" not in e.value.message and "***" in e.value.message


# --------------------------------------------------------------------------------------------
# the manager on Redis (in-process sandbox)


@pytest.fixture
def redis_settings(settings: Any, redis_url: str) -> Any:
    settings.cache.backend = "redis"
    settings.cache.redis_url = redis_url
    return settings


def test_manager_on_redis(redis_settings: Any, gateway: Any, sandbox: Any) -> None:
    from beststag_cli.cache import connect, invalidate_tables
    from beststag_cli.cache.redis_store import RedisStore
    from beststag_cli.query.spec import QuerySpec
    from beststag_cli.query.writes import Writer, to_records

    reads: list[str] = []
    sandbox.app.observers.append(lambda m, r, s: reads.append(r) if r in ("list", "get") else None)
    gateway, m = connect(redis_settings, sandbox=sandbox, source="test")
    assert isinstance(m.store, RedisStore)
    spec = QuerySpec.parse({"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome", "status"]})
    first = m.get(spec)
    assert first.status == "miss" and first.records
    assert m.get(spec).status == "hit" and len(reads) == 1
    # an own write is applied to the cached answer: the next read is a hit that shows it
    rid = first.records[0]["id"]
    Writer(gateway).write("update", "Usuários", to_records("update", [{"id": rid, "fields": {"status": "Inativo"}}]))
    after = m.get(spec)
    assert after.status == "hit" and rid not in {r["id"] for r in after.records}
    # record entries and their invalidation
    assert m.get_record("Usuários", rid).status == "miss"
    assert m.get_record("Usuários", rid).status == "hit"
    assert m.invalidate("Usuários", rid)["entries"] >= 1
    assert m.get_record("Usuários", rid).status == "miss"
    # O(1) table invalidation, also through the hook a restore calls
    gen = m.generation("Usuários")
    invalidate_tables(redis_settings, m.base, ["Usuários"])
    assert m.generation("Usuários") == gen + 1
    assert m.get(spec).status == "miss"
    stats = m.stats()
    assert stats["overall"]["hits"] >= 3 and stats["entries"] > 0 and stats["bytes"] > 0
    assert m.clear() > 0 and m.get(spec).status == "miss"
    m.close()
    gateway.close()


# --------------------------------------------------------------------------------------------
# two hosts: separate data dirs, one Redis, one Airtable (a served sandbox)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "airtable")}
    with serve_sandbox(env, "--latency-ms", "200") as url:
        yield url


def host_env(tmp_path: Path, name: str, served: str, redis_url: str) -> dict[str, str]:
    cfg = write_config(
        tmp_path / "config.yaml", cache={"backend": "redis", "redis_url": redis_url, "redis_prefix": "two-hosts:"}
    )
    return {
        **os.environ,
        "AIRTABLE_TOKEN": "sandbox",
        "BESTSTAG_SANDBOX": "",
        "AIRTABLE_BASE_ID": "appBestStagSandbx",
        "AIRTABLE_ENDPOINT_URL": served,
        "BESTSTAG_CONFIG": str(cfg),
        "BESTSTAG_DATA_DIR": str(tmp_path / name),
    }


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "beststag_cli", "--json", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, (args, p.stdout[-500:], p.stderr[-1500:])
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def upstream_reads(*data_dirs: Path) -> int:
    from beststag_cli.journal import Journal

    n = 0
    for d in data_dirs:
        if (d / "journal.sqlite").exists():
            rows = Journal(d / "journal.sqlite").query(
                "SELECT COUNT(*) AS n FROM requests WHERE operation IN ('list', 'get') AND table_name = 'Usuários'"
            )
            n += rows[0]["n"]
    return n


def test_two_hosts_share_hits_and_invalidations(tmp_path: Path, served: str, redis_url: str) -> None:
    a, b = host_env(tmp_path, "host-a", served, redis_url), host_env(tmp_path, "host-b", served, redis_url)
    q = ["cache", "get", "Usuários", "--filter", '{"status": "Ativo"}', "--fields", "Nome,email"]
    assert cli(a, *q)["cache"]["status"] == "miss"
    got_b = cli(b, *q)
    assert got_b["cache"]["status"] == "hit"  # host B never asked Airtable
    assert cli(b, *q)["cache"]["status"] == "hit"  # the hit path without pydantic, on Redis too
    reads = upstream_reads(tmp_path / "host-a", tmp_path / "host-b")
    # B invalidates the table: A's very next read misses
    assert cli(b, "cache", "invalidate", "Usuários")["scope"] == "table"
    assert cli(a, *q)["cache"]["status"] == "miss"
    assert cli(b, *q)["cache"]["status"] == "hit"
    # one record: cached by A, read as a hit by B, invalidated by B, missed by A
    rid = got_b["records"][0]["id"]
    rq = ["cache", "get", "Usuários", "--record", rid]
    assert cli(a, *rq)["cache"]["status"] == "miss"
    assert cli(b, *rq)["cache"]["status"] == "hit"
    cli(b, "cache", "invalidate", "Usuários", "--record", rid)
    assert cli(a, *rq)["cache"]["status"] == "miss"
    assert cli(b, *q)["cache"]["status"] == "miss"  # the record's answers went with it
    assert upstream_reads(tmp_path / "host-a", tmp_path / "host-b") == reads + 4


STAMPEDE_WORKER = r"""
import json, sys, time
from beststag_cli.cache.manager import CacheManager
from beststag_cli.config import load_config
from beststag_cli.query.spec import QuerySpec

start = float(sys.argv[1])
m = CacheManager(load_config(), source="test")
m.schema()
while time.time() < start:
    time.sleep(0.001)
r = m.get(QuerySpec.parse({"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]}))
print(json.dumps({"status": r.status, "n": len(r.records)}))
"""


def test_stampede_across_hosts_makes_one_upstream_request(tmp_path: Path, served: str, redis_url: str) -> None:
    envs = [host_env(tmp_path, f"host-{i % 2}", served, redis_url) for i in range(8)]
    before = upstream_reads(tmp_path / "host-0", tmp_path / "host-1")
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STAMPEDE_WORKER, str(start)],
            env=e,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for e in envs
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert [r["status"] for r in results].count("miss") == 1, (results, [e[-500:] for _, e in outs])
    assert len({r["n"] for r in results}) == 1
    assert upstream_reads(tmp_path / "host-0", tmp_path / "host-1") - before == 1
