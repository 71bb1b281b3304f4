"""Hourly rollups of the journal, and window totals that read them instead of raw rows.

The journal grows by one row per upstream request (a busy month is a million rows); scanning
that for every `metrics collect --range 30d` would take seconds. So :func:`refresh` folds new
raw rows into per-hour aggregates (``requests_hourly``, ``requests_duration_hourly``,
``cache_hourly``; schema in ``journal.m002_metrics_hourly_rollups``), and the window functions
read whole hours from there and only the two partial hours at the window's edges from raw rows.

Rows are folded in by rowid, above a watermark kept in ``kv``: appends are rowid-ordered, so a
row recorded late (a slow process) still lands in its own hour. `metrics archive` deletes old raw
rows only after refreshing, and keeps the rollups.

Definitions used everywhere (README, "Metrics and alerts"):
- an *error* is a request with no answer (status NULL) or a 4xx/5xx answer other than 429;
- *rate limited* is a 429 answer; a *retry* is any attempt after the first (``retries > 0``);
- percentiles are exact (linear between ranks) while the window holds at most
  :data:`EXACT_PERCENTILE_MAX` raw durations, else read from the hourly histograms (±4.4 %).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..journal import Journal, _locked_retry
from .stats import SQL_BUCKET, histogram_percentile, percentile
from .windows import HOUR, Window, ceil_hour, floor_hour

EXACT_PERCENTILE_MAX = 50_000

_ERR = "(status IS NULL OR (status >= 400 AND status <> 429))"

_REQ_AGG = f"""
    count(*) AS requests,
    sum(CASE WHEN {_ERR} THEN 1 ELSE 0 END) AS errors,
    sum(CASE WHEN status = 429 THEN 1 ELSE 0 END) AS rate_limited,
    sum(CASE WHEN retries > 0 THEN 1 ELSE 0 END) AS retried,
    count(duration_ms) AS duration_n,
    coalesce(sum(duration_ms), 0) AS duration_sum_ms,
    max(duration_ms) AS duration_max_ms,
    coalesce(sum(records), 0) AS records,
    coalesce(sum(CASE WHEN operation = 'list' AND records > 0 THEN records END), 0) AS list_records,
    coalesce(sum(CASE WHEN operation = 'list' AND records > 0 THEN bytes END), 0) AS list_bytes,
    coalesce(sum(bytes), 0) AS bytes
"""
_REQ_COLS = (
    "requests",
    "errors",
    "rate_limited",
    "retried",
    "duration_n",
    "duration_sum_ms",
    "records",
    "list_records",
    "list_bytes",
    "bytes",
)

_CACHE_AGG = """
    count(*) AS n,
    coalesce(sum(bytes), 0) AS bytes,
    count(age_s) AS age_n,
    coalesce(sum(age_s), 0) AS age_sum_s
