"""Usage figures: records per table and their growth, activity, active users, trends.

Counts come from Airtable through the gateway (a *census*: every table listed with only its
primary field and its attachment fields, so one request counts 100 records and also yields the
attachments' sizes). Each exact count is kept in the journal's ``count_snapshots``, and growth
is measured between snapshots, so trends need no extra requests.

Large tables (``metrics.sample_above_records`` > 0 and a last count above it) are not listed
whole: their count is estimated as the last exact count plus the records created since then
(one filtered listing), and the activity listing stops after that many records and extrapolates
from the sample's density. Every estimate is marked in the output with how it was made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..journal import Journal
from .stats import delta_pct, ratio, rounded
from .windows import SERIES_STEP, Window

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway


def parse_created(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def created_after_formula(ts: float) -> str:
    """filterByFormula keeping records created after ``ts``."""
    return f"IS_AFTER(CREATED_TIME(), DATETIME_PARSE('{iso(ts)}'))"


@dataclass
class TableCensus:
    name: str
    records: int
    method: str  # "counted" | "estimated"
    created: list[float] = field(default_factory=list)  # createdTime of every record listed
    attachments: int = 0
    attachment_bytes: int = 0
    note: str = ""


@dataclass
class Census:
    """What one pass over the base found (``ts`` = when)."""

    ts: float
    base: str
    tables: dict[str, TableCensus]
    missing: list[str] = field(default_factory=list)
    #: table name -> id, primary field, attachment and link fields (from the schema request)
    schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def records_total(self) -> int:
        return sum(t.records for t in self.tables.values())

    @property
    def estimated(self) -> list[str]:
        return [n for n, t in self.tables.items() if t.method != "counted"]


def _schema_info(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in schema.get("tables", []):
        fields = {f["id"]: f for f in t.get("fields", [])}
        primary = fields.get(t.get("primaryFieldId"), {}).get("name")
        out[t["name"]] = {
            "id": t.get("id"),
            "primary": primary,
            "attachments": [f["name"] for f in t.get("fields", []) if f.get("type") == "multipleAttachments"],
            "links": {
                f["name"]: (f.get("options") or {}).get("linkedTableId")
                for f in t.get("fields", [])
                if f.get("type") == "multipleRecordLinks"
            },
        }
    return out


def last_snapshots(journal: Journal, before: float | None = None) -> dict[str, dict[str, Any]]:
    """The newest count snapshot of each table (at or before ``before`` when given)."""
    cond, params = ("WHERE ts <= ?", (before,)) if before is not None else ("", ())
    rows = journal.query(
        f"SELECT table_name, max(ts) AS ts, records FROM count_snapshots {cond} GROUP BY table_name", params
    )
    return {r["table_name"]: {"ts": r["ts"], "records": r["records"]} for r in rows}


def take_census(settings: Settings, gateway: Gateway, journal: Journal, now: float) -> Census:
    """Count every configured table through the gateway and record the exact counts in the journal."""
    info = _schema_info(gateway.schema())
    threshold = settings.metrics.sample_above_records
    previous = last_snapshots(journal)
    census = Census(ts=now, base=gateway.base_id, tables={}, schema=info)
    for name in settings.tables:
        meta = info.get(name)
        if meta is None:
            census.missing.append(name)
            continue
        fields = [f for f in [meta["primary"], *meta["attachments"]] if f]
        last = previous.get(name)
        if threshold and last is not None and last["records"] > threshold:
            new = gateway.all(name, fields=fields[:1], formula=created_after_formula(last["ts"]))
            census.tables[name] = TableCensus(
                name,
                last["records"] + len(new),
                "estimated",
                created=[parse_created(r["createdTime"]) for r in new],
                note=f"last full count {last['records']} at {iso(last['ts'])} plus {len(new)} created since;"
                " deletions since then are not seen; attachments not counted",
            )
            continue
        tc = TableCensus(name, 0, "counted")
        for page in gateway.iterate(name, fields=fields):
            tc.records += len(page)
            for r in page:
                tc.created.append(parse_created(r["createdTime"]))
                for f in meta["attachments"]:
                    for a in r.get("fields", {}).get(f) or []:
                        tc.attachments += 1
                        tc.attachment_bytes += int(a.get("size") or 0)
        census.tables[name] = tc
    exact = {n: t.records for n, t in census.tables.items() if t.method == "counted"}
    if exact:
        journal.add_count_snapshots(exact, base=census.base, ts=now)
    return census


def _activity(
    settings: Settings, gateway: Gateway, table: str, window: Window, fields: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of ``table`` created in this window and the previous one (maybe a sample)."""
    cap = settings.metrics.sample_above_records
    opts: dict[str, Any] = {"fields": fields, "formula": created_after_formula(window.previous().start)}
    if cap:
        opts["max_records"] = cap
    recs = gateway.all(table, **opts)
    sampled = bool(cap) and len(recs) >= cap
    meta: dict[str, Any] = {"sampled": sampled}
    if sampled:
        meta["sample_records"] = len(recs)
    return recs, meta


