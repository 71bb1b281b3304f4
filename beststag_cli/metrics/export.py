"""Outputs of `metrics collect`: JSON text and the Prometheus textfile.

The textfile (``metrics.prometheus_path``, default ``<data_dir>/metrics/beststag.prom``) is for
node_exporter's textfile collector, which runs as another user: it is written 0644, to a temp file
in the same folder that is then renamed (:func:`beststag_cli.fsutil.write_public_file`). It holds
the latest figures of *every* section collected so far (kept in the journal's kv by
:func:`beststag_cli.metrics.collect.remember`), so the hourly performance run does not wipe the
daily usage figures, plus what is read from the journal each time it is written: lifetime counters,
the request-duration histogram, each backup type's last success and each scheduled job's last run.

Conventions (https://prometheus.io/docs/practices/naming/, node_exporter's textfile examples):
- base units in the names (``_seconds``, ``_bytes``), ``_ratio`` for 0..1, ``_total`` only on
  counters, ``_timestamp_seconds`` for Unix times;
- anything ``rate()`` can compute is a counter or a histogram, not a window gauge: requests, errors,
  429s, retries, bytes and cache events are lifetime counters (from the hourly rollups), durations
  the histogram ``beststag_request_duration_seconds`` (no ``quantile`` gauges);
- a label never changes meaning: whether a table's count was estimated is its own gauge, not a label
  value that would start a new series;
- every backup type and every scheduled job has its series from the first write (timestamps 0 =
  never), so ``time() - x > ...`` alerts fire before the first success too;
- values are integers where they are counts, else the repr of a value rounded to 6 decimals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..fsutil import write_public_file
from ..journal import Journal
from . import rollup
from .collect import remembered
from .jobstate import OUTCOMES, JobState
from .stats import BUCKETS_PER_DOUBLING

#: upper bounds of the exported histogram, in ms: every doubling from 2 ms to 65.536 s. Each is a bound
#: of the journal's finer buckets (8 per doubling), so the cumulative counts are exact, not interpolated.
HISTOGRAM_BOUNDS_MS: tuple[int, ...] = tuple(2**k for k in range(1, 17))
#: the sections `metrics collect` remembers; each has a generated timestamp (0 = never collected)
SECTIONS: tuple[str, ...] = ("usage", "performance", "storage", "backup")


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, default=str)


@dataclass
class _Family:
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    """A sample value without float noise: ``3``, ``0.25``, ``1733100000.5``, ``+Inf``."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    v = round(float(value), 6)
    return str(int(v)) if v.is_integer() else repr(v)


class PromWriter:
    """Collects samples per metric family and renders the text exposition format (version 0.0.4)."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: Any, **labels: str) -> None:
        """A gauge or counter sample (a counter's samples get ``_total``); None leaves no sample."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        sample = name + "_total" if kind == "counter" else name
        self._sample(name, kind, help_text, sample, float(value), labels)

    def histogram(
        self, name: str, help_text: str, buckets: Iterable[tuple[float, int]], count: int, total: float, **labels: str
    ) -> None:
        """A histogram from (upper bound, cumulative count) pairs; the ``+Inf`` bucket is ``count``."""
        for le, n in buckets:
            self._sample(name, "histogram", help_text, name + "_bucket", n, {**labels, "le": _num(le)})
        self._sample(name, "histogram", help_text, name + "_bucket", count, {**labels, "le": "+Inf"})
        self._sample(name, "histogram", help_text, name + "_sum", total, labels)
        self._sample(name, "histogram", help_text, name + "_count", count, labels)

    def _sample(
        self, name: str, kind: str, help_text: str, sample: str, value: float, labels: Mapping[str, Any]
    ) -> None:
        fam = self.families.setdefault(name, _Family(kind, help_text))
        fam.samples.append((sample, {k: str(v) for k, v in labels.items()}, float(value)))

    def render(self) -> str:
        lines: list[str] = []
        for name, fam in self.families.items():
            # the text format names a counter's family with its _total, as prometheus_client writes it
            head = name + "_total" if fam.kind == "counter" else name
            lines.append(f"# HELP {head} {_escape(fam.help)}")
            lines.append(f"# TYPE {head} {fam.kind}")
            for sample, labels, value in fam.samples:
                lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{sample}{{{lab}}} {_num(value)}" if lab else f"{sample} {_num(value)}")
        return "\n".join(lines) + "\n"


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class JournalFigures:
    """What the textfile reads from the journal each time it is written (not from a collection)."""

    lifetime: dict[str, int] = field(default_factory=dict)
    #: the journal's duration histogram over all time: fine bucket -> count
    durations: dict[int, int] = field(default_factory=dict)
    duration_sum_seconds: float = 0.0
    #: backup type -> metrics.backups.type_status(...)
    backups: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, JobState] = field(default_factory=dict)
    #: metrics.backups.drill_status(...) and the newest passing drill's row (None: none yet)
    drill: dict[str, Any] = field(default_factory=dict)
    last_passed_drill: dict[str, Any] | None = None


