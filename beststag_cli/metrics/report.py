"""`metrics report`: one self-contained HTML page an operator keeps open.

The page answers, in this order: is every backup type fresh (last good backup per type, its age
against ``alerts.backup_failure.max_age_h``, ok/late/never)? which alerts fire? then the headline
figures and the trends. Charts are drawn by pygal (a Python charting library that renders SVG) and
inlined into the page, with pygal's JavaScript tooltips turned off: the page loads nothing from
anywhere, so it opens the same offline, from a mail attachment or in a locked-down browser.

Chart rules (what an operator reads off them): counts and ratios on an axis that starts at zero;
time axes labelled by day or by hour depending on the span, every label distinct, all in UTC;
bar categories named on the axis; the storage gauge red once usage is over its alert threshold.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..config import BACKUP_TYPES, AlertsSettings
from ..fsutil import atomic_write
from ..journal import Journal

FreshState = Literal["ok", "late", "never"]

#: tick spacings tried for a time axis, smallest first (seconds)
_TICK_STEPS: tuple[int, ...] = (
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    28 * 86400,
)
_DAY = 86400
#: at most this many labelled ticks on a time axis (more overlap at the chart's width)
MAX_TICKS = 12
_OK, _RED, _BLUE = "#2f855a", "#c53030", "#2b6cb0"


@dataclass(frozen=True)
class Freshness:
    """How fresh one backup type is: its last good backup against the alert's maximum age."""

    type: str
    state: FreshState
    max_age_hours: float
    last_success_id: str | None = None
    last_success_timestamp: float | None = None
    age_seconds: float | None = None
    last_status: str | None = None


def freshness(result: Mapping[str, Any], max_age_h: Mapping[str, float]) -> list[Freshness]:
    """One row per backup type from a collect result's backup section (``never`` without one)."""
    by_type: Mapping[str, Any] = (result.get("metrics", {}).get("backup") or {}).get("by_type", {})
    out: list[Freshness] = []
    for t in sorted(set(BACKUP_TYPES) | set(by_type), key=lambda x: (x not in BACKUP_TYPES, x)):
        v = by_type.get(t, {})
        limit = float(max_age_h.get(t, 0.0))
        age = v.get("last_success_age_seconds")
        state: FreshState = "never" if age is None else "late" if limit and age > limit * 3600 else "ok"
        out.append(
            Freshness(
                t, state, limit, v.get("last_success_id"), v.get("last_success_timestamp"), age, v.get("last_status")
            )
        )
    return out


def thresholds_from_alerts(alerts: list[dict[str, Any]] | None) -> tuple[dict[str, float], float]:
    """(max age in hours per backup type, storage usage maximum) the alerts were evaluated with.

    Read back from the alerts so the page and `metrics alerts` can never disagree; the config's
    defaults when the alerts were not evaluated.
    """
    defaults = AlertsSettings()
    ages = {t: float(getattr(defaults.backup_failure.max_age_h, t)) for t in BACKUP_TYPES}
    storage_max = float(defaults.storage_usage_max)
    for a in alerts or []:
        if a["name"] == "backup_failure":
            for t, d in a.get("detail", {}).get("types", {}).items():
                if d.get("max_age_hours") is not None:
                    ages[t] = float(d["max_age_hours"])
        elif a["name"] == "storage_usage":
            storage_max = float(a["threshold"])
    return ages, storage_max


# --------------------------------------------------------------------------------------------
# time axes


def time_ticks(start: float, end: float, max_ticks: int = MAX_TICKS) -> list[tuple[float, str]]:
    """Labelled ticks (UTC) for a time axis over [start, end]: at most ``max_ticks``, each label distinct.

    The spacing is the smallest round step (5 min … 4 weeks) that gives no more than ``max_ticks``
    ticks, aligned on UTC boundaries. Day steps are labelled ``Dec 01``; hour steps ``14:00``, with
    the day (``Dec 02``) at midnight, and the day in front of the hour when the ticks span a day or
    more (else ``14:00`` would repeat on the next day).
    """
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        return []
    span = end - start
    step = next((s for s in _TICK_STEPS if span / s < max_ticks), None)
    if step is None:  # longer than the table: whole multiples of four weeks
        step = _TICK_STEPS[-1] * math.ceil(span / (_TICK_STEPS[-1] * (max_ticks - 1)))
    first = math.ceil(start / step) * step
    ticks = [float(t) for t in range(int(first), int(end) + 1, step)] or [float(start)]
    long_span = ticks[-1] - ticks[0] >= _DAY
    many_years = datetime.fromtimestamp(ticks[0], UTC).year != datetime.fromtimestamp(ticks[-1], UTC).year

    def label(t: float) -> str:
        d = datetime.fromtimestamp(t, UTC)
        day = d.strftime("%Y-%m-%d" if many_years else "%b %d")
        if step >= _DAY or (d.hour == 0 and d.minute == 0):
            return day
        return f"{day} {d:%H:%M}" if long_span else f"{d:%H:%M}"

    return [(t, label(t)) for t in ticks]