"""

_WATERMARKS = {"requests": "metrics.rollup.requests_rowid", "cache_events": "metrics.rollup.cache_events_rowid"}


# --------------------------------------------------------------------------------------------
# refresh


def refresh(journal: Journal) -> dict[str, int]:
    """Fold raw rows appended since the last call into the hourly tables; rows folded per table."""
    return {"requests": _refresh_one(journal, "requests"), "cache_events": _refresh_one(journal, "cache_events")}


def _refresh_one(journal: Journal, table: str) -> int:
    conn = journal.conn
    key = _WATERMARKS[table]

    def run() -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute('SELECT value FROM kv WHERE "key" = ?', (key,)).fetchone()
            mark = int(row[0]) if row and row[0] else 0
            top = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
            if top < mark:
                # rows above the mark were deleted from outside (Journal.prune) and rowids may be reused
                mark = 0 if top == 0 else top
            n = 0
            if top > mark:
                n = _fold(conn, table, mark, top)
                conn.execute('INSERT OR REPLACE INTO kv ("key", value) VALUES (?, ?)', (key, str(top)))
            elif row is None or int(row[0] or 0) != mark:
                conn.execute('INSERT OR REPLACE INTO kv ("key", value) VALUES (?, ?)', (key, str(mark)))
            conn.execute("COMMIT")
            return n
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    return _locked_retry(run)


def _fold(conn: sqlite3.Connection, table: str, lo: int, hi: int) -> int:
    where = "WHERE rowid > ? AND rowid <= ?"
    if table == "requests":
        n = conn.execute(f"SELECT count(*) FROM requests {where}", (lo, hi)).fetchone()[0]
        updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in _REQ_COLS)
        conn.execute(
            f"""INSERT INTO requests_hourly (hour, table_name, {", ".join(_REQ_COLS)}, duration_max_ms)
                SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR} AS h, coalesce(table_name, '') AS t,
                       {", ".join(_REQ_COLS)}, duration_max_ms FROM (
                    SELECT ts, table_name, {_REQ_AGG} FROM requests {where}
                    GROUP BY CAST(ts / {HOUR} AS INTEGER), coalesce(table_name, ''))
                WHERE true
                ON CONFLICT (hour, table_name) DO UPDATE SET {updates},
                    duration_max_ms = max(coalesce(duration_max_ms, excluded.duration_max_ms),
                                          coalesce(excluded.duration_max_ms, duration_max_ms))""",
            (lo, hi),
        )
        conn.execute(
            f"""INSERT INTO requests_duration_hourly (hour, bucket, n)
                SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, {SQL_BUCKET} AS b, count(*) FROM requests
                {where} AND duration_ms IS NOT NULL GROUP BY 1, 2
                ON CONFLICT (hour, bucket) DO UPDATE SET n = n + excluded.n""",
            (lo, hi),
        )
        return int(n)
    n = conn.execute(f"SELECT count(*) FROM cache_events {where}", (lo, hi)).fetchone()[0]
    conn.execute(
        f"""INSERT INTO cache_hourly (hour, table_name, event, n, bytes, age_n, age_sum_s)
            SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, coalesce(table_name, ''), event, {_CACHE_AGG}
            FROM cache_events {where} GROUP BY 1, 2, 3
            ON CONFLICT (hour, table_name, event) DO UPDATE SET n = n + excluded.n,
                bytes = bytes + excluded.bytes, age_n = age_n + excluded.age_n,
                age_sum_s = age_sum_s + excluded.age_sum_s""",
        (lo, hi),
    )
    return int(n)


def reset_watermarks_if_empty(journal: Journal) -> None:
    """After raw rows were deleted: an empty table restarts rowids at 1, so restart the mark too."""
    for table, key in _WATERMARKS.items():
        if journal.query(f"SELECT max(rowid) AS m FROM {table}")[0]["m"] is None:
            journal.kv_set(key, "0")


# --------------------------------------------------------------------------------------------
# window totals


@dataclass
class RequestTotals:
    """Sums over the requests of a window, overall and per table."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    retried: int = 0
    duration_n: int = 0
    duration_sum_ms: float = 0.0
    duration_max_ms: float | None = None
    records: int = 0
    list_records: int = 0
    list_bytes: int = 0
    bytes: int = 0
    by_table: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        for c in _REQ_COLS:
            setattr(self, c, getattr(self, c) + (row[c] or 0))
        m = row.get("duration_max_ms")
        if m is not None and (self.duration_max_ms is None or m > self.duration_max_ms):
            self.duration_max_ms = m
        name = row.get("table_name") or ""
        t = self.by_table.setdefault(name, {"requests": 0, "errors": 0, "duration_n": 0, "duration_sum_ms": 0.0})
        for c in t:
            t[c] += row[c] or 0


def _parts(window: Window) -> Iterator[tuple[str, float, float, bool]]:
    """(source, lo, hi, hi_inclusive): raw head, whole hours from the rollup, raw tail."""
    h0, h1 = ceil_hour(window.start), floor_hour(window.end)
    if h0 >= h1:
        yield "raw", window.start, window.end, True
        return
    if window.start < h0:
        yield "raw", window.start, h0, False
    yield "rollup", h0, h1, False
    yield "raw", h1, window.end, True


def request_totals(journal: Journal, window: Window) -> RequestTotals:
    """Totals of the requests recorded in ``window`` (call :func:`refresh` first)."""
    out = RequestTotals()
    for source, lo, hi, incl in _parts(window):
        if source == "rollup":
            rows = journal.query(
                f"SELECT table_name, {', '.join(f'sum({c}) AS {c}' for c in _REQ_COLS)},"
                " max(duration_max_ms) AS duration_max_ms FROM requests_hourly"
                " WHERE hour >= ? AND hour < ? GROUP BY table_name",
                (lo, hi),
            )
        else:
            op = "<=" if incl else "<"
            rows = journal.query(
                f"SELECT coalesce(table_name, '') AS table_name, {_REQ_AGG} FROM requests"
                f" WHERE ts >= ? AND ts {op} ? GROUP BY coalesce(table_name, '')",
                (lo, hi),
            )
        for r in rows:
            out.add(r)
    return out


