"""The cache's upkeep: warm queries (configured or most read), statistics, prune, clear.

Functions over a `CacheManager` (the manager's methods of the same names call them), kept apart
from the read path so `manager.py` stays the front: what a caller asks of the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import clock
from ..progress import Reporter, guard
from .keyspace import Keyspace

if TYPE_CHECKING:
    from ..query.spec import QuerySpec
    from .manager import CacheManager, CacheResult


def warm(m: CacheManager, specs: Iterable[QuerySpec], progress: Reporter | None = None) -> list[CacheResult]:
    """Load each query's answer now (refreshing what is cached); ``progress`` counts queries."""
    specs = list(specs)
    task = guard(progress).task("cache warm", total=len(specs), unit="queries")
    out = []
    for s in specs:
        out.append(m.get(s, refresh=True))
        task.advance(1)
    task.done(f"{sum(len(r.records) for r in out):,} records")
    return out


def _warm_tables(m: CacheManager, tables: Iterable[str]) -> set[str]:
    """The names of `tables` (names or ids); an unknown one is `UnknownTable` with a 'did you mean'."""
    tables = list(tables)
    if not tables:
        return set()
    from ..inputs import check_text

    check_text(tables, "TABLES")
    schema = m.schema()
    return {schema.table(t).name for t in tables}


def configured_warm_specs(m: CacheManager, tables: Iterable[str] = ()) -> list[QuerySpec]:
    from ..query.spec import QuerySpec

    wanted = _warm_tables(m, tables)
    specs = [QuerySpec.parse(dict(w)) for w in m.settings.cache.warm]
    return [s for s in specs if not wanted or s.table in wanted]


def journal_warm_specs(
    m: CacheManager, *, hours: float = 24, limit: int = 20, tables: Iterable[str] = ()
) -> list[QuerySpec]:
    """The most frequently read queries of the last `hours`, from the journal's cache events."""
    from ..query.spec import QuerySpec

    j = m.journal
    if j is None:
        return []
    rows = j.query(
        "SELECT key, table_name, COUNT(*) AS n FROM cache_events WHERE event IN ('hit', 'miss', "
        "'stale') AND ts >= ? AND key LIKE 'q1:%' AND (base = ? OR base IS NULL) "
        "GROUP BY key, table_name ORDER BY n DESC LIMIT ?",
        (clock.timestamp() - hours * 3600, m.base, limit * 3),
    )
    wanted = _warm_tables(m, tables)
    out: list[QuerySpec] = []
    for r in rows:
        if wanted and r["table_name"] not in wanted:
            continue
        spec = m.store.get(Keyspace.spec(r["key"]))
        if spec is not None:
            out.append(QuerySpec.parse(spec))
        if len(out) >= limit:
            break
    return out


def stats(m: CacheManager, *, hours: float = 24) -> dict[str, Any]:
    """Hits, misses, ratios, entries, bytes and each table's TTL (events from the journal)."""
    since = clock.timestamp() - hours * 3600
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        j = m.journal
        if j is not None:
            rows = j.query(
                "SELECT table_name, event, COUNT(*) AS n FROM cache_events WHERE ts >= ? "
                "AND (base = ? OR base IS NULL) GROUP BY table_name, event",
                (since, m.base),
            )
    except Exception as e:  # the counters are the journal's: without them, report the rest
        warnings.append(f"hit/miss counters unavailable ({type(e).__name__}: {str(e)[:120]})")
    per: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for r in rows:
        t = r["table_name"] or "*"
        per.setdefault(t, {})[r["event"]] = r["n"]
        total[r["event"]] = total.get(r["event"], 0) + r["n"]

    def figures(c: dict[str, int]) -> dict[str, Any]:
        hits, misses, stale = c.get("hit", 0), c.get("miss", 0), c.get("stale", 0)
        reads = hits + misses + stale
        return {
            "hits": hits,
            "misses": misses,
            "stale": stale,
            "sets": c.get("set", 0),
            "invalidations": c.get("invalidate", 0),
            "write_applications": c.get("write_applied", 0),
            "hit_ratio": round(hits / reads, 4) if reads else None,
            "miss_ratio": round(misses / reads, 4) if reads else None,
            # how many reads each stored answer served before it was replaced
            "ttl_effectiveness": round(hits / c["set"], 2) if c.get("set") else None,
        }

    tables = {}
    for name in m.settings.tables:
        st = m.ttl_state(name)
        configured = float(m.settings.ttl_for(name))
        dyn = m.settings.cache.dynamic_ttl.enabled
        tables[name] = {
            **figures(per.get(name, {})),
            "mode": m.mode(name),
            "ttl_s": st.ttl_s if dyn else configured,
            "ttl_reason": st.reason if dyn else "configured",
            "generation": m.generation(name),
        }
    degraded = getattr(m.store, "degraded", None)
    entries = None if degraded else len(m.store)
    volume = None if degraded else m.store.volume()
    warnings = list(dict.fromkeys([*getattr(m.store, "warnings", []), *warnings]))
    out = {
        "range_h": hours,
        "overall": figures(total),
        "entries": entries,
        "bytes": volume,
        "evictions": total.get("evict", 0),
        "tables": tables,
    }
    if warnings:
        out["warnings"] = warnings
    return out


def prune(m: CacheManager) -> dict[str, int]:
    t0 = time.perf_counter()
    n = m.store.expire()
    m._event("evict", None, "prune", nbytes=n)
    return {"removed": n, "ms": int((time.perf_counter() - t0) * 1000)}


def clear(m: CacheManager) -> int:
    return int(m.invalidate(None)["entries"])
