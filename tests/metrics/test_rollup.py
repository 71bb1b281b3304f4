"""Hourly rollups give the same window totals as a scan of the raw rows, whenever they are refreshed."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.journal import Journal
from beststag_cli.metrics import rollup
from beststag_cli.metrics.windows import RANGES, Window

END = 1_773_145_800.0  # 2026-03-10 12:30 UTC
_counter = itertools.count()

row = st.tuples(
    st.floats(min_value=0, max_value=3 * 86400, allow_nan=False),  # seconds before END
    st.sampled_from([200, 200, 200, 404, 429, 500, None]),
    st.one_of(st.none(), st.floats(min_value=0.1, max_value=20_000)),
    st.integers(0, 2),
    st.sampled_from(["Usuários", "Tarefas", None]),
)


def _naive(rows: list[tuple], window: Window) -> dict[str, float]:
    inside = [r for r in rows if window.start <= END - r[0] <= window.end]
    durs = [r[2] for r in inside if r[2] is not None]
    return {
        "requests": len(inside),
        "errors": sum(1 for r in inside if r[1] is None or (r[1] >= 400 and r[1] != 429)),
        "rate_limited": sum(1 for r in inside if r[1] == 429),
        "retried": sum(1 for r in inside if r[3] > 0),
        "duration_n": len(durs),
        "duration_sum_ms": sum(durs),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, max_size=60), split=st.integers(0, 60), range_name=st.sampled_from(list(RANGES)))
def test_rollup_totals_equal_a_raw_scan(tmp_path: Path, rows: list[tuple], split: int, range_name: str) -> None:
    j = Journal(tmp_path / f"j{next(_counter)}.sqlite")
    try:
        for i, (ago, status, dur, retries, table) in enumerate(rows):
            if i == split:
                rollup.refresh(j)  # a refresh in the middle: later rows land in hours already rolled up
            j.record_request(
                base="appX",
                table_name=table,
                method="GET",
                status=status,
                duration_ms=dur,
                retries=retries,
                ts=END - ago,
            )
        rollup.refresh(j)
        window = Window.ending(range_name, END)
        got = rollup.request_totals(j, window)
        want = _naive(rows, window)
        for k, v in want.items():
            assert abs(getattr(got, k) - v) < 1e-6 * max(1.0, abs(v)), k
        assert sum(t["requests"] for t in got.by_table.values()) == want["requests"]
    finally:
        j.close()


def test_watermark_restarts_when_the_table_was_emptied(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    for i in range(3):
        j.record_request(base=None, table_name="T", method="GET", status=200, duration_ms=1.0, ts=END - 100 - i)
    assert rollup.refresh(j)["requests"] == 3
    j.conn.execute("DELETE FROM requests")
    rollup.reset_watermarks_if_empty(j)
    j.record_request(base=None, table_name="T", method="GET", status=200, duration_ms=1.0, ts=END - 50)
    assert rollup.refresh(j)["requests"] == 1  # rowid 1 again: folded, not skipped
    assert rollup.lifetime_request_totals(j)["requests"] == 4
    j.close()