def feed_changes(journal: Journal, base: str, window: Window) -> dict[str, Any]:
    """Record changes the change feed saw in the window (everyone's, beststag's included): per table and kind,
    per source (`client`, `publicApi`, `formPageSubmission`, `automation`, ...) and the users who made them."""
    try:
        on = journal.feed_row(base) is not None
        rows = journal.query(
            "SELECT table_name, kind, source, user_id, SUM(n) AS n FROM feed_activity"
            " WHERE base = ? AND hour_ts >= ? AND hour_ts <= ? GROUP BY table_name, kind, source, user_id",
            (base, window.start - window.start % 3600, window.end),
        )
    except Exception:  # a journal from before the feed's migration
        on, rows = False, []
    by_table: dict[str, dict[str, int]] = {}
    by_source: dict[str, int] = {}
    editors: set[str] = set()
    for r in rows:
        t = by_table.setdefault(str(r["table_name"]), {"created": 0, "updated": 0, "deleted": 0})
        t[str(r["kind"])] = t.get(str(r["kind"]), 0) + int(r["n"])
        by_source[str(r["source"])] = by_source.get(str(r["source"]), 0) + int(r["n"])
        if r["user_id"]:
            editors.add(str(r["user_id"]))
    return {
        "feed": "on" if on else "off",
        "by_table": by_table,
        "by_source": by_source,
        "editors": len(editors),
        "note": "hours are whole: the window's first hour is counted from its start",
    }


def _count_in(times: Iterable[float], lo: float, hi: float) -> int:
    return sum(1 for t in times if lo <= t <= hi)