def point_labels(stamps: list[float]) -> tuple[list[str], list[str]]:
    """(a label per point, the labels shown) for a categorical chart of time buckets.

    The shown ones are :func:`time_ticks` over the points, each on the point nearest its tick; the
    others get a full timestamp that never collides with a shown label and is not drawn.
    """
    if not stamps:
        return [], []
    labels = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in stamps]
    shown: list[str] = []
    used: set[int] = set()
    for tick, text in time_ticks(stamps[0], stamps[-1]):
        i = min(range(len(stamps)), key=lambda k: abs(stamps[k] - tick))
        if i not in used:
            used.add(i)
            labels[i] = text
            shown.append(text)
    return labels, shown


# --------------------------------------------------------------------------------------------
# charts


def _style(colors: tuple[str, ...] | None = None) -> Any:
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#333",
        foreground_strong="#111",
        foreground_subtle="#999",
        opacity=".85",
        opacity_hover=".95",
        transition="0s",
        colors=colors or (_BLUE, _RED, _OK, "#b7791f", "#6b46c1", "#2c7a7b", "#975a16"),
        font_family="DejaVu Sans, Arial, sans-serif",
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        title_font_size=15,
    )


def _config(**kw: Any) -> dict[str, Any]:
    base = {
        "style": _style(),
        "js": [],
        "disable_xml_declaration": True,
        "width": 660,
        "height": 320,
        "x_label_rotation": 30,
        "legend_at_bottom": True,
        "dots_size": 2,
        "print_values": False,
        "explicit_size": True,
        "no_data_text": "no data in this range",
    }
    base.update(kw)
    return base


def _time_config(shown: list[str], **kw: Any) -> dict[str, Any]:
    # only the tick labels are drawn; the per-point ones stay off the axis
    return _config(x_labels_major=shown, show_minor_x_labels=False, x_title="time (UTC)", **kw)


def count_labels(top: float, most: int = 10) -> list[int]:
    """Whole-number y labels from 0 to at least ``top``: a count axis never reads "0.2 runs"."""
    top = max(1, math.ceil(top))
    step = next(s * 10**k for k in range(12) for s in (1, 2, 5) if top / (s * 10**k) <= most)
    return list(range(0, math.ceil(top / step) * step + 1, step))


_PYGAL_CONFIG_SCRIPT = re.compile(r'<script type="text/javascript">window\.pygal.*?</script>', re.S)


def _svg(chart: Any) -> str:
    # pygal always inlines a script holding its config for the tooltips JS; with js=[] nothing
    # reads it, so drop it and keep the page free of scripts
    return _PYGAL_CONFIG_SCRIPT.sub("", str(chart.render(is_unicode=True)))


@dataclass(frozen=True)
class Chart:
    """One chart of the page: ``zero_based`` when its values are counts or ratios."""

    key: str
    title: str
    svg: str
    zero_based: bool = True


