"""Performance figures from a synthetic journal, checked against values computed by hand."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from beststag_cli.metrics import rollup
from beststag_cli.metrics.performance import cache_figures, collect_performance, request_figures
from beststag_cli.metrics.windows import Window

from .conftest import T, ts

# now = 2026-03-10 12:30 UTC; the 24h window is [03-09 12:30, 03-10 12:30]; its whole hours
# (13:00 .. 12:00) come from the rollup, the two partial edges from raw rows.
ROWS = [
    # ts, table, method, status, duration_ms, retries
    (ts("2026-03-09T12:31:00"), "Usuários", "GET", 200, 100.0, 0),  # head edge (raw)
    (ts("2026-03-09T20:15:00"), "Tarefas", "GET", 200, 200.0, 0),
    (ts("2026-03-09T20:45:00"), "Tarefas", "GET", 500, 300.0, 0),  # error
    (ts("2026-03-10T05:00:00"), "Tarefas", "GET", 429, 50.0, 0),  # rate limited, not an error
    (ts("2026-03-10T05:00:01"), "Tarefas", "GET", 200, 150.0, 1),  # the retry
    (ts("2026-03-10T08:00:00"), "Tarefas", "GET", None, None, 0),  # no answer: error, untimed
    (ts("2026-03-10T12:10:00"), "Interações", "POST", 422, 400.0, 0),  # tail edge (raw), error
    (ts("2026-03-09T12:29:50"), "Usuários", "GET", 200, 10000.0, 0),  # previous window
]


def _fill(journal, rows=ROWS) -> None:  # type: ignore[no-untyped-def]
    for t, table, method, status, dur, retries in rows:
        journal.record_request(
            base="appX",
            table_name=table,
            method=method,
            operation="list",
            status=status,
            duration_ms=dur,
            retries=retries,
            records=10 if status == 200 else 0,
            bytes=1000 if status == 200 else 50,
            ts=t,
        )


def test_request_figures_by_hand(journal) -> None:  # type: ignore[no-untyped-def]
    _fill(journal)
    rollup.refresh(journal)
    f = request_figures(journal, Window.ending("24h", T), 5.0)
    assert f["requests_total"] == 7
    assert f["errors_total"] == 3  # 500, no answer, 422
    assert f["error_ratio"] == round(3 / 7, 4)
    assert f["rate_limited_total"] == 1
    assert f["retries_total"] == 1
    assert f["throughput_per_hour"] == round(7 / 24, 3)
    rt = f["response_time_seconds"]
    # durations 50 100 150 200 300 400: avg 200; p50 between 150 and 200; p95 at rank 4.75; p99 at 4.95
    assert rt["samples"] == 6
    assert rt["avg"] == pytest.approx(0.2)
    assert rt["p50"] == pytest.approx(0.175)
    assert rt["p95"] == pytest.approx(0.375)
    assert rt["p99"] == pytest.approx(0.395)
    assert rt["max"] == pytest.approx(0.4)
    assert rt["percentile_method"] == "exact"
    api = f["api_usage"]
    assert api["avg_requests_per_second"] == pytest.approx(7 / 86400, abs=1e-6)
    assert api["peak_hour_requests"] == 2  # 20:00 and 05:00 hold two each
    assert api["peak_hour_budget_ratio"] == pytest.approx(2 / (3600 * 5), abs=1e-6)
    assert f["by_table"]["Tarefas"] == {"requests": 5, "errors": 2, "avg_response_seconds": pytest.approx(0.175)}
    assert f["records_transferred_total"] == 30
    assert f["bytes_transferred_total"] == 3 * 1000 + 4 * 50


def test_figures_do_not_depend_on_when_rollups_ran(journal) -> None:  # type: ignore[no-untyped-def]
    """Rows appended after a refresh, even into already rolled-up hours, are counted once."""
    _fill(journal, ROWS[:3])
    rollup.refresh(journal)
    _fill(journal, ROWS[3:])  # 05:00 and 08:00 land in hours that already have rollup rows? no matter
    rollup.refresh(journal)
    rollup.refresh(journal)  # idempotent
    assert request_figures(journal, Window.ending("24h", T), 5.0)["requests_total"] == 7


def test_histogram_percentiles_when_the_window_is_large(journal, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(rollup, "EXACT_PERCENTILE_MAX", 0)
    _fill(journal)
    rollup.refresh(journal)
    rt = request_figures(journal, Window.ending("24h", T), 5.0)["response_time_seconds"]
    assert rt["percentile_method"] == "histogram"
    # read back from a bucket: within the bucket's ±4.4 % of the value at that rank
    assert rt["p50"] == pytest.approx(0.175, rel=0.05)
    assert rt["p95"] == pytest.approx(0.375, rel=0.05)
    assert rt["p99"] == pytest.approx(0.395, rel=0.05)
    assert rt["avg"] == pytest.approx(0.2)  # sums stay exact


def test_trend_against_the_previous_window(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _fill(journal)
    p = collect_performance(settings, journal, Window.ending("24h", T))
    assert p["trend"]["requests_total_delta_pct"] == 600.0  # 7 now against 1 before
    assert p["trend"]["error_ratio_previous"] == 0.0
    steps = p["series"]["requests"]
    assert p["series"]["step_seconds"] == 3600
    assert sum(s["requests"] for s in steps) == 7
    assert len(steps) == 25  # 12:00 (partial) .. 12:00 next day
    at_20 = next(s for s in steps if s["t"] == ts("2026-03-09T20:00:00"))
    assert at_20 == {"t": ts("2026-03-09T20:00:00"), "requests": 2, "errors": 1, "avg_response_ms": 250.0}


def test_one_hour_window_reads_raw_rows_in_five_minute_steps(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _fill(journal)
    p = collect_performance(settings, journal, Window.ending("1h", T))
    assert p["requests_total"] == 1  # 12:10
    assert p["series"]["step_seconds"] == 300
    assert [s["requests"] for s in p["series"]["requests"] if s["requests"]] == [1]


def test_empty_journal_gives_empty_figures(settings, journal) -> None:  # type: ignore[no-untyped-def]
    p = collect_performance(settings, journal, Window.ending("30d", T))
    assert p["requests_total"] == 0
    assert p["error_ratio"] is None
    assert p["response_time_seconds"]["avg"] is None
    assert p["cache"]["hit_ratio"] is None


def test_cache_figures_by_hand(settings, journal) -> None:  # type: ignore[no-untyped-def]
    t0 = T - 1800
    for i, age in enumerate((10, 20, 30, 40, 50, 60)):
        journal.record_cache_event(event="hit", table_name="Usuários", age_s=age, bytes=500, ts=t0 + i)
    for e in ("miss", "miss", "stale", "stale", "invalidate", "evict", "write_applied"):
        journal.record_cache_event(event=e, table_name="Tarefas", ts=t0 + 10)
    for b in (100, 200, 300):
        journal.record_cache_event(event="set", table_name="Tarefas", bytes=b, ts=t0 + 20)
    journal.record_cache_event(event="hit", table_name="Tarefas", age_s=5, ts=T - 7200)  # outside 1h
    settings.paths.cache_dir.mkdir(parents=True)
    (settings.paths.cache_dir / "cache.db").write_bytes(b"x" * 1234)
    rollup.refresh(journal)
    c = cache_figures(journal, Window.ending("1h", T), settings.paths.cache_dir)
    assert c["lookups_total"] == 10
    assert c["hit_ratio"] == 0.6
    assert c["miss_ratio"] == 0.2
    assert c["ttl_effectiveness_ratio"] == 0.75  # 6 hits of the 8 lookups that found an entry
    assert c["hit_age_avg_seconds"] == 35.0
    assert c["sets_total"] == 3
    assert c["hits_per_set"] == 2.0
    assert c["set_bytes_total"] == 600
    assert (c["invalidations_total"], c["evictions_total"], c["writes_applied_total"]) == (1, 1, 1)
    assert c["size_bytes"] == 1234
    c24 = cache_figures(journal, Window.ending("24h", T), settings.paths.cache_dir)
    assert c24["hits_total"] == 7


# the case: `--range 1h` showed "API budget used (avg / peak hour) 46.9% / 0.0%"
_RANGES = ("1h", "24h", "7d")


@settings_(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    range_name=st.sampled_from(_RANGES),
    end_offset=st.floats(min_value=0, max_value=7200),
    offsets=st.lists(st.floats(min_value=0, max_value=1.0), min_size=1, max_size=40),
    refresh_first=st.booleans(),
)
def test_peak_hour_is_never_below_the_average(
    journal,
    range_name,
    end_offset,
    offsets,  # type: ignore[no-untyped-def]
    refresh_first,
) -> None:
    journal.conn.execute("DELETE FROM requests")
    journal.conn.execute("DELETE FROM requests_hourly")
    journal.conn.execute("DELETE FROM kv")
    window = Window.ending(range_name, T + end_offset)
    # requests spread anywhere in the window (its edges included), rolled up before or after they land
    rows = [(window.start + f * window.seconds, "Tarefas", "GET", 200, 10.0, 0) for f in offsets]
    if refresh_first:
        rollup.refresh(journal)
    _fill(journal, rows)
    rollup.refresh(journal)
    api = request_figures(journal, window, 5.0)["api_usage"]
    assert api["avg_requests_per_second"] > 0
    assert api["peak_hour_budget_ratio"] >= api["avg_budget_ratio"]
    assert api["peak_hour_requests"] > 0


def test_one_hour_range_peak_is_the_window_itself(journal) -> None:  # type: ignore[no-untyped-def]
    """A 1h window holds no whole UTC hour: its busiest hour is the window, not 0."""
    _fill(journal, [(T - 60 * i, "Tarefas", "GET", 200, 10.0, 0) for i in range(30)])
    rollup.refresh(journal)
    api = request_figures(journal, Window.ending("1h", T), 5.0)["api_usage"]
    assert api["peak_hour_requests"] == 30
    assert api["peak_hour_budget_ratio"] == api["avg_budget_ratio"]