def duration_percentiles(
    journal: Journal, window: Window, totals: RequestTotals, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> tuple[dict[float, float | None], str]:
    """Response-time quantiles (ms) of a window and how they were obtained ("exact"/"histogram")."""
    if totals.duration_n == 0:
        return {q: None for q in qs}, "exact"
    if totals.duration_n <= EXACT_PERCENTILE_MAX:
        rows = journal.query(
            "SELECT duration_ms FROM requests WHERE ts >= ? AND ts <= ? AND duration_ms IS NOT NULL"
            " ORDER BY duration_ms",
            (window.start, window.end),
        )
        if len(rows) == totals.duration_n:  # nothing archived away: the raw rows are all there
            values = [r["duration_ms"] for r in rows]
            return {q: percentile(values, q) for q in qs}, "exact"
    hist: dict[int, int] = {}
    for source, lo, hi, incl in _parts(window):
        if source == "rollup":
            rows = journal.query(
                "SELECT bucket AS b, sum(n) AS n FROM requests_duration_hourly"
                " WHERE hour >= ? AND hour < ? GROUP BY bucket",
                (lo, hi),
            )
        else:
            op = "<=" if incl else "<"
            rows = journal.query(
                f"SELECT {SQL_BUCKET} AS b, count(*) AS n FROM requests WHERE ts >= ? AND ts {op} ?"
                " AND duration_ms IS NOT NULL GROUP BY 1",
                (lo, hi),
            )
        for r in rows:
            hist[r["b"]] = hist.get(r["b"], 0) + r["n"]
    return {q: histogram_percentile(hist, q) for q in qs}, "histogram"


@dataclass
class CacheTotals:
    """Counts of cache events in a window: event -> count, and bytes/ages per event."""

    counts: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    age_n: dict[str, int] = field(default_factory=dict)
    age_sum_s: dict[str, float] = field(default_factory=dict)
    by_table: dict[str, dict[str, int]] = field(default_factory=dict)

    def n(self, event: str) -> int:
        return self.counts.get(event, 0)

    def add(self, row: dict[str, Any]) -> None:
        e = row["event"]
        self.counts[e] = self.counts.get(e, 0) + row["n"]
        self.bytes[e] = self.bytes.get(e, 0) + (row["bytes"] or 0)
        self.age_n[e] = self.age_n.get(e, 0) + (row["age_n"] or 0)
        self.age_sum_s[e] = self.age_sum_s.get(e, 0.0) + (row["age_sum_s"] or 0.0)
        t = self.by_table.setdefault(row["table_name"] or "", {})
        t[e] = t.get(e, 0) + row["n"]


def cache_totals(journal: Journal, window: Window) -> CacheTotals:
    """Cache events recorded in ``window`` (call :func:`refresh` first)."""
    out = CacheTotals()
    for source, lo, hi, incl in _parts(window):
        if source == "rollup":
            rows = journal.query(
                "SELECT table_name, event, sum(n) AS n, sum(bytes) AS bytes, sum(age_n) AS age_n,"
                " sum(age_sum_s) AS age_sum_s FROM cache_hourly WHERE hour >= ? AND hour < ?"
                " GROUP BY table_name, event",
                (lo, hi),
            )
        else:
            op = "<=" if incl else "<"
            rows = journal.query(
                f"SELECT coalesce(table_name, '') AS table_name, event, {_CACHE_AGG}"
                f" FROM cache_events WHERE ts >= ? AND ts {op} ? GROUP BY 1, 2",
                (lo, hi),
            )
        for r in rows:
            out.add(r)
    return out


# --------------------------------------------------------------------------------------------
# series (charts, sparklines)


def _bucket_starts(window: Window, step: int) -> list[int]:
    first = int(window.start // step) * step
    return list(range(first, int(window.end) + 1, step))


def request_series(journal: Journal, window: Window, step: int) -> list[dict[str, Any]]:
    """Per-step requests, errors and average response time, oldest first (steps aligned to UTC)."""
    acc: dict[int, list[float]] = {t: [0, 0, 0, 0.0] for t in _bucket_starts(window, step)}

    def put(t: int, requests: int, errors: int, dn: int, ds: float) -> None:
        a = acc.setdefault(t, [0, 0, 0, 0.0])
        a[0] += requests
        a[1] += errors
        a[2] += dn
        a[3] += ds

    parts = list(_parts(window)) if step >= HOUR else [("raw", window.start, window.end, True)]
    for source, lo, hi, incl in parts:
        if source == "rollup":
            rows = journal.query(
                f"SELECT CAST(hour / {step} AS INTEGER) * {step} AS t, sum(requests) AS r,"
                " sum(errors) AS e, sum(duration_n) AS dn, sum(duration_sum_ms) AS ds"
                " FROM requests_hourly WHERE hour >= ? AND hour < ? GROUP BY 1",
                (lo, hi),
            )
        else:
            op = "<=" if incl else "<"
            rows = journal.query(
                f"SELECT CAST(ts / {step} AS INTEGER) * {step} AS t, count(*) AS r,"
                f" sum(CASE WHEN {_ERR} THEN 1 ELSE 0 END) AS e, count(duration_ms) AS dn,"
                f" coalesce(sum(duration_ms), 0) AS ds FROM requests WHERE ts >= ? AND ts {op} ?"
                " GROUP BY 1",
                (lo, hi),
            )
        for r in rows:
            put(int(r["t"]), r["r"], r["e"] or 0, r["dn"] or 0, r["ds"] or 0.0)
    return [
        {"t": t, "requests": int(a[0]), "errors": int(a[1]), "avg_response_ms": (a[3] / a[2]) if a[2] else None}
        for t, a in sorted(acc.items())
    ]


def cache_series(journal: Journal, window: Window, step: int) -> list[dict[str, Any]]:
    """Per-step cache hits and lookups (hit + miss + stale), oldest first."""
    acc: dict[int, list[int]] = {t: [0, 0] for t in _bucket_starts(window, step)}
    parts = list(_parts(window)) if step >= HOUR else [("raw", window.start, window.end, True)]
    lookup = "('hit', 'miss', 'stale')"
    for source, lo, hi, incl in parts:
        if source == "rollup":
            rows = journal.query(
                f"SELECT CAST(hour / {step} AS INTEGER) * {step} AS t,"
                " sum(CASE WHEN event = 'hit' THEN n ELSE 0 END) AS h,"
                f" sum(CASE WHEN event IN {lookup} THEN n ELSE 0 END) AS l"
                " FROM cache_hourly WHERE hour >= ? AND hour < ? GROUP BY 1",
                (lo, hi),
            )
        else:
            op = "<=" if incl else "<"
            rows = journal.query(
                f"SELECT CAST(ts / {step} AS INTEGER) * {step} AS t,"
                " sum(CASE WHEN event = 'hit' THEN 1 ELSE 0 END) AS h,"
                f" sum(CASE WHEN event IN {lookup} THEN 1 ELSE 0 END) AS l"
                f" FROM cache_events WHERE ts >= ? AND ts {op} ? GROUP BY 1",
                (lo, hi),
            )
        for r in rows:
            a = acc.setdefault(int(r["t"]), [0, 0])
            a[0] += r["h"] or 0
            a[1] += r["l"] or 0
    return [
        {"t": t, "hits": a[0], "lookups": a[1], "hit_ratio": (a[0] / a[1]) if a[1] else None}
        for t, a in sorted(acc.items())
    ]


def peak_hour_rate(journal: Journal, window: Window) -> float:
    """Requests per second in the window's busiest hour (never below the window's average rate).

    The window is cut into UTC hours; a partial hour at either edge is merged into its neighbour
    (spans of 1 to 2 hours), and a window of at most two spans is one span. The spans tile the
    window, so their rates average (weighted by length) to the window's rate and the busiest one is
    at least that. Counting only whole hours read 0 for a 1h window, which never holds one.
    """
    if window.seconds <= 0:
        return 0.0
    spans: list[list[float]] = []  # [seconds, requests], oldest first
    for b in request_series(journal, window, HOUR):
        lo, hi = max(float(b["t"]), window.start), min(float(b["t"] + HOUR), window.end)
        if hi > lo or b["requests"]:
            spans.append([max(hi - lo, 0.0), float(b["requests"])])
    if len(spans) > 1 and spans[0][0] < HOUR:
        head = spans.pop(0)
        spans[0] = [spans[0][0] + head[0], spans[0][1] + head[1]]
    if len(spans) > 1 and spans[-1][0] < HOUR:
        tail = spans.pop()
        spans[-1] = [spans[-1][0] + tail[0], spans[-1][1] + tail[1]]
    return max((n / s for s, n in spans if s > 0), default=0.0)


def lifetime_request_totals(journal: Journal) -> dict[str, int]:
    """Totals over every request ever folded into the rollups (Prometheus counters)."""
    r = journal.query(
        "SELECT coalesce(sum(requests), 0) AS requests, coalesce(sum(errors), 0) AS errors,"
        " coalesce(sum(rate_limited), 0) AS rate_limited, coalesce(sum(retried), 0) AS retried,"
        " coalesce(sum(bytes), 0) AS bytes FROM requests_hourly"
    )[0]
    c = journal.query("SELECT event, sum(n) AS n FROM cache_hourly GROUP BY event")
    out = {k: int(v) for k, v in r.items()}
    for row in c:
        out[f"cache_{row['event']}"] = int(row["n"])
    return out