def charts(
    result: dict[str, Any],
    history: dict[str, list[tuple[float, int]]],
    hit_ratio_min: float = 0.6,
    storage_usage_max: float = 0.8,
) -> list[Chart]:
    """Every chart for a `collect --type all` result and count history."""
    import pygal

    m = result["metrics"]
    out: list[Chart] = []
    perf = m.get("performance")
    if perf:
        step = perf["series"]["step_seconds"]
        series = perf["series"]["requests"]
        labels, shown = point_labels([p["t"] for p in series])
        per = {300: "5 minutes", 3600: "hour", 86400: "day"}.get(step, f"{step} s")
        c = pygal.Bar(
            **_time_config(
                shown,
                title=f"Airtable requests and errors per {per}",
                y_title="requests",
                y_labels=count_labels(max((p["requests"] for p in series), default=0)),
            )
        )
        c.x_labels = labels
        c.add("requests", [p["requests"] for p in series])
        c.add("errors", [p["errors"] for p in series])
        out.append(Chart("requests", "Requests", _svg(c)))

        # durations from zero too: a bar of 130 ms against 120 ms must not look ten times taller
        c = pygal.Line(
            **_time_config(
                shown, title="Average response time (ms)", allow_interruptions=True, include_x_axis=True, y_title="ms"
            )
        )
        c.x_labels = labels
        c.add("avg ms", [None if p["avg_response_ms"] is None else round(p["avg_response_ms"], 1) for p in series])
        out.append(Chart("response_time", "Response time", _svg(c)))

        cs = perf["series"]["cache"]
        cl, cshown = point_labels([p["t"] for p in cs])
        c = pygal.Line(
            **_time_config(
                cshown,
                title="Cache hit ratio (%)",
                allow_interruptions=True,
                range=(0, 100),
                include_x_axis=True,
                y_title="%",
            )
        )
        c.x_labels = cl
        c.add("hit ratio %", [None if p["hit_ratio"] is None else round(p["hit_ratio"] * 100, 1) for p in cs])
        c.add("alert threshold", [hit_ratio_min * 100] * len(cs), show_dots=False, stroke_style={"dasharray": "6,4"})
        out.append(Chart("cache", "Cache", _svg(c)))

    usage = m.get("usage")
    if usage and usage.get("activity"):
        first = next(iter(usage["activity"].values()))
        labels, shown = point_labels([p["t"] for p in first["series"]])
        top = max((p["created"] or 0 for a in usage["activity"].values() for p in a["series"]), default=0)
        c = pygal.Line(
            **_time_config(
                shown,
                title="Records created (activity)",
                allow_interruptions=True,
                include_x_axis=True,
                y_title="records",
                y_labels=count_labels(top),
            )
        )
        c.x_labels = labels
        for table, a in usage["activity"].items():
            c.add(table, [p["created"] for p in a["series"]])
        out.append(Chart("activity", "Activity", _svg(c)))

    if history:
        stamps = [ts for points in history.values() for ts, _ in points]
        ticks = time_ticks(min(stamps), max(stamps))
        names = dict(ticks)
        c = pygal.XY(
            **_config(
                title="Records per table over time",
                include_x_axis=True,
                x_title="time (UTC)",
                y_title="records",
                x_value_formatter=lambda x: names.get(x, _iso(x)),
            )
        )
        c.x_labels = [t for t, _ in ticks]
        for table, points in history.items():
            c.add(table, [(ts, n) for ts, n in points])
        out.append(Chart("growth", "Growth", _svg(c)))

    storage = m.get("storage")
    if storage:
        rows = sorted(storage["tables"].items(), key=lambda kv: -kv[1]["records"])
        c = pygal.HorizontalBar(
            **_config(
                title=f"Records per table (plan limit {storage['plan_record_limit']:,})",
                show_legend=False,
                print_values=True,
                x_label_rotation=0,
            )
        )
        c.x_labels = [table for table, _ in rows]  # the categories, named on the axis
        c.add("records", [v["records"] for _, v in rows])
        out.append(Chart("tables", "Tables", _svg(c)))

        pct = round(storage["usage_ratio"] * 100, 2)
        over = storage["usage_ratio"] > storage_usage_max  # the storage_usage alert's own rule
        c = pygal.SolidGauge(
            **_config(
                title=f"Storage use against the plan (%): alert above {storage_usage_max * 100:g}%",
                half_pie=True,
                inner_radius=0.7,
                height=260,
                style=_style((_RED if over else _BLUE,)),
            )
        )
        c.value_formatter = lambda x: f"{x:.1f}%"
        c.add("records / plan", [{"value": pct, "max_value": 100}])
        out.append(Chart("storage", "Storage", _svg(c).replace("<svg ", f'<svg data-over="{str(over).lower()}" ', 1)))

    backup = m.get("backup")
    if backup:
        types = list(backup["by_type"])
        top = max((v["successes"] + v["failures"] for v in backup["by_type"].values()), default=0)
        c = pygal.StackedBar(
            **_config(
                title=f"Backup runs in the last {result['range']}",
                y_title="runs",
                x_label_rotation=0,
                y_labels=count_labels(top),
            )
        )
        c.x_labels = types
        c.add("succeeded", [backup["by_type"][t]["successes"] for t in types])
        c.add("failed", [backup["by_type"][t]["failures"] for t in types])
        c.add("interrupted", [backup["by_type"][t].get("interrupted", 0) for t in types])
        out.append(Chart("backup_runs", "Backup runs", _svg(c)))

        c = pygal.Bar(
            **_config(title="Backup storage on disk (MB)", y_title="MB", show_legend=False, x_label_rotation=0)
        )
        c.x_labels = types
        c.add("MB", [round(backup["by_type"][t]["storage_bytes"] / 1e6, 3) for t in types])
        out.append(Chart("backup_storage", "Backup storage", _svg(c)))
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def count_history(journal: Journal, since: float) -> dict[str, list[tuple[float, int]]]:
    rows = journal.query("SELECT ts, table_name, records FROM count_snapshots WHERE ts >= ? ORDER BY ts", (since,))
    out: dict[str, list[tuple[float, int]]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append((r["ts"], r["records"]))
    return out


# --------------------------------------------------------------------------------------------
# the page


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}{unit}"
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


