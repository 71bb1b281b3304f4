"""`metrics alerts`: the spec's five alerts, their state in the journal, and webhook notifications.

Alerts read the journal only (no Airtable request), so cron can run them every few minutes:

=================== =========================================================== ================
alert               fires when                                                  threshold (config)
=================== =========================================================== ================
cache_hit_ratio     hits / (hits + misses + stale) in the window is below it    alerts.cache_hit_ratio_min
response_time       the window's average response time (s) is above it          alerts.response_time_max_s
backup_failure      a backup type's last run(s) failed, or it has had no        alerts.backup_failure
                    success within max_age_h, or the newest complete backup     backup.drill_max_age_h
                    has no passing drill within drill_max_age_h of it (or its
                    last drill failed) (value: how many of those fail)
error_rate          errors / requests in the window is above it                 alerts.error_rate_max
storage_usage       the newest record counts / metrics.plan_record_limit         alerts.storage_usage_max
=================== =========================================================== ================

The two ratio alerts stay quiet on fewer than ``alerts.min_samples`` lookups or requests.

Notifications (a JSON POST to each ``alerts.notify_urls``): one when an alert starts firing, again
while it keeps firing at most once per ``alerts.cooldown_s``, and one "resolved" when it stops
(only if its firing was notified). A failed POST is reported and retried on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import clock
from ..journal import Journal
from ..logs import log_event
from ..paths import BACKUP_TYPES
from ..settings_sources import shown_url
from . import rollup
from .backups import drill_status, type_status
from .stats import ratio, rounded
from .usage import last_snapshots
from .windows import Window, check_range, iso_utc

if TYPE_CHECKING:
    from ..config import Settings

ALERT_NAMES: tuple[str, ...] = (
    "cache_hit_ratio",
    "response_time",
    "backup_failure",
    "error_rate",
    "storage_usage",
    "change_feed",
)
_NOTIFIED_KEY = "alerts.{}.notified"
NOTIFY_TIMEOUT_S = 5.0


@dataclass
class Alert:
    name: str
    firing: bool
    value: float | None
    threshold: float
    unit: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    settings: Settings, journal: Journal, range_name: str | None = None, now: float | None = None
) -> list[Alert]:
    """The alerts over the window ending ``now`` (``range_name`` default: ``alerts.range``)."""
    cfg = settings.alerts
    window = Window.ending(check_range(range_name or cfg.range), clock.timestamp() if now is None else now)
    rollup.refresh(journal)
    req = rollup.request_totals(journal, window)
    cache = rollup.cache_totals(journal, window)
    out: list[Alert] = []

    hits = cache.n("hit")
    lookups = hits + cache.n("miss") + cache.n("stale")
    hr = ratio(hits, lookups)
    enough = lookups >= cfg.min_samples and lookups > 0
    out.append(
        Alert(
            "cache_hit_ratio",
            bool(enough and hr is not None and hr < cfg.cache_hit_ratio_min),
            rounded(hr),
            cfg.cache_hit_ratio_min,
            "ratio",
            (
                f"cache hit ratio {hr:.1%} over {lookups} lookups (minimum {cfg.cache_hit_ratio_min:.0%})"
                if hr is not None
                else "no cache lookups in the window"
            )
            + ("" if enough or not lookups else f"; quiet below {cfg.min_samples} lookups"),
            {"lookups": lookups, "hits": hits},
        )
    )

    avg_s = req.duration_sum_ms / req.duration_n / 1000.0 if req.duration_n else None
    out.append(
        Alert(
            "response_time",
            bool(avg_s is not None and avg_s > cfg.response_time_max_s),
            rounded(avg_s),
            cfg.response_time_max_s,
            "seconds",
            f"average response time {avg_s:.3f} s over {req.duration_n} requests"
            f" (maximum {cfg.response_time_max_s:g} s)"
            if avg_s is not None
            else "no timed requests in the window",
            {"requests": req.duration_n},
        )
    )

    out.append(_backup_alert(settings, journal, window.end))

    er = ratio(req.errors, req.requests)
    enough = req.requests >= cfg.min_samples and req.requests > 0
    out.append(
        Alert(
            "error_rate",
            bool(enough and er is not None and er > cfg.error_rate_max),
            rounded(er),
            cfg.error_rate_max,
            "ratio",
            (
                f"error rate {er:.1%}: {req.errors} of {req.requests} requests (maximum {cfg.error_rate_max:.0%})"
                if er is not None
                else "no requests in the window"
            )
            + ("" if enough or not req.requests else f"; quiet below {cfg.min_samples} requests"),
            {"requests": req.requests, "errors": req.errors},
        )
    )

    snaps = last_snapshots(journal)
    known = {n: s for n, s in snaps.items() if n in settings.tables}
    total = sum(s["records"] for s in known.values())
    limit = settings.metrics.plan_record_limit
    usage = total / limit if known else None
    out.append(
        Alert(
            "storage_usage",
            bool(usage is not None and usage > cfg.storage_usage_max),
            rounded(usage),
            cfg.storage_usage_max,
            "ratio",
            f"{total} records of the plan's {limit} ({usage:.1%}, maximum {cfg.storage_usage_max:.0%})"
            if usage is not None
            else "no record counts yet (run `beststag metrics collect --type usage`)",
            {
                "records": total,
                "plan_record_limit": limit,
                "counted_at": iso_utc(max(s["ts"] for s in known.values())) if known else None,
            },
        )
    )
    out.append(_feed_alert(settings, journal, window.end))
    return out


def _feed_alert(settings: Settings, journal: Journal, now: float) -> Alert:
    """The change feed broken (or with gaps) for longer than `feed.max_gap_s`; quiet when it is off."""
    from ..settings_sources import SANDBOX_BASE_ID

    limit = settings.feed.max_gap_s
    base = settings.base_id or SANDBOX_BASE_ID
    try:
        row = journal.feed_row(base)
        gaps = journal.feed_gaps(base)
    except Exception:  # a journal from before the feed's migration
        row, gaps = None, []
    if row is None:
        return Alert("change_feed", False, None, limit, "seconds", "the change feed is off")
    since = [t for t in [row["broken_since_ts"], *(g["since_ts"] for g in gaps)] if t is not None]
    age = max(0.0, now - min(since)) if since else None
    if age is None:
        return Alert("change_feed", False, 0.0, limit, "seconds", "the change feed is whole")
    tables = sorted(str(g["table_name"]) for g in gaps)
    why = row["broken_reason"] or "gaps"
    return Alert(
        "change_feed",
        age > limit,
        rounded(age),
        limit,
        "seconds",
        f"the change feed has been broken for {age:.0f} s ({why}; tables: {', '.join(tables) or '—'};"
        f" maximum {limit:g} s)",
        {"tables": tables, "reason": why},
    )


def _backup_alert(settings: Settings, journal: Journal, now: float) -> Alert:
    rule = settings.alerts.backup_failure
    failing: dict[str, str] = {}
    per_type: dict[str, Any] = {}
    for t in BACKUP_TYPES:
        st = type_status(journal, t, now)
        max_age_s = float(getattr(rule.max_age_h, t)) * 3600
        per_type[t] = {
            "last_status": st["last_status"],
            "consecutive_failures": st["consecutive_failures"],
            "last_success_age_hours": rounded(st["last_success_age_seconds"] / 3600, 2)
            if st["last_success_age_seconds"] is not None
            else None,
            "max_age_hours": max_age_s / 3600,
        }
        if st["consecutive_failures"] >= rule.consecutive_failures:
            failing[t] = f"{st['consecutive_failures']} failed run(s) in a row (last: {st['last_outcome_status']})"
        elif st["last_success_age_seconds"] is None:
            failing[t] = "no successful run yet"
        elif st["last_success_age_seconds"] > max_age_s:
            age_h = st["last_success_age_seconds"] / 3600
            failing[t] = f"last success {age_h:.1f} h ago (maximum {max_age_s / 3600:g} h)"
    drill = drill_status(journal, now, float(settings.backup.drill_max_age_h))
    if drill["problem"] is not None:
        failing["drill"] = drill["problem"]
    if not rule.enabled:
        return Alert(
            "backup_failure",
            False,
            None,
            0,
            "types",
            "backup alert disabled (alerts.backup_failure.enabled)",
            {"types": per_type},
        )
    msg = (
        ("backups failing: " + "; ".join(f"{t}: {why}" for t, why in failing.items()))
        if failing
        else "every backup type succeeded recently"
    )
    return Alert(
        "backup_failure",
        bool(failing),
        float(len(failing)),
        0,
        "types",
        msg,
        {"failing": failing, "types": per_type, "drill": drill},
    )


def figure(value: float | None, unit: str) -> str:
    """An alert's value or threshold as an operator reads it: 45.0%, 1.250 s, 2 types."""
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "seconds":
        return f"{value:.3f} s"
    return f"{value:g} {unit}"