def journal_figures(journal: Journal, now: float, drill_max_age_h: float = 48.0) -> JournalFigures:
    from ..paths import BACKUP_TYPES, JOB_NAMES
    from .backups import drill_status, newest_passing_drill, type_status
    from .jobstate import states

    hist = {
        int(r["b"]): int(r["n"])
        for r in journal.query("SELECT bucket AS b, sum(n) AS n FROM requests_duration_hourly GROUP BY bucket")
    }
    total_ms = journal.query("SELECT coalesce(sum(duration_sum_ms), 0) AS s FROM requests_hourly")[0]["s"]
    return JournalFigures(
        lifetime=rollup.lifetime_request_totals(journal),
        durations=hist,
        duration_sum_seconds=float(total_ms) / 1000,
        backups={t: type_status(journal, t, now) for t in BACKUP_TYPES},
        jobs=states(journal, JOB_NAMES),
        drill=drill_status(journal, now, drill_max_age_h),
        last_passed_drill=newest_passing_drill(journal),
    )


def cumulative_buckets(hist: Mapping[int, int]) -> list[tuple[float, int]]:
    """(le in seconds, requests with a duration <= le) for :data:`HISTOGRAM_BOUNDS_MS`.

    Fine bucket ``b`` holds [2**(b/8), 2**((b+1)/8)) ms, so it lies under the bound 2**k ms exactly
    when ``b < 8k``. (A duration exactly on a bound counts in the next one, as the fine buckets do.)
    """
    out = []
    for ms in HISTOGRAM_BOUNDS_MS:
        limit = int(math.log2(ms)) * BUCKETS_PER_DOUBLING
        out.append((ms / 1000, sum(n for b, n in hist.items() if b < limit)))
    return out


