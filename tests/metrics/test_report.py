"""The report's pure parts: time-axis labels, freshness states, the storage gauge's colour."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.metrics.report import MAX_TICKS, charts, count_labels, freshness, point_labels, time_ticks

_T0 = 1_700_000_000.0  # Nov 2023


@settings(deadline=None)  # no timed assertions: a loaded machine is slow
@given(start=st.floats(_T0, _T0 + 400 * 86400), span=st.floats(0, 60 * 86400))
def test_time_ticks_are_few_ordered_and_distinct(start: float, span: float) -> None:
    ticks = time_ticks(start, start + span)
    assert 1 <= len(ticks) <= MAX_TICKS
    stamps = [t for t, _ in ticks]
    assert stamps == sorted(stamps)
    labels = [label for _, label in ticks]
    assert len(set(labels)) == len(labels), labels


def test_time_ticks_by_hour_or_by_day() -> None:
    day = 86400 * 20_000  # a UTC midnight
    assert [label for _, label in time_ticks(day, day + 3600)][:3] == ["Oct 04", "00:10", "00:20"]
    assert [label for _, label in time_ticks(day, day + 7 * 86400)][:2] == ["Oct 04", "Oct 05"]
    hours = [label for _, label in time_ticks(day + 3600, day + 3600 + 86400)]
    assert hours[:2] == ["03:00", "06:00"] and hours[-1] == "Oct 05"  # the day at midnight
    two_days = [label for _, label in time_ticks(day + 3600, day + 2 * 86400)]
    assert two_days[:2] == ["Oct 04 06:00", "Oct 04 12:00"]  # a day or more: the day in front


@settings(deadline=None)
@given(n=st.integers(1, 800), step=st.sampled_from([300, 3600, 86400]))
def test_point_labels_show_distinct_ticks(n: int, step: int) -> None:
    stamps = [_T0 - _T0 % step + i * step for i in range(n)]
    labels, shown = point_labels(stamps)
    assert len(labels) == n and len(set(labels)) == n
    assert shown and len(shown) <= MAX_TICKS and set(shown) <= set(labels)


@settings(deadline=None, max_examples=30)  # pygal renders a chart per example
@given(ratio=st.floats(0, 1.5), threshold=st.floats(0.05, 1))
def test_storage_gauge_is_red_over_its_threshold(ratio: float, threshold: float) -> None:
    result = {
        "range": "7d",
        "metrics": {"storage": {"plan_record_limit": 100, "usage_ratio": ratio, "tables": {"A": {"records": 1}}}},
    }
    gauge = next(c for c in charts(result, {}, storage_usage_max=threshold) if c.key == "storage")
    assert ("fill:#c53030" in gauge.svg) is (ratio > threshold)


def test_freshness_ok_late_never() -> None:
    result = {
        "metrics": {
            "backup": {
                "by_type": {
                    "critical": {"last_success_age_seconds": 3600.0, "last_success_id": "a"},
                    "incremental": {"last_success_age_seconds": 27 * 3600.0},
                    "complete": {"last_success_age_seconds": None},
                }
            }
        }
    }
    rows = freshness(result, {"critical": 5, "incremental": 26, "complete": 192})
    assert {f.type: f.state for f in rows} == {"critical": "ok", "incremental": "late", "complete": "never"}


@given(top=st.floats(0, 10**9))
def test_count_axes_are_whole_numbers_from_zero(top: float) -> None:
    labels = count_labels(top)
    assert labels[0] == 0 and labels[-1] >= top and 2 <= len(labels) <= 11
    assert all(isinstance(v, int) for v in labels) and labels == sorted(set(labels))
