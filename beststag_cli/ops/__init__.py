"""Operations: scheduled jobs, their health pings and run log lines, the schedule and its crontab.

Plain core (no Typer, no Rich); `beststag_cli/cli/schedule.py` and the job commands are its clients.

- :func:`jobs.job` — context manager around one run of a job: a ``job.started`` / ``job.finished``
  JSON log line (run id, duration, outcome, exit code) and the job's optional health pings;
- :func:`schedule.scheduled_jobs` — the ten scheduled jobs from config (name, cron, command);
- :func:`schedule.render_crontab` / :func:`schedule.parse_crontab` — crontab text, both ways;
- :func:`schedule.next_runs`, :func:`schedule.expand`, :func:`schedule.lock_collisions`;
- :mod:`simulate` — a week of cron against the sandbox with a pinned clock (a testing aid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import JobRun, job, outcome_of

__all__ = ["JobRun", "job", "outcome_of"]


def __getattr__(name: str) -> Any:
    # lazily: `schedule show` reads ops.schedule and must not pay for jobs' logging (start-up time)
    if name in __all__:
        from . import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
