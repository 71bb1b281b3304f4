"""Issue 15, the cache's part: a killed holder's stampede lock is broken at once (11), on disk and on
Redis, and concurrent `cache warm` runs end with every warmed answer exact."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cache.test_cache_trust import same  # records without attachments' signed URLs
from tests.remote.conftest import redis_server, redis_url  # noqa: F401 - the real redis-server fixtures

#: the stampede lock's expiry (CacheStore.lock / RedisStore.lock default)
LOCK_TTL_S = 30.0
#: a read after the holder died must finish well inside the lock's expiry (generous: loaded CI machines)
WAIT_BOUND_S = LOCK_TTL_S / 2

HOLD_LOCK = r"""
import sys, time
from pathlib import Path
kind, where = sys.argv[1], sys.argv[2]
if kind == "redis":
    from beststag_cli.cache.redis_store import RedisStore
    store = RedisStore(where)
else:
    from beststag_cli.cache.store import CacheStore
    store = CacheStore(Path(where))
with store.lock("the-key"):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_then_kill(kind: str, where: str) -> int:
    """A subprocess takes the lock, says so, and is SIGKILLed while holding it; returns its pid."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, kind, where], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = p.stdout.readline() if p.stdout else ""  # blocks until the child holds the lock
        assert line.strip() == "held", (line, p.stderr.read() if p.stderr else "")
    finally:
        p.kill()
        p.wait(timeout=60)
    return p.pid


def _take_within(store: Any, bound_s: float) -> Any:
    """Take `store.lock("the-key")` in a thread; the lock object once held, or None if not within bound_s."""
    got: dict[str, Any] = {}
    done = threading.Event()

    def take() -> None:
        with store.lock("the-key") as lk:
            got["lock"] = lk
        done.set()

    threading.Thread(target=take, daemon=True).start()
    return got.get("lock") if done.wait(bound_s) else None


def test_a_dead_holders_disk_lock_is_broken_at_once(tmp_path: Path) -> None:
    from beststag_cli.cache.store import CacheStore

    pid = _hold_then_kill("disk", str(tmp_path / "cache"))
    store = CacheStore(tmp_path / "cache")
    try:
        lk = _take_within(store, WAIT_BOUND_S)
        assert lk is not None, "the read waited for the dead holder's lock to expire"
        assert [h["pid"] for h in lk.broken] == [pid]
    finally:
        store.close()


def test_a_live_holders_disk_lock_is_not_broken(tmp_path: Path) -> None:
    from beststag_cli.cache.store import CacheStore

    a, b = CacheStore(tmp_path / "c"), CacheStore(tmp_path / "c")
    try:
        with a.lock("the-key"):
            assert _take_within(b, 0.5) is None  # held by a live process (this one): b waits
        assert _take_within(b, WAIT_BOUND_S) is not None
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_a_dead_holders_redis_lock_is_broken_at_once(redis_url: str) -> None:  # noqa: F811
    from beststag_cli.cache.redis_store import RedisStore

    pid = _hold_then_kill("redis", redis_url)
    store = RedisStore(redis_url)
    try:
        lk = _take_within(store, WAIT_BOUND_S)
        assert lk is not None, "the read waited for the dead holder's lock to expire"
        assert [h["pid"] for h in lk.broken] == [pid]
    finally:
        store.close()


MISS_WORKER = r"""
from beststag_cli.cache.manager import CacheManager
from beststag_cli.config import load_config
from beststag_cli.query.spec import QuerySpec

m = CacheManager(load_config(), source="test")
m.schema()  # from the disk cache the parent filled
print("start", flush=True)
m.get(QuerySpec.parse({"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]}))
"""


def test_kill_9_during_a_cache_miss_does_not_block_the_next_read(clean_env: Path) -> None:
    from beststag_cli.cache.manager import CacheManager
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.query.normalize import cache_key
    from beststag_cli.query.service import QueryService
    from beststag_cli.query.spec import QuerySpec

    spec = QuerySpec.parse({"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]})
    m = CacheManager(load_config(), source="test")
    m.schema()  # seeds the sandbox and caches the schema on disk
    skey = m.keys.query("Usuários", m.generation("Usuários"), cache_key(spec))
    env = {**os.environ, "BESTSTAG_SANDBOX_FAULTS": json.dumps({"latency_ms": 600_000})}  # the miss hangs
    p = subprocess.Popen(
        [sys.executable, "-c", MISS_WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert (p.stdout.readline() if p.stdout else "").strip() == "start"
        deadline = time.monotonic() + 120  # generous: only how long a loaded machine takes to get there
        while ("lock:" + skey) not in m.store._dc:  # the worker holds the stampede lock, inside its fetch
            assert p.poll() is None, p.stderr.read() if p.stderr else ""
            assert time.monotonic() < deadline, "the worker never took the stampede lock"
            time.sleep(0.01)
    finally:
        p.kill()
        p.wait(timeout=60)
    got: dict[str, Any] = {}
    done = threading.Event()

    def read() -> None:
        got["res"] = m.get(spec)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(WAIT_BOUND_S), "the next read waited for the dead holder's lock to expire"
    assert got["res"].status == "miss"
    gw = Gateway(load_config(), source="test")
    assert same(got["res"].records) == same(QueryService(gw).run(spec).records)
    rows = m.journal.query("SELECT COUNT(*) AS n FROM cache_events WHERE event = 'lock_broken'")  # type: ignore
    assert rows[0]["n"] == 1
    m.close()
    gw.close()


WARM_ROUNDS = 2


def test_concurrent_cache_warm_runs_end_exact(clean_env: Path) -> None:
    from beststag_cli.cache.manager import CacheManager
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.query.service import QueryService

    settings = load_config()
    m = CacheManager(settings, source="test")
    m.schema()
    gw = Gateway(settings, source="test")
    specs = m.configured_warm_specs()
    rng = random.Random(15)
    users = gw.table("Usuários")
    try:
        for round_ in range(WARM_ROUNDS):
            users.create({"Nome": f"warm {round_}", "status": "Ativo"})  # the answers change between rounds
            procs = []
            for _ in range(rng.choice([2, 3])):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "beststag_cli", "--json", "cache", "warm"],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
                time.sleep(rng.uniform(0.0, 0.6))  # random start offsets (not synchronisation)
            outs = [(p.communicate(timeout=180), p.returncode) for p in procs]
            for (out, err), code in outs:
                assert code == 0, err[-800:]
                assert len(json.loads(out)["warmed"]) == len(specs)
            for s in specs:  # every warmed answer, read back from the cache, is what Airtable says now
                cached = m.get(s)
                assert cached.status == "hit", s.to_json()
                assert same(cached.records) == same(QueryService(gw).run(s).records), (round_, s.to_json())
    finally:
        m.close()
        gw.close()