_STATE_TEXT = {"ok": "fresh", "late": "LATE", "never": "NEVER"}


def _freshness_html(rows: list[Freshness]) -> str:
    e = html.escape
    stale = [f for f in rows if f.state != "ok"]
    head = (
        f"every backup type is fresh ({len(rows)} of {len(rows)})"
        if not stale
        else f"{len(stale)} of {len(rows)} backup types not fresh: "
        + ", ".join(f"{f.type} ({_STATE_TEXT[f.state].lower()})" for f in stale)
    )
    body = []
    for f in rows:
        when = (
            "no successful backup yet"
            if f.last_success_timestamp is None
            else f"{e(f.last_success_id or '')} · {e(_iso(f.last_success_timestamp))}"
        )
        age = "—" if f.age_seconds is None else _age(f.age_seconds)
        last = (
            ""
            if f.last_status is None or f.last_status.lower() in ("ok", "success")
            else f' <span class="warn">last run: {e(f.last_status)}</span>'
        )
        body.append(
            f'<tr class="state-{f.state}" data-type="{e(f.type)}" data-state="{f.state}"><td>{e(f.type)}</td>'
            f'<td class="state">{_STATE_TEXT[f.state]}</td><td>{when}{last}</td><td>{age}</td>'
            f"<td>{_age(f.max_age_hours * 3600)}</td></tr>"
        )
    return (
        f'<section id="freshness" class="panel {"bad" if stale else "good"}"><h2>Backups: is every type '
        f'fresh?</h2><p class="answer">{e(head)}</p><table><tr><th>type</th><th>state</th>'
        f"<th>last good backup</th><th>age</th><th>max age</th></tr>{''.join(body)}</table></section>"
    )


def _alerts_html(alerts: list[dict[str, Any]] | None) -> str:
    e = html.escape
    if alerts is None:
        return '<section id="alerts" class="panel"><h2>Alerts</h2><p>not evaluated</p></section>'
    firing = [a for a in alerts if a["firing"]]
    rows = "".join(
        f'<tr class="{"firing" if a["firing"] else "ok"}" data-alert="{e(a["name"])}"><td>{e(a["name"])}</td>'
        f'<td class="state">{"FIRING" if a["firing"] else "ok"}</td><td>{e(a["message"])}</td></tr>'
        for a in sorted(alerts, key=lambda a: not a["firing"])
    )
    head = f"{len(firing)} firing: {', '.join(a['name'] for a in firing)}" if firing else "none firing"
    return (
        f'<section id="alerts" class="panel"><h2>Alerts</h2><p class="answer">{e(head)}</p>'
        f"<table><tr><th>alert</th><th>state</th><th>detail</th></tr>{rows}</table></section>"
    )