def collect_usage(
    settings: Settings, gateway: Gateway, journal: Journal, window: Window, census: Census
) -> dict[str, Any]:
    """The usage section for ``window``, from a census just taken and the journal's snapshots."""
    # not at the top: the alerts fast path loads this module without pydantic
    from ..config import T_INTERACOES, T_LOGS, T_USUARIOS

    prev = window.previous()
    then = last_snapshots(journal, before=window.start)
    before_then = last_snapshots(journal, before=prev.start)
    tables: dict[str, Any] = {}
    for name, t in census.tables.items():
        base_snap = then.get(name)
        created_now = _count_in(t.created, window.start, window.end)
        created_prev = _count_in(t.created, prev.start, prev.start + prev.seconds - 1e-9)
        growth, growth_method = None, None
        if base_snap:
            growth, growth_method = delta_pct(t.records, base_snap["records"]), "count_snapshots"
        elif t.method == "counted":  # no count yet from before the window: what was created in it
            growth, growth_method = delta_pct(t.records, t.records - created_now), "created_time"
        prev_growth = None
        if base_snap and before_then.get(name):
            prev_growth = delta_pct(base_snap["records"], before_then[name]["records"])
        tables[name] = {
            "records": t.records,
            "count_method": t.method,
            "created_in_range": created_now if t.method == "counted" else None,
            "growth_pct": rounded(growth, 3),
            "growth_method": growth_method,
            "growth_baseline": ({"records": base_snap["records"], "at": iso(base_snap["ts"])} if base_snap else None),
            "growth_pct_previous_window": rounded(prev_growth, 3),
            "created_trend_delta_pct": (
                rounded(delta_pct(created_now, created_prev), 2) if t.method == "counted" else None
            ),
        }
        if t.note:
            tables[name]["note"] = t.note
    info = census.schema
    activity: dict[str, Any] = {}
    users: dict[str, Any] = {"active_users": None}
    for table in (T_INTERACOES, T_LOGS):
        if table not in census.tables:
            continue
        meta = info.get(table, {})
        link = (
            next((f for f, tid in meta.get("links", {}).items() if tid == info.get(T_USUARIOS, {}).get("id")), None)
            if table == T_INTERACOES
            else None
        )
        fields = [link] if link else [meta.get("primary") or ""]
        recs, sample = _activity(settings, gateway, table, window, [f for f in fields if f])
        times = [parse_created(r["createdTime"]) for r in recs]
        # records stamped after `end` (clock skew, a pinned clock) belong to neither window
        cur = [r for r, ts in zip(recs, times, strict=True) if window.start <= ts <= window.end]
        older = [r for r, ts in zip(recs, times, strict=True) if ts < window.start]
        n_cur, n_prev = len(cur), len(older)
        entry: dict[str, Any] = {
            "created": n_cur,
            "per_hour": rounded(n_cur / window.hours, 3),
            "previous_window": n_prev,
            "trend_delta_pct": rounded(delta_pct(n_cur, n_prev), 2),
            **sample,
        }
        if sample["sampled"] and times:
            span = max(times) - min(times)
            density = len(times) / span if span > 0 else None
            entry["created"] = round(density * window.seconds) if density else n_cur
            entry["per_hour"] = rounded(density * 3600, 3) if density else entry["per_hour"]
            entry["previous_window"] = None
            entry["trend_delta_pct"] = None
            entry["note"] = (
                f"sampled: the listing stopped at {len(recs)} records (metrics.sample_above_records);"
                " figures extrapolated from the sample's density"
            )
        step = SERIES_STEP[window.range]
        first = int(window.start // step) * step
        series: dict[int, int] = {t: 0 for t in range(first, int(window.end) + 1, step)}
        for ts in times:
            if window.start <= ts <= window.end:
                series[int(ts // step) * step] = series.get(int(ts // step) * step, 0) + 1
        entry["series"] = [{"t": t, "created": n} for t, n in sorted(series.items())]
        activity[table] = entry
        if table == T_INTERACOES and link:

            def ids(rows: list[dict[str, Any]], lnk: str = link) -> set[str]:
                return {u for r in rows for u in (r.get("fields", {}).get(lnk) or [])}

            active = ids(cur)
            previous = ids(older)
            total_users = census.tables.get(T_USUARIOS)
            users = {
                "active_users": len(active),
                "active_users_previous_window": None if sample["sampled"] else len(previous),
                "active_users_trend_delta_pct": (
                    None if sample["sampled"] else rounded(delta_pct(len(active), len(previous)), 2)
                ),
                "users_total": total_users.records if total_users else None,
                "active_users_ratio": rounded(ratio(len(active), total_users.records)) if total_users else None,
                "sampled": sample["sampled"],
            }
    if then:
        total_then = sum(s["records"] for n, s in then.items() if n in census.tables)
        growth_method = "count_snapshots"
    else:
        total_then = census.records_total - sum(v["created_in_range"] or 0 for v in tables.values())
        growth_method = "created_time"
    changes = feed_changes(journal, gateway.base_id, window)
    if changes["feed"] == "on":
        users["editors"] = changes["editors"]  # Airtable users who changed records (UI, n8n, automations)
    return {
        "records_total": census.records_total,
        "changes": changes,
        "growth_pct": rounded(delta_pct(census.records_total, total_then), 3),
        "growth_method": growth_method,
        "tables": tables,
        "activity": activity,
        "users": users,
        "estimated_tables": census.estimated,
        "missing_tables": census.missing,
    }
