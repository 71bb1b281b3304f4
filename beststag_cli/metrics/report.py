"""`metrics report`: one self-contained HTML page with charts of the trends.

Charts are drawn by pygal (a Python charting library that renders SVG) and inlined into the
page, with pygal's JavaScript tooltips turned off: the page loads nothing from anywhere, so it
opens the same offline, from a mail attachment or in a locked-down browser.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write
from ..journal import Journal


def _style() -> Any:
    from pygal.style import Style

    return Style(background="white", plot_background="white", foreground="#333", foreground_strong="#111",
                 foreground_subtle="#999", opacity=".85", opacity_hover=".95", transition="0s",
                 colors=("#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#2c7a7b", "#975a16"),
                 font_family="DejaVu Sans, Arial, sans-serif", label_font_size=11, major_label_font_size=11,
                 legend_font_size=12, title_font_size=15)


def _config(**kw: Any) -> dict[str, Any]:
    base = {"style": _style(), "js": [], "disable_xml_declaration": True, "width": 660, "height": 320,
            "x_label_rotation": 30, "legend_at_bottom": True, "dots_size": 2,
            "print_values": False, "explicit_size": True, "no_data_text": "no data in this range"}
    base.update(kw)
    # with many x labels only every n-th (x_labels_major) is written
    base.setdefault("show_minor_x_labels", "x_labels_major" not in kw)
    return base


def _label(ts: float, step: int) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    if step >= 86400:
        return d.strftime("%m-%d")
    if step >= 3600:
        return d.strftime("%m-%d %Hh")
    return d.strftime("%H:%M")


_PYGAL_CONFIG_SCRIPT = re.compile(r'<script type="text/javascript">window\.pygal.*?</script>', re.S)


def _svg(chart: Any) -> str:
    # pygal always inlines a script holding its config for the tooltips JS; with js=[] nothing
    # reads it, so drop it and keep the page free of scripts
    return _PYGAL_CONFIG_SCRIPT.sub("", str(chart.render(is_unicode=True)))


def charts(result: dict[str, Any], history: dict[str, list[tuple[float, int]]],
           hit_ratio_min: float = 0.6) -> list[tuple[str, str]]:
    """(title, inline SVG) of each chart for a `collect --type all` result and count history."""
    import pygal

    m = result["metrics"]
    out: list[tuple[str, str]] = []
    perf = m.get("performance")
    if perf:
        step = perf["series"]["step_seconds"]
        series = perf["series"]["requests"]
        labels = [_label(p["t"], step) for p in series]
        major = labels[:: max(1, len(labels) // 12)]
        c = pygal.Bar(**_config(title="Airtable requests and errors per "
                                      + {300: "5 minutes", 3600: "hour", 86400: "day"}[step],
                                x_labels_major=major))
        c.x_labels = labels
        c.add("requests", [p["requests"] for p in series])
        c.add("errors", [p["errors"] for p in series])
        out.append(("Requests", _svg(c)))

        c = pygal.Line(**_config(title="Average response time (ms)", x_labels_major=major, allow_interruptions=True))
        c.x_labels = labels
        c.add("avg ms", [None if p["avg_response_ms"] is None else round(p["avg_response_ms"], 1) for p in series])
        out.append(("Response time", _svg(c)))

        cs = perf["series"]["cache"]
        c = pygal.Line(**_config(title="Cache hit ratio (%)", x_labels_major=major, allow_interruptions=True,
                                 range=(0, 100)))
        c.x_labels = [_label(p["t"], step) for p in cs]
        c.add("hit ratio %", [None if p["hit_ratio"] is None else round(p["hit_ratio"] * 100, 1) for p in cs])
        c.add("alert threshold", [hit_ratio_min * 100] * len(cs), show_dots=False, stroke_style={"dasharray": "6,4"})
        out.append(("Cache", _svg(c)))

    usage = m.get("usage")
    if usage and usage.get("activity"):
        c = pygal.Line(**_config(title="Records created (activity)", allow_interruptions=True))
        first = next(iter(usage["activity"].values()))
        step = perf["series"]["step_seconds"] if perf else 3600
        labels = [_label(p["t"], step) for p in first["series"]]
        c.config.show_minor_x_labels = False
        c.x_labels = labels
        c.x_labels_major = labels[:: max(1, len(labels) // 12)]
        for table, a in usage["activity"].items():
            c.add(table, [p["created"] for p in a["series"]])
        out.append(("Activity", _svg(c)))

    if history:
        c = pygal.DateTimeLine(**_config(title="Records per table over time", x_value_formatter=lambda d:
                                         d.strftime("%m-%d %Hh")))
        for table, points in history.items():
            c.add(table, [(datetime.fromtimestamp(ts, UTC), n) for ts, n in points])
        out.append(("Growth", _svg(c)))

    storage = m.get("storage")
    if storage:
        c = pygal.HorizontalBar(**_config(title=f"Records per table (plan limit {storage['plan_record_limit']:,})"))
        for table, v in sorted(storage["tables"].items(), key=lambda kv: -kv[1]["records"]):
            c.add(table, v["records"])
        out.append(("Tables", _svg(c)))

        c = pygal.SolidGauge(**_config(title="Storage use against the plan (%)", half_pie=True, inner_radius=0.7,
                                       height=260))
        c.value_formatter = lambda x: f"{x:.1f}%"
        c.add("records / plan", [{"value": round(storage["usage_ratio"] * 100, 2), "max_value": 100}])
        out.append(("Storage", _svg(c)))

    backup = m.get("backup")
    if backup:
        c = pygal.StackedBar(**_config(title=f"Backup runs in the last {result['range']}"))
        types = list(backup["by_type"])
        c.x_labels = types
        c.add("succeeded", [backup["by_type"][t]["successes"] for t in types])
        c.add("failed", [backup["by_type"][t]["failures"] for t in types])
        c.add("interrupted", [backup["by_type"][t].get("interrupted", 0) for t in types])
        out.append(("Backup runs", _svg(c)))

        c = pygal.Bar(**_config(title="Backup storage on disk (MB)"))
        c.x_labels = types
        c.add("MB", [round(backup["by_type"][t]["storage_bytes"] / 1e6, 3) for t in types])
        out.append(("Backup storage", _svg(c)))
    return out


def count_history(journal: Journal, since: float) -> dict[str, list[tuple[float, int]]]:
    rows = journal.query("SELECT ts, table_name, records FROM count_snapshots WHERE ts >= ? ORDER BY ts", (since,))
    out: dict[str, list[tuple[float, int]]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append((r["ts"], r["records"]))
    return out


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}{unit}"
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def render_html(result: dict[str, Any], history: dict[str, list[tuple[float, int]]],
                alerts: list[dict[str, Any]] | None = None, hit_ratio_min: float = 0.6) -> str:
    """The report page for a `collect --type all` result."""
    m = result["metrics"]
    e = html.escape
    cards: list[tuple[str, str]] = []
    if "usage" in m:
        u = m["usage"]
        cards += [("Records", _fmt(u["records_total"])),
                  ("Growth", "—" if u["growth_pct"] is None else f"{u['growth_pct']:+.1f}%"),
                  ("Active users", _fmt(u["users"].get("active_users")))]
    if "performance" in m:
        p = m["performance"]
        avg = p["response_time_seconds"]["avg"]
        p95 = p["response_time_seconds"]["p95"]
        cards += [("Requests", _fmt(p["requests_total"])),
                  ("Avg / p95 response", ("—" if avg is None else f"{avg * 1000:.0f} ms") + " / "
                   + ("—" if p95 is None else f"{p95 * 1000:.0f} ms")),
                  ("Error rate", _pct(p["error_ratio"])), ("Cache hit ratio", _pct(p["cache"]["hit_ratio"])),
                  ("API budget used", _pct(p["api_usage"]["avg_budget_ratio"]))]
    if "storage" in m:
        cards.append(("Storage vs plan", _pct(m["storage"]["usage_ratio"])))
    if "backup" in m:
        b = m["backup"]
        cards += [("Backup success", _pct(b["success_ratio"])),
                  ("Recovery estimate", "—" if b["recovery"]["estimate_seconds"] is None
                   else f"{b['recovery']['estimate_seconds'] / 60:.1f} min")]
    card_html = "".join(f'<div class="card"><div class="k">{e(k)}</div><div class="v">{e(v)}</div></div>'
                        for k, v in cards)
    alert_html = ""
    if alerts is not None:
        rows = "".join(
            f'<tr class="{"firing" if a["firing"] else "ok"}"><td>{e(a["name"])}</td>'
            f'<td>{"FIRING" if a["firing"] else "ok"}</td><td>{e(a["message"])}</td></tr>' for a in alerts)
        alert_html = ("<h2>Alerts</h2><table class='alerts'><tr><th>alert</th><th>state</th><th>detail</th></tr>"
                      f"{rows}</table>")
    chart_html = "".join(f"<figure><figcaption>{e(t)}</figcaption>{svg}</figure>"
                         for t, svg in charts(result, history, hit_ratio_min))
    window = f"{e(result['window']['start'])} → {e(result['window']['end'])}"
    notes = "".join(f"<li>{e(n)}</li>" for n in result.get("notes", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>beststag metrics — last {e(result['range'])}</title>
<style>
body {{ font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; background: #f7f7f9; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} .sub {{ color: #666; margin-bottom: 18px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 18px; }}
.card {{ background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 130px; }}
.card .k {{ font-size: 12px; color: #666; }} .card .v {{ font-size: 20px; font-weight: bold; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 14px; }}
figure {{ background: white; border: 1px solid #ddd; border-radius: 6px; margin: 0; padding: 6px; }}
figcaption {{ font-size: 12px; color: #888; }}
table.alerts {{ border-collapse: collapse; background: white; margin-bottom: 18px; }}
table.alerts td, table.alerts th {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; font-size: 13px; }}
tr.firing td {{ background: #fde8e8; }} tr.ok td:nth-child(2) {{ color: #2f855a; }}
</style></head><body>
<h1>beststag metrics — last {e(result['range'])}</h1>
<div class="sub">generated {e(result['generated_at'])} · window {window}</div>
<div class="cards">{card_html}</div>
{alert_html}
<h2>Trends</h2>
<div class="charts">{chart_html}</div>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def write_report(path: Path, result: dict[str, Any], history: dict[str, list[tuple[float, int]]],
                 alerts: list[dict[str, Any]] | None = None, hit_ratio_min: float = 0.6) -> Path:
    """Write the page atomically (0600, like every file the tool creates)."""
    atomic_write(path, render_html(result, history, alerts, hit_ratio_min))
    return path