def _cards(m: dict[str, Any]) -> list[tuple[str, str]]:
    cards: list[tuple[str, str]] = []
    if "usage" in m:
        u = m["usage"]
        cards += [
            ("Records", _fmt(u["records_total"])),
            ("Growth", "—" if u["growth_pct"] is None else f"{u['growth_pct']:+.1f}%"),
            ("Active users", _fmt(u["users"].get("active_users"))),
        ]
    if "performance" in m:
        p = m["performance"]
        avg = p["response_time_seconds"]["avg"]
        p95 = p["response_time_seconds"]["p95"]
        cards += [
            ("Requests", _fmt(p["requests_total"])),
            (
                "Avg / p95 response",
                ("—" if avg is None else f"{avg * 1000:.0f} ms")
                + " / "
                + ("—" if p95 is None else f"{p95 * 1000:.0f} ms"),
            ),
            ("Error rate", _pct(p["error_ratio"])),
            ("Cache hit ratio", _pct(p["cache"]["hit_ratio"])),
            ("API budget used", _pct(p["api_usage"]["avg_budget_ratio"])),
        ]
    if "storage" in m:
        cards.append(("Storage vs plan", _pct(m["storage"]["usage_ratio"])))
    if "backup" in m:
        b = m["backup"]
        cards += [
            ("Backup success", _pct(b["success_ratio"])),
            (
                "Recovery estimate",
                "—"
                if b["recovery"]["estimate_seconds"] is None
                else f"{b['recovery']['estimate_seconds'] / 60:.1f} min",
            ),
        ]
    return cards


_CSS = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; background: #f7f7f9; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 0 0 8px; }
.sub { color: #666; margin-bottom: 18px; }
/* two or more columns on a desktop screen, one on a phone */
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); gap: 16px; }
.wide { grid-column: 1 / -1; }
.panel { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 12px 14px; }
.answer { font-weight: bold; margin: 0 0 8px; }
#freshness.good { border-left: 6px solid #2f855a; } #freshness.bad { border-left: 6px solid #c53030; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 13px; vertical-align: top; }
tr.state-ok td.state { background: #e6f4ea; color: #1e6b34; font-weight: bold; }
tr.state-late td.state { background: #fdebd3; color: #8a4b08; font-weight: bold; }
tr.state-never td.state { background: #fde8e8; color: #9b1c1c; font-weight: bold; }
.warn { color: #9b1c1c; }
tr.firing td { background: #fde8e8; } tr.firing td.state { color: #9b1c1c; font-weight: bold; }
tr.ok td.state { color: #2f855a; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 130px; }
.card .k { font-size: 12px; color: #666; } .card .v { font-size: 20px; font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 14px; }
figure { background: white; border: 1px solid #ddd; border-radius: 6px; margin: 0; padding: 6px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #888; }
"""


def render_html(
    result: dict[str, Any],
    history: dict[str, list[tuple[float, int]]],
    alerts: list[dict[str, Any]] | None = None,
    hit_ratio_min: float = 0.6,
) -> str:
    """The report page for a `collect --type all` result (thresholds read back from ``alerts``)."""
    m = result["metrics"]
    e = html.escape
    max_age_h, storage_max = thresholds_from_alerts(alerts)
    card_html = "".join(
        f'<div class="card"><div class="k">{e(k)}</div><div class="v">{e(v)}</div></div>' for k, v in _cards(m)
    )
    chart_html = "".join(
        f'<figure data-chart="{c.key}" data-zero-based="{str(c.zero_based).lower()}">'
        f"<figcaption>{e(c.title)}</figcaption>{c.svg}</figure>"
        for c in charts(result, history, hit_ratio_min, storage_max)
    )
    window = f"{e(result['window']['start'])} → {e(result['window']['end'])}"
    notes = "".join(f"<li>{e(n)}</li>" for n in result.get("notes", []))
    notes_html = f'<section id="notes" class="panel wide"><h2>Notes</h2><ul>{notes}</ul></section>' if notes else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>beststag metrics — last {e(result["range"])}</title>
<style>{_CSS}</style></head><body>
<h1>beststag metrics — last {e(result["range"])}</h1>
<div class="sub">generated {e(result["generated_at"])} · window {window} · times in UTC</div>
<main class="grid">
{_freshness_html(freshness(result, max_age_h))}
{_alerts_html(alerts)}
<section id="figures" class="panel wide"><h2>Figures</h2><div class="cards">{card_html}</div></section>
<section id="trends" class="wide"><h2>Trends</h2><div class="charts">{chart_html}</div></section>
{notes_html}
</main>
</body></html>
"""


def write_report(
    path: Path,
    result: dict[str, Any],
    history: dict[str, list[tuple[float, int]]],
    alerts: list[dict[str, Any]] | None = None,
    hit_ratio_min: float = 0.6,
) -> Path:
    """Write the page atomically (0600, like every file the tool creates)."""
    atomic_write(path, render_html(result, history, alerts, hit_ratio_min))
    return path