def prometheus_text(sections: dict[str, dict[str, Any]], figures: JournalFigures) -> str:
    """The textfile for the remembered sections (section -> {range, generated_at, data}) and the journal."""
    w = PromWriter()
    g = "gauge"
    lifetime = figures.lifetime
    w.add(
        "beststag_requests",
        "counter",
        "Airtable requests recorded in the journal (every attempt).",
        lifetime.get("requests", 0),
    )
    w.add(
        "beststag_request_errors",
        "counter",
        "Requests with no answer or a 4xx/5xx answer other than 429.",
        lifetime.get("errors", 0),
    )
    w.add("beststag_requests_rate_limited", "counter", "Requests answered 429.", lifetime.get("rate_limited", 0))
    w.add("beststag_request_retries", "counter", "Request attempts that were retries.", lifetime.get("retried", 0))
    w.add("beststag_response_bytes", "counter", "Bytes received from Airtable.", lifetime.get("bytes", 0))
    w.histogram(
        "beststag_request_duration_seconds",
        "Durations of the Airtable requests recorded with one.",
        cumulative_buckets(figures.durations),
        sum(figures.durations.values()),
        figures.duration_sum_seconds,
    )
    for event in ("hit", "miss", "stale", "set", "invalidate", "evict", "write_applied"):
        w.add(
            "beststag_cache_events",
            "counter",
            "Cache events recorded in the journal.",
            lifetime.get(f"cache_{event}", 0),
            event=event,
        )
    for section in SECTIONS:
        entry = sections.get(section)
        w.add(
            "beststag_metrics_generated_timestamp_seconds",
            g,
            "When each section was last collected (0: never).",
            _ts(entry["generated_at"]) if entry else 0,
            section=section,
        )

    if "usage" in sections:
        r, u = sections["usage"]["range"], sections["usage"]["data"]
        for table, v in u["tables"].items():
            w.add(
                "beststag_table_records",
                g,
                "Records per table at the last usage collection.",
                v["records"],
                table=table,
            )
        for table, v in u["tables"].items():
            w.add(
                "beststag_table_records_estimated",
                g,
                "1 when the table's count was estimated from sampled pages, 0 when counted.",
                int(v["count_method"] != "counted"),
                table=table,
            )
        for table, a in u["activity"].items():
            # a count over the range, in base units (not per hour), from Airtable's created times
            w.add(
                "beststag_records_created",
                g,
                "Records created in the range (estimated when the table is sampled).",
                a["created"],
                table=table,
                range=r,
            )
        w.add(
            "beststag_active_users",
            g,
            "Distinct users with an interaction in the range.",
            u["users"].get("active_users"),
            range=r,
        )

    if "performance" in sections:
        p = sections["performance"]["data"]
        w.add(
            "beststag_api_budget_requests_per_second",
            g,
            "Airtable's request budget per base (compare with rate(beststag_requests_total[1h])).",
            p["api_usage"]["budget_requests_per_second"],
        )
        w.add("beststag_cache_size_bytes", g, "Bytes of the cache folder on disk.", p["cache"]["size_bytes"])

    if "storage" in sections:
        s = sections["storage"]["data"]
        w.add("beststag_records", g, "Records in the base at the last storage collection.", s["records_total"])
        w.add("beststag_plan_record_limit", g, "Records the plan allows per base (config).", s["plan_record_limit"])
        w.add("beststag_storage_usage_ratio", g, "Records / plan record limit.", s["usage_ratio"])
        w.add("beststag_attachments", g, "Attachments in the counted tables.", s["attachments_total"])
        w.add("beststag_attachment_bytes", g, "Bytes of attachments in the counted tables.", s["attachment_bytes"])
        w.add("beststag_api_record_size_bytes", g, "JSON bytes per record in list answers.", s["api_bytes_per_record"])
        for t, b in s["backup_bytes_by_type"].items():
            w.add("beststag_backup_storage_bytes", g, "Bytes of backups on disk per type.", b, type=t)
        w.add(
            "beststag_backup_compression_ratio",
            g,
            "JSON bytes / backup bytes of the newest good backup.",
            s["backup_compression"].get("ratio"),
        )
        w.add("beststag_journal_bytes", g, "Bytes of the journal database (with WAL).", s["journal_bytes"])

    for t, v in figures.backups.items():
        w.add(
            "beststag_backup_last_success_timestamp_seconds",
            g,
            "When the last good backup of a type ended (0: never).",
            v["last_success_timestamp"] or 0,
            type=t,
        )
    for t, v in figures.backups.items():
        w.add(
            "beststag_backup_last_success_bytes",
            g,
            "Size of the last good backup of a type.",
            v["last_success_bytes"],
            type=t,
        )
    for t, v in figures.backups.items():
        w.add(
            "beststag_backup_consecutive_failures",
            g,
            "Failed runs in a row per type.",
            v["consecutive_failures"],
            type=t,
        )
    last = figures.last_passed_drill
    w.add(
        "beststag_backup_drill_last_success_timestamp_seconds",
        g,
        "When the newest passing restore drill (backup drill) ended (0: never).",
        (last["finished"] or last["started"]) if last else 0,
    )
    w.add(
        "beststag_backup_drill_restore_requests",
        g,
        "Requests a real restore of the newest passing drill's backup needs (schema calls included).",
        ((last["requests"] or 0) + (last["schema_requests"] or 0)) if last else None,
    )
    if figures.drill:
        w.add(
            "beststag_backup_drill_failing",
            g,
            "1 when the newest complete backup has no passing drill within backup.drill_max_age_h, or its last failed.",
            1 if figures.drill.get("problem") else 0,
        )
    if "backup" in sections:
        r, b = sections["backup"]["range"], sections["backup"]["data"]
        w.add(
            "beststag_backup_success_ratio",
            g,
            "Successful / finished backup runs in the range.",
            b["success_ratio"],
            range=r,
        )
        w.add(
            "beststag_recovery_time_estimate_seconds",
            g,
            "Estimated time to restore the base: the newest passing drill, else measured restores, else the budget.",
            b["recovery"]["estimate_seconds"],
        )

    _job_families(w, figures.jobs)
    return w.render()


def _job_families(w: PromWriter, jobs: Mapping[str, JobState]) -> None:
    """node_exporter's textfile pattern for cron jobs, one series per scheduled job from the start."""
    g = "gauge"
    for job, s in jobs.items():
        w.add(
            "beststag_job_last_run_timestamp_seconds",
            g,
            "When the job's last run ended (0: never ran).",
            s.last_run_timestamp,
            job=job,
        )
    for job, s in jobs.items():
        w.add(
            "beststag_job_last_success_timestamp_seconds",
            g,
            "When a run of the job last ended ok or alerting (0: never).",
            s.last_success_timestamp,
            job=job,
        )
    for job, s in jobs.items():
        w.add(
            "beststag_job_last_duration_seconds",
            g,
            "How long the job's last run took.",
            s.last_duration_seconds,
            job=job,
        )
    for job, s in jobs.items():
        w.add(
            "beststag_job_last_exit_code",
            g,
            "Exit code of the job's last run (75: another run held the lock).",
            s.last_exit_code,
            job=job,
        )
    for job, s in jobs.items():
        for outcome in OUTCOMES:  # a state set: every outcome always present, 1 for the last run's
            w.add(
                "beststag_job_last_outcome",
                g,
                "1 for the outcome of the job's last run, else 0.",
                int(s.last_outcome == outcome),
                job=job,
                outcome=outcome,
            )


