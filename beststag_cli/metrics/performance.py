"""Performance figures of a window, all from the journal: requests, latency, errors, API budget, cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..journal import Journal
from . import rollup
from .stats import delta_pct, ratio, rounded
from .windows import SERIES_STEP, Window

if TYPE_CHECKING:
    from ..config import Settings


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (0 when it does not exist)."""
    if not path.exists():
        return 0
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:  # removed while we walk (cache eviction, a backup being cleaned up)
            continue
    return total


def _ms_to_s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000.0, 6)


def request_figures(journal: Journal, window: Window, budget_per_s: float) -> dict[str, Any]:
    """Request figures of one window (no trend, no series)."""
    t = rollup.request_totals(journal, window)
    pct, method = rollup.duration_percentiles(journal, window, t)
    avg_ms = t.duration_sum_ms / t.duration_n if t.duration_n else None
    rate_per_s = t.requests / window.seconds
    peak_rate = rollup.peak_hour_rate(journal, window)
    return {
        "requests_total": t.requests,
        "throughput_per_hour": rounded(t.requests / window.hours, 3),
        "response_time_seconds": {
            "avg": _ms_to_s(avg_ms),
            "p50": _ms_to_s(pct[0.5]),
            "p95": _ms_to_s(pct[0.95]),
            "p99": _ms_to_s(pct[0.99]),
            "max": _ms_to_s(t.duration_max_ms),
            "samples": t.duration_n,
            "percentile_method": method,
        },
        "errors_total": t.errors,
        "error_ratio": rounded(ratio(t.errors, t.requests)),
        "rate_limited_total": t.rate_limited,
        "retries_total": t.retried,
        "api_usage": {
            "budget_requests_per_second": budget_per_s,
            "avg_requests_per_second": rounded(rate_per_s, 6),
            "avg_budget_ratio": rounded(rate_per_s / budget_per_s, 6),
            "peak_hour_requests": rounded(peak_rate * 3600, 3),
            "peak_hour_budget_ratio": rounded(peak_rate / budget_per_s, 6),
        },
        "records_transferred_total": t.records,
        "bytes_transferred_total": t.bytes,
        "by_table": {
            name or "(base)": {
                "requests": int(v["requests"]),
                "errors": int(v["errors"]),
                "avg_response_seconds": _ms_to_s(v["duration_sum_ms"] / v["duration_n"]) if v["duration_n"] else None,
            }
            for name, v in sorted(t.by_table.items())
        },
        "_list_records": t.list_records,
        "_list_bytes": t.list_bytes,
    }


def cache_figures(journal: Journal, window: Window, cache_dir: Path) -> dict[str, Any]:
    """Cache figures from the journal's cache events, plus the cache folder's size on disk."""
    c = rollup.cache_totals(journal, window)
    hits, misses, stale = c.n("hit"), c.n("miss"), c.n("stale")
    lookups = hits + misses + stale
    found = hits + stale
    return {
        "lookups_total": lookups,
        "hits_total": hits,
        "misses_total": misses,
        "stale_total": stale,
        "hit_ratio": rounded(ratio(hits, lookups)),
        "miss_ratio": rounded(ratio(misses, lookups)),
        # of the lookups that found an entry, how many found it still within its TTL
        "ttl_effectiveness_ratio": rounded(ratio(hits, found)),
        "hit_age_avg_seconds": rounded(ratio(c.age_sum_s.get("hit", 0.0), c.age_n.get("hit", 0)), 3),
        "sets_total": c.n("set"),
        "hits_per_set": rounded(ratio(hits, c.n("set")), 3),
        "set_bytes_total": c.bytes.get("set", 0),
        "invalidations_total": c.n("invalidate"),
        "evictions_total": c.n("evict"),
        "writes_applied_total": c.n("write_applied"),
        "size_bytes": dir_bytes(cache_dir),
    }


def collect_performance(settings: Settings, journal: Journal, window: Window) -> dict[str, Any]:
    """The performance section: request and cache figures, trends against the previous window, series."""
    rollup.refresh(journal)
    budget = float(settings.airtable.rate_limit_per_s)
    cur = request_figures(journal, window, budget)
    prev = request_figures(journal, window.previous(), budget)
    cache = cache_figures(journal, window, settings.paths.cache_dir)
    prev_cache = cache_figures(journal, window.previous(), settings.paths.cache_dir)
    for k in ("_list_records", "_list_bytes"):
        cur.pop(k)
        prev.pop(k)
    step = SERIES_STEP[window.range]
    return {
        **cur,
        "cache": cache,
        "trend": {
            "requests_total_delta_pct": rounded(delta_pct(cur["requests_total"], prev["requests_total"]), 2),
            "response_time_avg_delta_pct": rounded(
                delta_pct(cur["response_time_seconds"]["avg"], prev["response_time_seconds"]["avg"]), 2
            ),
            "error_ratio_previous": prev["error_ratio"],
            "cache_hit_ratio_previous": prev_cache["hit_ratio"],
        },
        "series": {
            "step_seconds": step,
            "requests": rollup.request_series(journal, window, step),
            "cache": rollup.cache_series(journal, window, step),
        },
    }
