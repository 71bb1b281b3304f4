"""The last run of each scheduled job, kept in the journal's kv for the Prometheus textfile.

node_exporter's pattern for cron jobs is a few gauges per job that the job refreshes when it ends:
when it last ran, when it last succeeded, how long it took and how it ended. :func:`after_job`
is called by :func:`beststag_cli.ops.jobs.job` once a run has ended: it keeps the run under
``jobs.last.<job>`` and rewrites the textfile, so ``time() - beststag_job_last_success_timestamp_seconds``
is current right after a backup, not at the next hourly collection. It never raises: the job's
outcome and exit code are what they were.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..journal import Journal
    from ..ops.jobs import JobRun

_KEY = "jobs.last.{}"

#: every outcome a run can have (beststag_cli.ops.jobs), for the state-set gauge
OUTCOMES: tuple[str, ...] = ("ok", "alerting", "partial", "failed", "locked", "interrupted")
#: outcomes after which the job did its work (the same set that sends the success ping)
SUCCESS_OUTCOMES = frozenset({"ok", "alerting"})


@dataclass(frozen=True)
class JobState:
    """What the textfile says about one job (timestamps 0 = never)."""

    last_run_timestamp: float = 0.0
    last_success_timestamp: float = 0.0
    last_duration_seconds: float | None = None
    last_exit_code: int | None = None
    last_outcome: str | None = None


def job_state(journal: Journal, name: str) -> JobState:
    raw = journal.kv_get(_KEY.format(name))
    if not raw:
        return JobState()
    try:
        d = json.loads(raw)
        return JobState(
            float(d.get("last_run_timestamp") or 0),
            float(d.get("last_success_timestamp") or 0),
            d.get("last_duration_seconds"),
            d.get("last_exit_code"),
            d.get("last_outcome"),
        )
    except (ValueError, TypeError, AttributeError):
        return JobState()  # a damaged entry reads as "never"; the next run rewrites it


def remember_run(
    journal: Journal, name: str, *, ended: float, outcome: str, exit_code: int, duration_s: float
) -> JobState:
    """Keep one finished run (the last success carries over a failed run)."""
    prev = job_state(journal, name)
    state = JobState(
        last_run_timestamp=ended,
        last_success_timestamp=ended if outcome in SUCCESS_OUTCOMES else prev.last_success_timestamp,
        last_duration_seconds=duration_s,
        last_exit_code=exit_code,
        last_outcome=outcome,
    )
    journal.kv_set(_KEY.format(name), json.dumps(state.__dict__))
    return state


def after_job(settings: Settings, run: JobRun) -> None:
    """Record ``run`` and refresh the textfile if the operator uses one; log (never raise) a failure."""
    try:
        from .. import clock
        from ..journal import Journal
        from ..paths import JOB_NAMES

        # only scheduled jobs have series; and never create the journal just to say a command failed early
        if run.name not in JOB_NAMES or run.outcome is None or not settings.paths.journal.exists():
            return
        journal = Journal(settings.paths.journal)
        try:
            remember_run(
                journal,
                run.name,
                ended=clock.timestamp(),
                outcome=run.outcome,
                exit_code=int(run.exit_code or 0),
                duration_s=float(run.duration_s or 0.0),
            )
            prom = settings.paths.prom_file
            if settings.metrics.prometheus_path is not None or prom.exists():
                from .export import write_prometheus

                write_prometheus(journal, prom, drill_max_age_h=float(settings.backup.drill_max_age_h))
        finally:
            journal.close()
    except Exception as e:  # the job already ended: this must not change its outcome
        from ..logs import log_event

        log_event(
            "job.textfile_failed",
            _level=logging.WARNING,
            job=run.name,
            run_id=run.run_id,
            error=str(getattr(e, "message", None) or e)[:300],
        )


def states(journal: Journal, names: Any) -> dict[str, JobState]:
    return {n: job_state(journal, n) for n in names}
