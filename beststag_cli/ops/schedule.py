"""The schedule: the cron jobs from config, their next runs, and the crontab that runs them.

Every schedule lives in the config (`backup.types.<type>.schedule`, `metrics.schedules`,
`jobs.schedules`); :func:`scheduled_jobs` turns it into (name, cron, command) triples,
:func:`render_crontab` into crontab lines (what `crontab.example` holds for ``/opt/beststag``),
and :func:`parse_crontab` reads such lines back, so tests and the simulated week drive exactly
what an operator installs.

Cron reads times in the server's local zone (`schedule show` computes them there); the simulated
week and the retention buckets use UTC, and a server that runs beststag should too.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from beststag_cli.config import Settings

#: the wrapper every crontab line calls (relative to the installation folder)
WRAPPER = "scripts/cron-job"
DEFAULT_HOME = "/opt/beststag"
DEFAULT_ENV_FILE = "/etc/beststag/env"
#: jobs that take the base's backup lock: two of them starting in the same minute collide (exit 75)
BACKUP_LOCK = "backup"


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    cron: str
    args: tuple[str, ...]
    what: str
    #: the lock the job takes, when it shares one with other scheduled jobs
    lock: str | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.args)


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """The scheduled jobs in crontab order: backups, metric collections, alerts, maintenance."""
    b = settings.backup.types
    ms, mr = settings.metrics.schedules, settings.metrics.ranges
    js = settings.jobs.schedules

    def collect(kind: str, rng: str) -> tuple[str, ...]:
        return ("metrics", "collect", "--type", kind, "--range", rng, "--format", "prometheus")

    return [
        ScheduledJob(
            "backup-incremental",
            b.incremental.schedule,
            ("backup", "run", "--type", "incremental"),
            "incremental backup (records changed since the last one)",
            BACKUP_LOCK,
        ),
        ScheduledJob(
            "backup-complete",
            b.complete.schedule,
            ("backup", "run", "--type", "complete"),
            "complete backup of the six tables",
            BACKUP_LOCK,
        ),
        ScheduledJob(
            "backup-critical",
            b.critical.schedule,
            ("backup", "run", "--type", "critical"),
            "critical backup (the priority tables)",
            BACKUP_LOCK,
        ),
        ScheduledJob(
            "metrics-usage", ms.usage, collect("usage", mr.usage), "usage metrics; refreshes the Prometheus textfile"
        ),
        ScheduledJob(
            "metrics-performance",
            ms.performance,
            collect("performance", mr.performance),
            "performance metrics; refreshes the Prometheus textfile",
        ),
        ScheduledJob(
            "metrics-storage",
            ms.storage,
            collect("storage", mr.storage),
            "storage metrics; refreshes the Prometheus textfile",
        ),
        ScheduledJob(
            "alerts",
            js.alerts,
            ("metrics", "alerts"),
            "evaluate the alerts, notify alerts.notify_urls (exit 1 while one fires)",
        ),
        ScheduledJob("cache-prune", js.cache_prune, ("cache", "prune"), "drop expired cache entries"),
        ScheduledJob(
            "backup-cleanup", js.backup_cleanup, ("backup", "cleanup"), "apply the backup keep rules", BACKUP_LOCK
        ),
        ScheduledJob(
            "metrics-archive",
            js.metrics_archive,
            ("metrics", "archive"),
            "move old journal rows into monthly archive files",
        ),
        ScheduledJob(
            "feed-refresh",
            js.feed_refresh,
            ("feed", "refresh", "--if-enabled"),
            "extend the change feed's webhook 7 days (nothing while the feed is off)",
        ),
        ScheduledJob(
            "backup-drill",
            js.backup_drill,
            ("backup", "drill", "latest", "--type", "complete"),
            "restore drill of the newest complete backup into a scratch sandbox base (nothing sent to Airtable)",
        ),
    ]


# --------------------------------------------------------------------------------------------
# times


def next_runs(cron: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` start times of ``cron`` strictly after ``after`` (in ``after``'s zone)."""
    from croniter import croniter

    it = croniter(cron, after)
    return [it.get_next(datetime) for _ in range(count)]


def expand(cron: str, start: datetime, end: datetime) -> list[datetime]:
    """Every start time of ``cron`` in ``[start, end)``."""
    from croniter import croniter

    it = croniter(cron, start - timedelta(seconds=1))
    out: list[datetime] = []
    while True:
        t = it.get_next(datetime)
        if t >= end:
            return out
        out.append(t)


def _may_share_minute(a: str, b: str) -> bool:
    """False only when the two schedules have no minute or no hour in common (they never start together)."""
    from croniter import croniter

    try:
        fa, fb = croniter.expand(a)[0], croniter.expand(b)[0]
    except Exception:  # whatever croniter makes of it, expanding both decides
        return True
    return not any(
        "*" not in fa[i] and "*" not in fb[i] and not set(fa[i]) & set(fb[i]) for i in (0, 1)
    )  # minute, hour


