"""The HTML report in headless Chromium (DevTools protocol, via tests/chromium.py) at 1400 px.

What an operator sees: the backup freshness answer first, two or more columns side by side, no
console errors, nothing fetched but the page itself, the storage gauge red over its threshold,
every visible time label distinct, count and ratio axes from zero. A full-page screenshot is kept
in $BESTSTAG_ARTIFACTS or test-artifacts/ for CI artefacts. Skipped where Debian's `chromium` is
not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from beststag_cli import clock
from beststag_cli.config import SANDBOX_BASE_ID, load_config
from beststag_cli.journal import Journal
from beststag_cli.metrics.usage import parse_created
from tests.chromium import needs_chromium, watched_page

REPO = Path(__file__).resolve().parents[2]


def _seed(api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """A week of traffic, backups fresh / late / never, and a plan almost full; returns 'now'."""
    records = sum(len(api.table(SANDBOX_BASE_ID, t).all(fields=[])) for t in load_config().tables)
    cfg = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text())
    cfg.setdefault("metrics", {})["plan_record_limit"] = int(records / 0.9)  # 90% used, alert at 80%
    path = tmp_path / "beststag.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
    # an hour after the sample base's newest interaction, so its activity falls in the window
    T = 3600 + max(parse_created(r["createdTime"]) for r in api.table(SANDBOX_BASE_ID, "Interações").all(fields=[]))
    clock.set_now(datetime.fromtimestamp(T, UTC))
    j = Journal(load_config().paths.journal)
    for i in range(400):  # a week of traffic with a slow, error-prone afternoon
        t = T - i * 1500
        slow = 30 <= i < 40
        j.record_request(
            base=SANDBOX_BASE_ID,
            table_name="Tarefas" if i % 2 else "Interações",
            method="GET",
            operation="list",
            status=500 if slow and i % 3 == 0 else 200,
            duration_ms=(2500.0 if slow else 120.0) + (i % 7) * 15,
            records=100,
            bytes=12000,
            ts=t,
        )
        j.record_cache_event(event="hit" if (i % 5) and not slow else "miss", table_name="Tarefas", ts=t)
    # critical: 1 h old (max 5 h) -> ok; incremental: 40 h old (max 26 h) -> late; complete: never
    for k, (typ, status, age_h) in enumerate(
        [("critical", "ok", 1), ("critical", "failed", 3), ("incremental", "ok", 40), ("complete", "failed", 30)]
    ):
        j.record_backup_run(
            id=f"b{k}-{typ}",
            type=typ,
            status=status,
            started=T - age_h * 3600 - 90,
            finished=T - age_h * 3600,
            records=1000,
            bytes=250_000,
        )
    for d in range(7, 0, -1):
        j.add_count_snapshots(
            {"Usuários": 100 - d * 2, "Interações": 1000 - d * 40, "Tarefas": 300 - d * 5}, ts=T - d * 86400
        )
    j.close()
    return T


_BOXES = """() => [...document.querySelectorAll('main > section, figure')].map(e => {
  const r = e.getBoundingClientRect();
  return {id: e.id || e.dataset.chart, tag: e.tagName, x: r.left, y: r.top, w: r.width, h: r.height};
})"""

_X_LABELS = """() => [...document.querySelectorAll('figure')].map(f => ({
  chart: f.dataset.chart,
  labels: [...f.querySelectorAll('.axis.x text')].filter(t => t.getBBox().width > 0).map(t => t.textContent),
  y: [...f.querySelectorAll('.axis.y text')].map(t => t.textContent),
}))"""

_GAUGE_FILL = """() => {
  const p = document.querySelector('figure[data-chart=storage] .gauge path.slice');
  return p ? getComputedStyle(p).fill : null;
}"""


@needs_chromium
def test_report_in_headless_chromium(cli, api, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _seed(api, tmp_path, monkeypatch)
    out = tmp_path / "report.html"
    r = cli("metrics", "report", "--out", str(out), "--range", "7d")
    clock.reset()
    assert r.exit_code == 0, r
    with watched_page(1400, 900) as w:
        w.page.goto(out.as_uri(), wait_until="load")
        boxes = w.page.evaluate(_BOXES)
        labels = w.page.evaluate(_X_LABELS)
        fill = w.page.evaluate(_GAUGE_FILL)
        states = w.page.eval_on_selector_all(
            "#freshness tr[data-type]",
            "rs => rs.map(r => [r.dataset.type, "
            "r.dataset.state, getComputedStyle(r.querySelector('.state'))"
            ".backgroundColor])",
        )
        shot = w.screenshot("metrics-report.png")
    # nothing but the page itself, and a page without complaints
    assert w.console_errors() == [] and w.console == [], w.console + w.errors
    assert set(w.requests) == {out.as_uri()}, w.requests
    assert w.failed == []
    # the freshness answer comes first, in reading order and on screen
    sections = [b for b in boxes if b["tag"] == "SECTION"]
    assert sections[0]["id"] == "freshness", sections
    assert all(sections[0]["y"] <= b["y"] for b in boxes)
    assert sections[1]["id"] == "alerts"
    # two or more columns at 1400 px: boxes side by side on one row, not overlapping
    figs = [b for b in boxes if b["tag"] == "FIGURE"]
    assert len(figs) >= 8
    rows: dict[int, list[dict[str, Any]]] = {}
    for b in figs:
        rows.setdefault(round(b["y"]), []).append(b)
    widest = max(rows.values(), key=len)
    assert len(widest) >= 2, figs
    left, right = sorted(widest, key=lambda b: b["x"])[:2]
    assert left["x"] + left["w"] <= right["x"]
    fresh, alerts = sections[0], sections[1]
    assert round(fresh["y"]) == round(alerts["y"]) and fresh["x"] + fresh["w"] <= alerts["x"]
    # coloured per state: fresh, late, never
    by_type = {t: (s, bg) for t, s, bg in states}
    assert {t: s for t, (s, _) in by_type.items()} == {"critical": "ok", "incremental": "late", "complete": "never"}
    assert len({bg for _, bg in by_type.values()}) == 3
    # the storage gauge is red over its threshold (90% used, alert above 80%)
    assert fill == "rgb(197, 48, 48)", fill
    # time labels: each distinct; count and ratio axes start at zero
    for chart in labels:
        assert len(chart["labels"]) == len(set(chart["labels"])), chart
        if chart["chart"] in ("requests", "response_time", "cache", "activity", "growth", "backup_runs"):
            assert chart["labels"], chart
            assert "0" in chart["y"], chart
    assert shot.stat().st_size > 50_000  # charts, not a blank page
