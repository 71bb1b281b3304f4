"""Cache backends: in-process hit latency (p50/p99) of diskcache (disk, and with the LRU) vs Redis (issue 12).

`scripts/bench cache --backend redis` of the issue is this benchmark (the `cache` benchmark is another one).

Setup: the in-process sandbox (sample base); the spec's two hot queries (active users; interactions of the
last 7 days, 50 newest, three fields) are read once through `CacheManager.get` so they are cached, then
read again N times on each backend, alternating the two queries:

- **store get**: `store.get(key)` of the stored answer (what the backend itself costs: I/O + JSON decode);
- **hit path**: `CacheManager.lookup_alias(alias)` — what `beststag cache get` and the webhook do on a hit:
  alias → table generation → entry → projection, plus the journal's `hit` row.

Backends: diskcache without LRU (the default for the CLI: the baseline), diskcache with the in-memory LRU
(the webhook server), Redis without LRU and Redis with the LRU (its epoch check is one round trip). Redis is
a `redis-server` this benchmark starts on a free loopback port (`--save '' --appendonly no`), so the
figures are loopback round trips, the best case of a shared Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

QUERIES = (
    {"table": "Usuários", "filters": {"status": "Ativo"}},
    {
        "table": "Interações",
        "filters": {"timestamp": {"operator": "date_after", "days": -7}},
        "fields": ["user", "message", "timestamp"],
        "sort": [{"field": "timestamp", "direction": "desc"}],
        "maxRecords": 50,
    },
)


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes] | None, str | None, str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        return None, None, "redis-server is not installed: Redis rows left out (./scripts/test installs it)"
    try:
        import redis
    except ImportError:
        return None, None, "the redis package is missing (pip install -e '.[remote]'): Redis rows left out"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(workdir / "redis.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            client.close()
            return proc, url, None
        except Exception:
            time.sleep(0.05)
    proc.kill()
    return None, None, "redis-server did not start: Redis rows left out"


def _measure(settings: Any, gateway: Any, n: int, lru_items: int) -> dict[str, float]:
    from beststag_cli.cache.manager import CacheManager, alias_digest
    from beststag_cli.query.spec import QuerySpec

    m = CacheManager(settings, gateway=gateway, lru_items=lru_items, source="bench")
    m.clear()
    aliases, keys = [], []
    for q in QUERIES:
        alias = alias_digest({"bench": q})
        res = m.get(QuerySpec.parse(dict(q)), alias=alias)
        aliases.append(alias)
        keys.append(m.keys.query(res.table, m.generation(res.table), res.key))
    for i in range(200):  # warm: connections, LRU, page cache
        m.lookup_alias(aliases[i % 2])
        m.store.get(keys[i % 2])
    store_s: list[float] = []
    hit_s: list[float] = []
    pc = time.perf_counter
    for i in range(n):
        k = keys[i % 2]
        t0 = pc()
        m.store.get(k)
        store_s.append(pc() - t0)
    for i in range(n):
        a = aliases[i % 2]
        t0 = pc()
        r = m.lookup_alias(a)
        hit_s.append(pc() - t0)
        assert r is not None and r.status == "hit"
    m.close()
    us = 1e6
    return {
        "store_p50": _pct(store_s, 50) * us,
        "store_p99": _pct(store_s, 99) * us,
        "hit_p50": _pct(hit_s, 50) * us,
        "hit_p99": _pct(hit_s, 99) * us,
        "hit_mean": statistics.fmean(hit_s) * us,
    }


def run(quick: bool = False) -> dict[str, Any]:
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway

    n = 2000 if quick else 20000
    tmp = tempfile.TemporaryDirectory(prefix="bench-cache-backends-")
    work = Path(tmp.name)
    old = os.environ.get("BESTSTAG_DATA_DIR")
    os.environ["BESTSTAG_DATA_DIR"] = str(work / "var")
    proc, url, problem = _start_redis(work)
    notes = [problem] if problem else []
    try:
        settings = load_config()
        gateway = Gateway(settings, source="bench")
        lru = int(settings.cache.lru_items) or 1000
        runs: dict[str, dict[str, float]] = {
            "diskcache": _measure(settings, gateway, n, 0),
            "diskcache + LRU": _measure(settings, gateway, n, lru),
        }
        if url is not None:
            settings.cache.backend = "redis"
            settings.cache.redis_url = url
            runs["redis"] = _measure(settings, gateway, n, 0)
            runs["redis + LRU"] = _measure(settings, gateway, n, lru)
        gateway.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if old is None:
            os.environ.pop("BESTSTAG_DATA_DIR", None)
        else:
            os.environ["BESTSTAG_DATA_DIR"] = old
        tmp.cleanup()

    base = runs["diskcache"]
    figures = []
    for name, r in runs.items():
        role = "baseline" if name == "diskcache" else "measured"
        for metric, label in (
            ("store_p50", "store get p50"),
            ("store_p99", "store get p99"),
            ("hit_p50", "hit path p50"),
            ("hit_p99", "hit path p99"),
        ):
            figures.append(
                figure(
                    f"{name}: {label}",
                    round(r[metric], 1),
                    "µs",
                    role=role,
                    baseline=None if role == "baseline" else f"diskcache: {label}",
                    ratio=None if role == "baseline" else round(ratio(r[metric], base[metric]), 4),
                )
            )
    notes.append(
        "hit path = CacheManager.lookup_alias (alias, generation, entry, projection, journal hit row); "
        "Redis on loopback, one round trip each for alias, generation and entry"
    )
    return {"figures": figures, "setup": {"reads per measurement": n, "queries": len(QUERIES)}, "notes": notes}