def lock_collisions(jobs: Iterable[ScheduledJob], start: datetime, days: int = 366) -> list[tuple[datetime, list[str]]]:
    """Minutes in which two or more jobs sharing a lock would start: all but one of them exit 75."""
    by_minute: dict[tuple[str, datetime], list[str]] = {}
    end = start + timedelta(days=days)
    locked = [j for j in jobs if j.lock is not None]
    fixed_offset = isinstance(start.tzinfo, timezone)  # no DST: croniter's starts keep their minute and hour
    for j in locked:
        if fixed_offset and not any(
            k is not j and k.lock == j.lock and _may_share_minute(j.cron, k.cron) for k in locked
        ):
            continue  # it starts in no minute another job of its lock can: a year of croniter steps saved
        for t in expand(j.cron, start, end):
            by_minute.setdefault((str(j.lock), t), []).append(j.name)
    return sorted((t, names) for (_, t), names in by_minute.items() if len(names) > 1)


# --------------------------------------------------------------------------------------------
# crontab text

_HEADER = """\
# beststag: the scheduled jobs (generated by `beststag schedule crontab`; edit config/beststag.yaml,
# not this list, and generate it again). Install for the user that owns the data folder:
#     crontab -u beststag crontab.example      (after replacing {home} if installed elsewhere)
#
# Every line runs {wrapper}, which
#   - loads the env file ({env_file}: AIRTABLE_TOKEN=..., AIRTABLE_BASE_ID=..., optionally
#     BESTSTAG_CONFIG / BESTSTAG_DATA_DIR; mode 0600, owned by that user: it refuses a file that
#     group or others can read, or a missing one, so a job never quietly runs without its token),
#   - runs `beststag --quiet COMMAND` from the installation folder, output to /dev/null,
#   - stays silent on exit 0 and on exit 75 (another run holds the lock: this run did nothing and
#     the next slot runs again; two backups, or a backup and `backup cleanup`, never overlap),
#   - prints the one-line error otherwise, which cron mails (MAILTO): 1 failed or an alert fires,
#     2 bad config or input, 3 partial backup (some tables failed), 4 Airtable unreachable.
# Each run also writes job.started / job.finished JSON lines (run id, outcome, exit code, duration)
# to <data_dir>/logs/beststag.jsonl and calls its health-ping URLs (`jobs.pings` in the config).
# Times are the server's local time; run the server in UTC (retention and metrics count in UTC).
# See docs/operations.md.
"""


def render_crontab(settings: Settings, home: str | Path = DEFAULT_HOME, env_file: str | Path = DEFAULT_ENV_FILE) -> str:
    """The crontab for an installation in ``home`` whose secrets are in ``env_file``."""
    home_s = str(home).rstrip("/") or "/"
    wrapper = f"{home_s}/{WRAPPER}"
    lines = [_HEADER.format(home=home_s, wrapper=wrapper, env_file=env_file).rstrip("\n"), ""]
    for j in scheduled_jobs(settings):
        lines.append(f"# {j.name}: {j.what}")
        command = f"{shlex.quote(wrapper)} --env-file {shlex.quote(str(env_file))} {j.command}"
        lines.append(f"{j.cron:<14} " + command.replace("%", "\\%"))  # cron reads a bare % as a newline
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CronEntry:
    cron: str
    #: the beststag arguments (after the wrapper and its --env-file)
    args: tuple[str, ...]
    env_file: str | None
    line: str


def parse_crontab(text: str) -> list[CronEntry]:
    """The beststag lines of a crontab: schedule, beststag arguments and env file of each.

    :raises ValueError: a line that is not a 5-field cron line calling the wrapper.
    """
    from croniter import croniter

    out: list[CronEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split("=", 1)[0]
        if "=" in line and head.strip().isidentifier():  # MAILTO=..., PATH=...
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise ValueError(f"not a cron line (5 time fields and a command): {line!r}")
        cron = " ".join(parts[:5])
        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron schedule {cron!r} in {line!r}")
        words = shlex.split(parts[5].replace("\\%", "%"))
        if not words or not words[0].endswith("/" + WRAPPER):
            raise ValueError(f"the command does not call .../{WRAPPER}: {line!r}")
        words = words[1:]
        env_file = None
        if words[:1] == ["--env-file"]:
            env_file, words = words[1], words[2:]
        out.append(CronEntry(cron, tuple(words), env_file, line))
    return out


def installation_home() -> Path:
    """The folder holding this checkout's scripts/ (where `schedule crontab` points by default)."""
    return Path(__file__).resolve().parents[2]