#: which side of its threshold an alert fires on
_BELOW = frozenset({"cache_hit_ratio"})


def firing_line(alert: dict[str, Any]) -> str:
    """One line for a firing alert, its figure against its threshold (what cron mails under --quiet).

    ``backup_failure: 1 types, threshold 0 types (fires above) - backups failing: critical: no successful run yet``
    """
    side = "below" if alert["name"] in _BELOW else "above"
    return (
        f"{alert['name']}: {figure(alert['value'], alert['unit'])}, threshold "
        f"{figure(alert['threshold'], alert['unit'])} (fires {side}) - {alert['message']}"
    )


# --------------------------------------------------------------------------------------------
# state and notifications

Poster = Callable[[str, dict[str, Any]], None]


def post_json(url: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON; raises OSError (urllib's errors) on failure or a non-2xx answer."""
    import urllib.error  # here: http.client and ssl cost a run with no webhook (the fast path) ~10 ms
    import urllib.request

    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "beststag-alerts"}
    )
    with urllib.request.urlopen(req, timeout=NOTIFY_TIMEOUT_S) as resp:
        if not 200 <= resp.status < 300:
            raise urllib.error.HTTPError(url, resp.status, "unexpected status", resp.headers, None)


def update_state(
    settings: Settings, journal: Journal, alerts: list[Alert], now: float | None = None, post: Poster = post_json
) -> list[dict[str, Any]]:
    """Store each alert's state and send the notifications due; returns what was sent (or failed)."""
    now = clock.timestamp() if now is None else now
    cfg = settings.alerts
    sent: list[dict[str, Any]] = []
    for a in alerts:
        st = journal.get_alert_state(a.name) or {}
        was_firing = bool(st.get("firing"))
        since = (st.get("since") if was_firing else now) if a.firing else None
        last_notified = st.get("last_notified")
        notified = journal.kv_get(_NOTIFIED_KEY.format(a.name))
        status = None
        if a.firing and (last_notified is None or now - last_notified >= cfg.cooldown_s):
            status = "firing"
        elif not a.firing and notified == "firing":
            status = "resolved"
        if status and cfg.notify_urls:
            payload = {
                "source": "beststag",
                "alert": a.name,
                "status": status,
                "value": a.value,
                "threshold": a.threshold,
                "unit": a.unit,
                "message": a.message,
                "since": iso_utc(since) if since else None,
                "at": iso_utc(now),
                "base": settings.base_id,
            }
            ok = False
            for url in cfg.notify_urls:
                shown = shown_url(url)  # a webhook's path is its key (n8n): never in the answer or the log
                try:
                    post(url, payload)
                    ok = True
                    sent.append({"alert": a.name, "status": status, "url": shown, "ok": True})
                except (OSError, ValueError) as e:
                    sent.append({"alert": a.name, "status": status, "url": shown, "ok": False, "error": str(e)[:200]})
                    log_event("metrics.alert_notify_failed", alert=a.name, status=status, url=shown, error=str(e)[:200])
            if ok:
                journal.kv_set(_NOTIFIED_KEY.format(a.name), status)
                if status == "firing":
                    last_notified = now
        journal.set_alert_state(a.name, firing=a.firing, value=a.value, since=since, last_notified=last_notified)
        if a.firing != was_firing:
            log_event(
                "metrics.alert_" + ("firing" if a.firing else "resolved"),
                alert=a.name,
                value=a.value,
                threshold=a.threshold,
            )
    return sent


def check(
    settings: Settings,
    journal: Journal,
    range_name: str | None = None,
    now: float | None = None,
    post: Poster = post_json,
) -> dict[str, Any]:
    """Evaluate, store state, notify; return ``{"range", "generated_at", "alerts", "notifications"}``."""
    now = clock.timestamp() if now is None else now
    alerts = evaluate(settings, journal, range_name, now)
    sent = update_state(settings, journal, alerts, now, post)
    return {
        "range": range_name or settings.alerts.range,
        "generated_at": iso_utc(now),
        "alerts": [a.to_dict() for a in alerts],
        "notifications": sent,
        "firing": [a.name for a in alerts if a.firing],
    }
