"""Outputs of `metrics collect`: JSON text and the Prometheus textfile.

The textfile (``var/metrics/beststag.prom``, for node_exporter's textfile collector) holds the
latest figures of *every* section collected so far (kept in the journal's kv by
:func:`beststag_cli.metrics.collect.remember`), so the hourly performance run does not wipe the
daily usage figures. It is written to a temp file and renamed. Names follow Prometheus's
conventions: base units (``_seconds``, ``_bytes``), ``_ratio`` for 0..1, ``_total`` only on
counters (lifetime totals from the hourly rollups); window figures are gauges labelled ``range``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write
from ..journal import Journal
from . import rollup
from .collect import remembered


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, default=str)


@dataclass
class _Family:
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class PromWriter:
    """Collects samples per metric family and renders the text exposition format."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: Any, **labels: str) -> None:
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        fam = self.families.setdefault(name, _Family(kind, help_text))
        fam.samples.append(({k: str(v) for k, v in labels.items()}, float(value)))

    def render(self) -> str:
        lines: list[str] = []
        for name, fam in self.families.items():
            sample_name = name + "_total" if fam.kind == "counter" else name
            lines.append(f"# HELP {sample_name} {_escape(fam.help)}")
            lines.append(f"# TYPE {sample_name} {fam.kind}")
            for labels, value in fam.samples:
                lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{sample_name}{{{lab}}} {_num(value)}" if lab else f"{sample_name} {_num(value)}")
        return "\n".join(lines) + "\n"


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def prometheus_text(sections: dict[str, dict[str, Any]], lifetime: dict[str, int]) -> str:
    """The textfile for the remembered sections (section -> {range, generated_at, data})."""
    w = PromWriter()
    g = "gauge"
    w.add("beststag_requests", "counter", "Airtable requests recorded in the journal (every attempt).",
          lifetime.get("requests", 0))
    w.add("beststag_request_errors", "counter", "Requests with no answer or a 4xx/5xx answer other than 429.",
          lifetime.get("errors", 0))
    w.add("beststag_requests_rate_limited", "counter", "Requests answered 429.", lifetime.get("rate_limited", 0))
    w.add("beststag_request_retries", "counter", "Request attempts that were retries.", lifetime.get("retried", 0))
    w.add("beststag_response_bytes", "counter", "Bytes received from Airtable.", lifetime.get("bytes", 0))
    for event in ("hit", "miss", "stale", "set", "invalidate", "evict", "write_applied"):
        w.add("beststag_cache_events", "counter", "Cache events recorded in the journal.",
              lifetime.get(f"cache_{event}", 0), event=event)
    for section, entry in sections.items():
        w.add("beststag_metrics_generated_timestamp_seconds", g, "When each section was last collected.",
              _ts(entry["generated_at"]), section=section)

    if "usage" in sections:
        r, u = sections["usage"]["range"], sections["usage"]["data"]
        for table, v in u["tables"].items():
            w.add("beststag_table_records", g, "Records per table at the last usage collection.", v["records"],
                  table=table, method=v["count_method"])
            if v.get("growth_pct") is not None:
                w.add("beststag_table_growth_ratio", g, "Record growth over the range (0.1 = +10%).",
                      v["growth_pct"] / 100, table=table, range=r)
        if u.get("growth_pct") is not None:
            w.add("beststag_records_growth_ratio", g, "Growth of all records over the range.", u["growth_pct"] / 100,
                  range=r)
        for table, a in u["activity"].items():
            w.add("beststag_records_created_per_hour", g, "Records created per hour in the range.", a["per_hour"],
                  table=table, range=r)
        w.add("beststag_active_users", g, "Distinct users with an interaction in the range.",
              u["users"].get("active_users"), range=r)

    if "performance" in sections:
        r, p = sections["performance"]["range"], sections["performance"]["data"]
        w.add("beststag_window_requests", g, "Requests in the range.", p["requests_total"], range=r)
        w.add("beststag_throughput_requests_per_hour", g, "Requests per hour over the range.",
              p["throughput_per_hour"], range=r)
        rt = p["response_time_seconds"]
        w.add("beststag_response_time_avg_seconds", g, "Average response time over the range.", rt["avg"], range=r)
        for q in ("p50", "p95", "p99"):
            w.add("beststag_response_time_seconds", g, "Response time quantiles over the range.", rt[q],
                  quantile=f"0.{q[1:]}", range=r)
        w.add("beststag_error_ratio", g, "Errors / requests over the range.", p["error_ratio"], range=r)
        w.add("beststag_window_rate_limited_requests", g, "429 answers in the range.", p["rate_limited_total"],
              range=r)
        w.add("beststag_window_retries", g, "Retry attempts in the range.", p["retries_total"], range=r)
        w.add("beststag_api_budget_ratio", g, "Average request rate / the 5 req/s budget over the range.",
              p["api_usage"]["avg_budget_ratio"], range=r)
        w.add("beststag_api_budget_peak_hour_ratio", g, "Busiest hour's request rate / the budget.",
              p["api_usage"]["peak_hour_budget_ratio"], range=r)
        c = p["cache"]
        w.add("beststag_cache_hit_ratio", g, "Cache hits / lookups over the range.", c["hit_ratio"], range=r)
        w.add("beststag_cache_miss_ratio", g, "Cache misses / lookups over the range.", c["miss_ratio"], range=r)
        w.add("beststag_cache_ttl_effectiveness_ratio", g, "Hits / lookups that found an entry (fresh or stale).",
              c["ttl_effectiveness_ratio"], range=r)
        w.add("beststag_cache_size_bytes", g, "Bytes of the cache folder on disk.", c["size_bytes"])

    if "storage" in sections:
        s = sections["storage"]["data"]
        w.add("beststag_records", g, "Records in the base at the last storage collection.", s["records_total"])
        w.add("beststag_plan_record_limit", g, "Records the plan allows per base (config).", s["plan_record_limit"])
        w.add("beststag_storage_usage_ratio", g, "Records / plan record limit.", s["usage_ratio"])
        w.add("beststag_attachments", g, "Attachments in the counted tables.", s["attachments_total"])
        w.add("beststag_attachment_bytes", g, "Bytes of attachments in the counted tables.", s["attachment_bytes"])
        w.add("beststag_api_bytes_per_record", g, "JSON bytes per record in list answers.", s["api_bytes_per_record"])
        for t, b in s["backup_bytes_by_type"].items():
            w.add("beststag_backup_storage_bytes", g, "Bytes of backups on disk per type.", b, type=t)
        w.add("beststag_backup_compression_ratio", g, "JSON bytes / backup bytes of the newest good backup.",
              s["backup_compression"].get("ratio"))
        w.add("beststag_journal_bytes", g, "Bytes of the journal database (with WAL).", s["journal_bytes"])

    if "backup" in sections:
        r, b = sections["backup"]["range"], sections["backup"]["data"]
        w.add("beststag_backup_success_ratio", g, "Successful / finished backup runs in the range.",
              b["success_ratio"], range=r)
        for t, v in b["by_type"].items():
            w.add("beststag_backup_last_success_timestamp_seconds", g, "When the last good backup of a type ended.",
                  v["last_success_timestamp"], type=t)
            w.add("beststag_backup_last_success_bytes", g, "Size of the last good backup of a type.",
                  v["last_success_bytes"], type=t)
            w.add("beststag_backup_consecutive_failures", g, "Failed runs in a row per type.",
                  v["consecutive_failures"], type=t)
        w.add("beststag_recovery_time_estimate_seconds", g, "Estimated time to restore the newest full backup.",
              b["recovery"]["estimate_seconds"])
    return w.render()


