"""Backup figures from the journal's ``backup_runs`` and ``restore_runs`` (written by backup/)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..journal import Journal
from ..paths import BACKUP_TYPES
from .performance import dir_bytes
from .stats import ratio, rounded
from .windows import Window

if TYPE_CHECKING:
    from ..config import Settings

#: statuses that count as a good run; "running" (and the like) are not finished yet; anything
#: else (failed, error, partial, aborted...) is a failed run
SUCCESS_STATUSES = frozenset({"ok", "success", "succeeded", "completed", "complete", "done", "verified"})
RUNNING_STATUSES = frozenset({"running", "started", "in_progress", "pending"})
#: finished, but neither a success nor a failure: stopped by SIGINT/SIGTERM (or killed) on purpose
NEUTRAL_STATUSES = frozenset({"interrupted"})
#: Airtable writes at most 10 records a request
RECORDS_PER_WRITE = 10


def is_success(status: str) -> bool:
    return status.lower() in SUCCESS_STATUSES


def is_finished(status: str) -> bool:
    return status.lower() not in RUNNING_STATUSES


def is_neutral(status: str) -> bool:
    """An interrupted run: stopped on purpose, neither a success nor a failure."""
    return status.lower() in NEUTRAL_STATUSES


def type_status(journal: Journal, backup_type: str, now: float) -> dict[str, Any]:
    """State of one backup type over all time: last run, last success, failures in a row."""
    runs = journal.query(
        "SELECT id, status, started, finished, duration_s, records, bytes FROM backup_runs"
        " WHERE type = ? ORDER BY started DESC LIMIT 200",
        (backup_type,),
    )
    finished = [r for r in runs if is_finished(r["status"])]
    last_ok = next((r for r in finished if is_success(r["status"])), None)
    if last_ok is None:  # older than the 200 most recent runs, perhaps
        rows = journal.query(
            "SELECT id, status, started, finished, duration_s, records, bytes FROM backup_runs"
            " WHERE type = ? ORDER BY coalesce(finished, started) DESC",
            (backup_type,),
        )
        last_ok = next((r for r in rows if is_success(r["status"])), None)
    failures_in_a_row = 0
    counted = next((r["status"] for r in finished if not is_neutral(r["status"])), None)
    for r in finished:
        if is_success(r["status"]):
            break
        if r["status"].lower() in NEUTRAL_STATUSES:
            continue
        failures_in_a_row += 1
    last_ok_ts = (last_ok["finished"] or last_ok["started"]) if last_ok else None
    return {
        "last_status": finished[0]["status"] if finished else None,
        # the newest run that succeeded or failed (an interrupted one is neither)
        "last_outcome_status": counted,
        "last_run_timestamp": (finished[0]["finished"] or finished[0]["started"]) if finished else None,
        "last_success_id": last_ok["id"] if last_ok else None,
        "last_success_timestamp": last_ok_ts,
        "last_success_age_seconds": rounded(now - last_ok_ts, 1) if last_ok_ts is not None else None,
        "last_success_bytes": last_ok["bytes"] if last_ok else None,
        "last_success_records": last_ok["records"] if last_ok else None,
        "last_success_duration_seconds": last_ok["duration_s"] if last_ok else None,
        "consecutive_failures": failures_in_a_row,
        "running": sum(1 for r in runs if not is_finished(r["status"])),
    }


def drill_status(journal: Journal, now: float, max_age_h: float) -> dict[str, Any]:
    """The newest complete backup's restore drills (``backup drill``, journal ``drills``): is it proven?

    ``problem`` is None while it is: a drill of it passed (its newest finished drill), or it is younger
    than ``max_age_h`` and no drill of it failed. No complete backup yet: no problem here (the
    backup alert already says so for the type).
    """
    st = type_status(journal, "complete", now)
    backup_id, finished = st["last_success_id"], st["last_success_timestamp"]
    out: dict[str, Any] = {
        "backup_id": backup_id,
        "max_age_hours": max_age_h,
        "last_drill_id": None,
        "last_drill_status": None,
        "last_drill_timestamp": None,
        "last_passed_timestamp": None,
        "problem": None,
    }
    if backup_id is None:
        return out
    try:
        drills = [d for d in journal.drills(backup_id=str(backup_id), limit=200) if d["status"] in ("passed", "failed")]
    except sqlite3.Error:  # a journal from before the drills' migration, opened read-only: no drill known
        drills = []
    passed = next((d for d in drills if d["status"] == "passed"), None)
    if drills:
        last = drills[0]
        out.update(
            last_drill_id=last["id"],
            last_drill_status=last["status"],
            last_drill_timestamp=last["finished"] or last["started"],
        )
    if passed is not None:
        out["last_passed_timestamp"] = passed["finished"] or passed["started"]
    age_h = (now - float(finished)) / 3600 if finished is not None else 0.0
    if drills and drills[0]["status"] == "failed":
        out["problem"] = f"the last drill of {backup_id} failed ({drills[0]['id']}: {drills[0]['problem']})"
    elif passed is None and age_h > max_age_h:
        out["problem"] = f"no passing drill of {backup_id}, {age_h:.1f} h after it finished (maximum {max_age_h:g} h)"
    return out


def newest_passing_drill(journal: Journal) -> dict[str, Any] | None:
    """The newest passing drill of a backup that holds the whole base (complete or incremental)."""
    try:
        rows = journal.query(
            "SELECT * FROM drills WHERE status = 'passed' AND backup_type IN ('complete', 'incremental')"
            " ORDER BY coalesce(finished, started) DESC LIMIT 1"
        )
    except sqlite3.Error:  # a journal from before the drills' migration, opened read-only
        return None
    return rows[0] if rows else None


def collect_backup(settings: Settings, journal: Journal, window: Window) -> dict[str, Any]:
    """The backup section: success rate in the window, per-type state, storage, recovery estimate."""
    rows = journal.query(
        "SELECT type, status, bytes, records FROM backup_runs WHERE started >= ? AND started <= ?",
        (window.start, window.end),
    )
    # an interrupted run is neither: it counts in neither the successes nor the failures nor the ratio
    stopped = [r for r in rows if is_finished(r["status"]) and is_neutral(r["status"])]
    finished = [r for r in rows if is_finished(r["status"]) and not is_neutral(r["status"])]
    ok = [r for r in finished if is_success(r["status"])]
    types = sorted(set(BACKUP_TYPES) | {r["type"] for r in rows})
    by_type: dict[str, Any] = {}
    for t in types:
        fin_t = [r for r in finished if r["type"] == t]
        ok_t = [r for r in fin_t if is_success(r["status"])]
        by_type[t] = {
            "runs": len(fin_t),
            "successes": len(ok_t),
            "failures": len(fin_t) - len(ok_t),
            "interrupted": sum(1 for r in stopped if r["type"] == t),
            "success_ratio": rounded(ratio(len(ok_t), len(fin_t))),
            "bytes_in_range": sum(r["bytes"] or 0 for r in ok_t),
            "storage_bytes": dir_bytes(settings.paths.backups / t),
            **type_status(journal, t, window.end),
        }
    return {
        "runs_total": len(finished),
        "successes_total": len(ok),
        "failures_total": len(finished) - len(ok),
        "interrupted_total": len(stopped),
        "success_ratio": rounded(ratio(len(ok), len(finished))),
        "by_type": by_type,
        "storage_bytes": sum(v["storage_bytes"] for v in by_type.values()),
        "recovery": recovery_estimate(settings, journal, by_type),
    }


def recovery_estimate(settings: Settings, journal: Journal, by_type: dict[str, Any]) -> dict[str, Any]:
    """Seconds to restore the base: from the newest passing drill (the requests its restore needed, at the
    request rate), else from measured restores, else from the API budget; ``source`` says which."""
    drill = newest_passing_drill(journal)
    if drill is not None and drill["estimate_s"] is not None:
        est = float(drill["estimate_s"])
        requests = (drill["requests"] or 0) + (drill["schema_requests"] or 0)
        rate = float(drill["rate_per_s"] or 0)
        return {
            "source": "drill",
            "backup_type": drill["backup_type"],
            "backup_id": drill["backup_id"],
            "drill_id": drill["id"],
            "records": drill["records"],
            "requests": requests,
            "records_per_second": rounded(drill["records"] / est, 3) if est > 0 else None,
            "estimate_seconds": rounded(est, 1),
            "method": f"drill {drill['id']} of {drill['backup_id']}: {requests:,} requests at {rate:g} req/s",
        }
    source_type = "complete" if by_type.get("complete", {}).get("last_success_records") is not None else None
    if source_type is None:
        known = [(v["last_success_records"], t) for t, v in by_type.items() if v["last_success_records"] is not None]
        source_type = max(known)[1] if known else None
    records = by_type[source_type]["last_success_records"] if source_type else None
    done = journal.query(
        "SELECT coalesce(sum(records), 0) AS r, coalesce(sum(duration_s), 0) AS s, count(*) AS n"
        " FROM restore_runs WHERE duration_s > 0 AND records > 0 AND lower(status) IN"
        f" ({', '.join('?' for _ in SUCCESS_STATUSES)})",
        tuple(sorted(SUCCESS_STATUSES)),
    )[0]
    if done["n"]:
        rate = done["r"] / done["s"]
        method = f"measured over {done['n']} restore(s)"
        source = "restores"
    else:
        source = "budget"
        rate = float(settings.airtable.rate_limit_per_s * RECORDS_PER_WRITE)
        method = (
            f"from the API budget ({settings.airtable.rate_limit_per_s} req/s x {RECORDS_PER_WRITE} records"
            " a write); no measured restore yet"
        )
    return {
        "source": source,
        "backup_type": source_type,
        "records": records,
        "records_per_second": rounded(rate, 3),
        "estimate_seconds": rounded(records / rate, 1) if records is not None and rate else None,
        "method": method,
    }