def write_prometheus(journal: Journal, path: Path, *, drill_max_age_h: float = 48.0) -> str:
    """Write the textfile from every remembered section and the journal (0644, atomically); return its text.

    :raises DiskFull: when its filesystem is full.
    :raises BadInput: (exit 2) when the path cannot be written: a configuration problem (the folder is
        not writable, or something in the way is not a folder).
    :raises UnsafePath: for a symlink at the default path inside the data dir.
    """
    from .. import clock

    text = prometheus_text(remembered(journal), journal_figures(journal, clock.timestamp(), drill_max_age_h))
    try:
        write_public_file(path, text)
    except OSError as e:
        from ..diskspace import as_disk_full
        from ..errors import BadInput

        full = as_disk_full(e, path.parent)
        if full is not None:
            raise full from None
        raise BadInput(
            f"cannot write the Prometheus textfile {path}: {e.strerror or e}",
            hint="set metrics.prometheus_path to a *.prom file in a folder this user can write "
            "(node_exporter's --collector.textfile.directory)",
        ) from None
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
        group = [v for v in values[i * len(values) // width : (i + 1) * len(values) // width] if v is not None]
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
            rows.append(
                [
                    f"  {t}",
                    _v(v["records"]) + (" (estimated)" if v["count_method"] != "counted" else ""),
                    arrow(v["growth_pct"]),
                ]
            )
        for t, a in u["activity"].items():
            rows.append(
                [
                    f"created/hour: {t}",
                    _v(a["per_hour"]) + (" (sampled)" if a.get("sampled") else ""),
                    f"{arrow(a['trend_delta_pct'])} {sparkline([p['created'] for p in a.get('series', [])])}",
                ]
            )
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
            ["response avg", _sec(rt["avg"]), f"{arrow(p['trend']['response_time_avg_delta_pct'])} {sparkline(lat)}"],
            [
                "response p50 / p95 / p99",
                f"{_sec(rt['p50'])} / {_sec(rt['p95'])} / {_sec(rt['p99'])}",
                "" if rt["percentile_method"] == "exact" else "from hourly histograms",
            ],
            ["error rate", _pct(p["error_ratio"]), f"{p['errors_total']} errors"],
            ["429 answers / retries", f"{p['rate_limited_total']} / {p['retries_total']}", ""],
            [
                "API budget used (avg / peak hour)",
                f"{_pct(p['api_usage']['avg_budget_ratio'])} / {_pct(p['api_usage']['peak_hour_budget_ratio'])}",
                f"of {p['api_usage']['budget_requests_per_second']:g} req/s",
            ],
            [
                "cache hit / miss ratio",
                f"{_pct(c['hit_ratio'])} / {_pct(c['miss_ratio'])}",
                f"{c['lookups_total']} lookups {sparkline([s['hit_ratio'] for s in series.get('cache', [])])}",
            ],
            [
                "cache TTL effectiveness",
                _pct(c["ttl_effectiveness_ratio"]),
                f"avg hit age {_v(c['hit_age_avg_seconds'])} s",
            ],
            ["cache size", _v(c["size_bytes"], " B"), ""],
        ]
    if "storage" in m:
        s = m["storage"]
        rows = [
            [
                "records / plan limit",
                f"{_v(s['records_total'])} / {_v(s['plan_record_limit'])}",
                _pct(s["usage_ratio"]),
            ],
            ["attachments", f"{_v(s['attachments_total'])} ({_v(s['attachment_bytes'], ' B')})", ""],
            ["JSON bytes per record", _v(s["api_bytes_per_record"]), ""],
            ["backup compression ratio", _v(s["backup_compression"].get("ratio")), ""],
        ]
        rows += [[f"backups: {t}", _v(b, " B"), ""] for t, b in s["backup_bytes_by_type"].items()]
        rows += [["cache on disk", _v(s["cache_bytes"], " B"), ""], ["journal", _v(s["journal_bytes"], " B"), ""]]
        out["storage"] = rows
    if "backup" in m:
        b = m["backup"]
        rows = [["backup success rate", _pct(b["success_ratio"]), f"{b['successes_total']}/{b['runs_total']} runs"]]
        for t, v in b["by_type"].items():
            last = v["last_success_age_seconds"]
            rows.append(
                [
                    f"  {t}: last success",
                    "never" if last is None else f"{last / 3600:.1f} h ago",
                    f"{_v(v['last_success_bytes'], ' B')}; {v['consecutive_failures']} failure(s) in a row",
                ]
            )
        r = b["recovery"]
        rows.append(
            ["recovery time estimate", _sec(r["estimate_seconds"]) if r["estimate_seconds"] else "—", r["method"]]
        )
        out["backup"] = rows
    return out