def write_prometheus(journal: Journal, path: Path) -> str:
    """Write the textfile from every remembered section (atomically); return its text."""
    text = prometheus_text(remembered(journal), rollup.lifetime_request_totals(journal))
    atomic_write(path, text)
    return text


# --------------------------------------------------------------------------------------------
# terminal text: rows for rich tables, with trend arrows and sparklines

_BARS = "▁▂▃▄▅▆▇█"


def _shrink(values: list[float | None], width: int) -> list[float | None]:
    """At most ``width`` points: consecutive values averaged (None where a group has none)."""
    if len(values) <= width:
        return values
    out: list[float | None] = []
    for i in range(width):
        group = [v for v in values[i * len(values) // width:(i + 1) * len(values) // width] if v is not None]
        out.append(sum(group) / len(group) if group else None)
    return out


def sparkline(values: list[float | None], width: int = 24) -> str:
    """Unicode bars for a series, at most ``width`` wide (blank where there is no value).

    >>> sparkline([0, 1, 2, 3])
    '▁▃▆█'
    """
    values = _shrink(values, width)
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(_BARS[0] if span == 0 else _BARS[min(7, int((v - lo) / span * 7 + 0.5))])
    return "".join(out)


def arrow(delta_pct: float | None) -> str:
    if delta_pct is None:
        return ""
    if abs(delta_pct) < 1:
        return f"→ {delta_pct:+.0f}%"
    return f"{'↑' if delta_pct > 0 else '↓'} {delta_pct:+.0f}%"


def _v(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") + unit
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _sec(value: float | None) -> str:
    return "—" if value is None else (f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s")


def summary_rows(result: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Per section, rows of (figure, value, trend) for a terminal table."""
    m = result["metrics"]
    out: dict[str, list[list[str]]] = {}
    if "usage" in m:
        u = m["usage"]
        rows = [["records (all tables)", _v(u["records_total"]), arrow(u["growth_pct"])]]
        for t, v in u["tables"].items():
            rows.append([f"  {t}", _v(v["records"]) + (" (estimated)" if v["count_method"] != "counted" else ""),
                         arrow(v["growth_pct"])])
        for t, a in u["activity"].items():
            rows.append([f"created/hour: {t}", _v(a["per_hour"]) + (" (sampled)" if a.get("sampled") else ""),
                         f"{arrow(a['trend_delta_pct'])} {sparkline([p['created'] for p in a.get('series', [])])}"])
        us = u["users"]
        rows.append(["active users", _v(us.get("active_users")), arrow(us.get("active_users_trend_delta_pct"))])
        out["usage"] = rows
    if "performance" in m:
        p = m["performance"]
        series = p.get("series", {})
        reqs = [s["requests"] for s in series.get("requests", [])]
        lat = [s["avg_response_ms"] for s in series.get("requests", [])]
        rt = p["response_time_seconds"]
        c = p["cache"]
        out["performance"] = [
            ["requests", _v(p["requests_total"]), f"{arrow(p['trend']['requests_total_delta_pct'])} {sparkline(reqs)}"],
            ["throughput / hour", _v(p["throughput_per_hour"]), ""],
            ["response avg", _sec(rt["avg"]),
             f"{arrow(p['trend']['response_time_avg_delta_pct'])} {sparkline(lat)}"],
            ["response p50 / p95 / p99", f"{_sec(rt['p50'])} / {_sec(rt['p95'])} / {_sec(rt['p99'])}",
             "" if rt["percentile_method"] == "exact" else "from hourly histograms"],
            ["error rate", _pct(p["error_ratio"]), f"{p['errors_total']} errors"],
            ["429 answers / retries", f"{p['rate_limited_total']} / {p['retries_total']}", ""],
            ["API budget used (avg / peak hour)",
             f"{_pct(p['api_usage']['avg_budget_ratio'])} / {_pct(p['api_usage']['peak_hour_budget_ratio'])}",
             f"of {p['api_usage']['budget_requests_per_second']:g} req/s"],
            ["cache hit / miss ratio", f"{_pct(c['hit_ratio'])} / {_pct(c['miss_ratio'])}",
             f"{c['lookups_total']} lookups {sparkline([s['hit_ratio'] for s in series.get('cache', [])])}"],
            ["cache TTL effectiveness", _pct(c["ttl_effectiveness_ratio"]),
             f"avg hit age {_v(c['hit_age_avg_seconds'])} s"],
            ["cache size", _v(c["size_bytes"], " B"), ""],
        ]
    if "storage" in m:
        s = m["storage"]
        rows = [["records / plan limit", f"{_v(s['records_total'])} / {_v(s['plan_record_limit'])}",
                 _pct(s["usage_ratio"])],
                ["attachments", f"{_v(s['attachments_total'])} ({_v(s['attachment_bytes'], ' B')})", ""],
                ["JSON bytes per record", _v(s["api_bytes_per_record"]), ""],
                ["backup compression ratio", _v(s["backup_compression"].get("ratio")), ""]]
        rows += [[f"backups: {t}", _v(b, " B"), ""] for t, b in s["backup_bytes_by_type"].items()]
        rows += [["cache on disk", _v(s["cache_bytes"], " B"), ""], ["journal", _v(s["journal_bytes"], " B"), ""]]
        out["storage"] = rows
    if "backup" in m:
        b = m["backup"]
        rows = [["backup success rate", _pct(b["success_ratio"]), f"{b['successes_total']}/{b['runs_total']} runs"]]
        for t, v in b["by_type"].items():
            last = v["last_success_age_seconds"]
            rows.append([f"  {t}: last success", "never" if last is None else f"{last / 3600:.1f} h ago",
                         f"{_v(v['last_success_bytes'], ' B')}; {v['consecutive_failures']} failure(s) in a row"])
        r = b["recovery"]
        rows.append(["recovery time estimate", _sec(r["estimate_seconds"]) if r["estimate_seconds"] else "—",
                     r["method"]])
        out["backup"] = rows
    return out
