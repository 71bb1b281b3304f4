"""One run of a scheduled job: JSON log lines at start and end, and healthchecks-style pings.

>>> with job(settings, "backup-critical", type="critical"):   # doctest: +SKIP
...     run_backup(settings, gateway, "critical")

- ``job.started`` (job, run_id, fields) when the run begins; ``job.finished`` (job, run_id,
  outcome, exit_code, duration_s, error) when it ends, whatever the ending. The ``ts`` of both
  lines follows the tool's clock; ``duration_s`` is real elapsed time (monotonic).
- Outcomes: ``ok`` (0), ``alerting`` (1: the alerts job ran and found alerts firing),
  ``partial`` (3), ``locked`` (75: another run holds the lock; this one did nothing),
  ``failed`` (the error's exit code; 1 for a bug), ``interrupted`` (130 SIGINT, 143 SIGTERM).
- Pings (``jobs.pings.<job>`` in config): ``start`` before the work, ``success`` after outcomes
  ``ok`` and ``alerting`` (the job did its work; alerts have their own notifications), ``fail``
  after ``partial``, ``failed`` and ``interrupted``. A ``locked`` run sends no end ping: the run
  holding the lock sends it. A ping that fails (refused, timeout, HTTP >= 400) is retried
  ``jobs.ping_retries`` times, then logged as ``job.ping_failed``; it never changes the job's
  outcome or exit code, and the exception the job raised (if any) is re-raised unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beststag_cli.errors import ExitStatus
from beststag_cli.logs import log_event

if TYPE_CHECKING:
    from beststag_cli.config import JobPings, Settings

#: outcomes after which the success URL is called (the rest call fail, except `locked`)
SUCCESS_OUTCOMES = frozenset({"ok", "alerting"})


@dataclass
class JobRun:
    """What the job's body can read (and add to the end line through ``fields``)."""

    name: str
    run_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    pings: list[dict[str, Any]] = field(default_factory=list)


def outcome_of(exc: BaseException | None) -> tuple[str, int]:
    """(outcome, exit code) for how a run ended: no exception, one of ours, a bug, an interruption."""
    if exc is None:
        return "ok", ExitStatus.OK
    kind = getattr(exc, "kind", None)
    code = getattr(exc, "exit_code", None)
    if kind == "lock_held":
        return "locked", int(code or ExitStatus.LOCKED)
    if kind == "alert_firing":
        return "alerting", int(code or ExitStatus.FAILED)
    if kind == "partial":
        return "partial", int(code or ExitStatus.PARTIAL)
    if kind == "interrupted":  # errors.Interrupted: SIGINT 130, SIGTERM 143
        return "interrupted", int(code or ExitStatus.SIGINT)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", ExitStatus.SIGINT
    if isinstance(code, int):  # our errors, and click/typer's Exit (a command that ends early)
        return ("ok", ExitStatus.OK) if code == ExitStatus.OK else ("failed", code)
    if isinstance(exc, SystemExit):
        c = exc.code if isinstance(exc.code, int) else (ExitStatus.OK if exc.code is None else ExitStatus.FAILED)
        return ("ok", ExitStatus.OK) if c == ExitStatus.OK else ("failed", c)
    return "failed", ExitStatus.FAILED  # a bug


def _urls(pings: JobPings, which: str) -> str | None:
    explicit = getattr(pings, which)
    if explicit:
        return str(explicit)
    if pings.url:
        suffix = {"start": "/start", "success": "", "fail": "/fail"}[which]
        return f"{pings.url}{suffix}?rid={{run_id}}"
    return None


def _where(url: str) -> str:
    """Scheme and host only: a ping URL's path is often its secret (healthchecks' check uuid)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def ping(settings: Settings, run: JobRun, which: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Call the job's ``which`` URL (start | success | fail) if configured; never raises.

    :return: ``{"which", "ok", "status"|"error", "attempts"}``, or None when no URL is configured.
    """
    pings = settings.jobs.pings.get(run.name)
    template = _urls(pings, which) if pings is not None else None
    if not template:
        return None
    url = (
        template.replace("{job}", run.name)
        .replace("{run_id}", run.run_id)
        .replace("{exit_code}", "" if run.exit_code is None else str(run.exit_code))
    )
    import urllib.error
    import urllib.request

    data = json.dumps(body, default=str).encode() if body is not None else None
    tries = 1 + settings.jobs.ping_retries
    result: dict[str, Any] = {"which": which, "ok": False}
    for attempt in range(1, tries + 1):
        result["attempts"] = attempt
        try:
            req = urllib.request.Request(
                url,
                data=data,
                method="POST" if data is not None else "GET",
                headers={"User-Agent": "beststag-job-ping", **({"Content-Type": "application/json"} if data else {})},
            )
            with urllib.request.urlopen(req, timeout=settings.jobs.ping_timeout_s) as resp:
                result.update(ok=True, status=resp.status)
                result.pop("error", None)
                break
        except urllib.error.HTTPError as e:
            result["error"] = f"HTTP {e.code}"
        except Exception as e:  # refused, timeout, DNS, bad URL: a ping must never fail the job
            reason = getattr(e, "reason", None)
            result["error"] = f"{type(e).__name__}: {reason if reason is not None else e}"
        if attempt < tries:
            time.sleep(min(1.0, settings.jobs.ping_timeout_s / 5))
    if not result["ok"]:
        log_event(
            "job.ping_failed",
            _level=logging.WARNING,
            job=run.name,
            run_id=run.run_id,
            which=which,
            host=_where(url),
            error=result["error"],
            attempts=result["attempts"],
        )
    return result


@contextlib.contextmanager
def job(settings: Settings, name: str, **fields: Any) -> Iterator[JobRun]:
    """Run the ``with`` body as one run of job ``name``: log lines, pings, outcome (see module doc).

    ``fields`` go on both log lines (e.g. ``type="critical"``). The body's exception, if any,
    propagates unchanged once the end line is written and the end ping sent.
    """
    run = JobRun(name=name, run_id=str(uuid.uuid4()), fields=dict(fields))
    log_event("job.started", job=name, run_id=run.run_id, **run.fields)
    _record(run, ping(settings, run, "start"))
    t0 = time.monotonic()
    error: BaseException | None = None
    try:
        yield run
    except BaseException as e:
        error = e
        raise
    finally:
        run.outcome, run.exit_code = outcome_of(error)
        run.duration_s = round(time.monotonic() - t0, 3)
        message = None
        if error is not None and run.exit_code != ExitStatus.OK:
            message = str(getattr(error, "message", None) or error or type(error).__name__)[:500]
        level = logging.INFO if run.outcome in SUCCESS_OUTCOMES else logging.WARNING
        log_event(
            "job.finished",
            _level=level,
            job=name,
            run_id=run.run_id,
            outcome=run.outcome,
            exit_code=run.exit_code,
            duration_s=run.duration_s,
            error=message,
            **run.fields,
        )
        if run.outcome != "locked":
            which = "success" if run.outcome in SUCCESS_OUTCOMES else "fail"
            body = {
                "job": name,
                "run_id": run.run_id,
                "outcome": run.outcome,
                "exit_code": run.exit_code,
                "duration_s": run.duration_s,
                "error": message,
            }
            _record(run, ping(settings, run, which, body))
        from beststag_cli.metrics.jobstate import after_job

        after_job(settings, run)  # the textfile's per-job gauges; never raises


def _record(run: JobRun, result: dict[str, Any] | None) -> None:
    if result is not None:
        run.pings.append(result)
