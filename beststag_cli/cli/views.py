"""The human output of the read-only commands, shared by their Typer commands and the fast path (cli/readonly.py).

No Typer here (and rich only through `render`, which skips it for piped output): one function per
output, so the two paths print the same thing by construction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import render


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def backup_list(data: list[dict[str, Any]]) -> None:
    if not data:
        render.note("no backups yet; `beststag backup run --type complete` makes one")
        return
    render.table(
        None,
        ["id", "type", "time", "status", "tables", "records", "size"],
        [
            [
                d["id"],
                d["type"],
                d["id"].split("/", 1)[1],
                d["status"],
                len(d.get("tables", {})),
                f"{d.get('records', 0):,}",
                size(d.get("bytes") or 0),
            ]
            for d in data
        ],
    )
    for d in data:
        if d["status"] == "broken":
            render.note(f"[yellow]broken:[/] {d['id']}: {d.get('error')} (skipped as a parent and by cleanup)")


def backup(d: dict[str, Any]) -> None:
    render.line(
        f"[bold]{d['id']}[/]  {d['status']}  base {d.get('base')}  {d.get('records', 0):,} records  "
        f"{size(d.get('bytes') or 0)}  parent {d.get('parent') or '-'}"
    )
    rows = [
        [n, t.get("mode", ""), t.get("status", ""), t.get("records", 0), size(t.get("bytes") or 0), t.get("error", "")]
        for n, t in d.get("tables", {}).items()
    ]
    render.table(None, ["table", "mode", "status", "records", "size", "error"], rows)
    if d.get("path"):
        render.line(f"[dim]{d['path']}[/]")
    for w in d.get("warnings", []):
        render.note(f"[yellow]warning:[/] {w}")
    remote = d.get("remote")
    if remote and remote.get("status") == "uploaded":
        render.line(
            f"[dim]uploaded to {remote['url']} ({remote['files']} files, {remote['attachments']} new "
            f"attachment files, {size(remote['bytes'])})[/]"
        )


ScheduleData = tuple[datetime, list[tuple[Any, list[datetime]]], list[tuple[datetime, list[str]]]]


def schedule_data(settings: Any, count: int) -> ScheduleData:
    """`schedule show`'s figures: now, every scheduled job with its next ``count`` runs, the lock collisions."""
    from .. import clock
    from ..ops.schedule import lock_collisions, next_runs, scheduled_jobs

    jobs = scheduled_jobs(settings)
    now = clock.now().astimezone()  # cron reads schedules in the server's zone
    return now, [(j, next_runs(j.cron, now, count)) for j in jobs], lock_collisions(jobs, now)


def schedule_show(data: ScheduleData, *, as_json: bool) -> None:
    now, rows, collisions = data
    if as_json:
        render.emit_json(schedule_json(now, rows, collisions))
    else:
        schedule(now, rows)
    schedule_collisions(collisions)


def schedule(now: datetime, rows: list[tuple[Any, list[datetime]]]) -> None:
    render.table(
        f"schedule (now {now:%Y-%m-%d %H:%M %Z})",
        ["job", "schedule", "command", "next runs"],
        [
            [j.name, j.cron, f"beststag {j.command}", ", ".join(f"{t:%a %Y-%m-%d %H:%M}" for t in nxt)]
            for j, nxt in rows
        ],
    )


def schedule_collisions(collisions: list[tuple[datetime, list[str]]]) -> None:
    if collisions:
        t, names = collisions[0]
        render.note(
            f"[yellow]warning:[/] {len(collisions)} start(s) in the next year where jobs sharing the "
            f"backup lock start in the same minute (first {t:%Y-%m-%d %H:%M}: {', '.join(names)}); "
            "all but one would exit 75 and skip that turn: move one schedule in the config"
        )


def schedule_json(
    now: datetime, rows: list[tuple[Any, list[datetime]]], collisions: list[tuple[datetime, list[str]]]
) -> dict[str, Any]:
    return {
        "now": now.isoformat(timespec="seconds"),
        "jobs": [
            {
                "name": j.name,
                "schedule": j.cron,
                "command": j.command,
                "what": j.what,
                "lock": j.lock,
                "next": [t.isoformat(timespec="minutes") for t in nxt],
            }
            for j, nxt in rows
        ],
        "lock_collisions": [{"at": t.isoformat(timespec="minutes"), "jobs": names} for t, names in collisions],
    }


# --------------------------------------------------------------------------------------------
# the read-only commands that run as a job or look at the installation: their whole body is shared,
# since what they write (log lines, alert state, the job's gauges) must be the same on both paths


def metrics_alerts(settings: Any, range_: str | None) -> None:
    """`metrics alerts`: one run of the alerts job; raises AlertsFiring (exit 1) while any fires."""
    from ..ops.jobs import job

    with job(settings, "alerts"):
        _alerts(settings, range_)


def _alerts(settings: Any, range_: str | None) -> None:
    from ..errors import AlertsFiring
    from ..metrics.alerts import check, firing_line
    from ..metrics.collect import open_journal
    from ..metrics.windows import check_range
    from .state import STATE

    if range_ is not None:
        check_range(range_)
    journal, _ = open_journal(settings, None)
    result = check(settings, journal, range_)
    if STATE.json:
        render.emit_json(result)
    else:
        render.table(
            f"alerts — last {result['range']}",
            ["alert", "state", "value", "threshold", "detail"],
            [
                [
                    a["name"],
                    "[bold red]FIRING[/]" if a["firing"] else "[green]ok[/]",
                    "—" if a["value"] is None else f"{a['value']:g}",
                    f"{a['threshold']:g}",
                    a["message"],
                ]
                for a in result["alerts"]
            ],
        )
    for n in result["notifications"]:
        if n["ok"]:
            render.note(f"notified {n['url']}: {n['alert']} {n['status']}")
        else:
            render.note(f"[yellow]could not notify[/] {n['url']} ({n['alert']} {n['status']}): {n['error']}")
    if result["firing"] and STATE.quiet and not STATE.json:
        # cron mails this: each firing alert's figure and threshold, then the one-line error
        import sys

        from ..logs import redact

        for a in result["alerts"]:
            if a["firing"]:
                sys.stderr.write(redact(firing_line(a)) + "\n")
        sys.stderr.flush()
    if result["firing"]:
        raise AlertsFiring(f"{len(result['firing'])} alert(s) firing: {', '.join(result['firing'])}")


_MARK = {"ok": "[green]ok[/]  ", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}


def doctor_line(c: Any) -> str:
    from .plaintext import escape

    text = f"{_MARK[c.status]} {c.name}: {escape(c.message)}"
    return text + (f" [dim]→ {escape(c.hint)}[/]" if c.hint and c.status == "fail" else "")


def _print_whole(lines: list[str], *, stderr: bool) -> None:
    """One line per check however narrow the terminal or the pipe: cron mail and grep read it whole."""
    import sys

    from .plaintext import never_terminal, printed

    text = "\n".join(lines)
    stream = sys.stderr if stderr else sys.stdout
    shown = printed(text) if never_terminal(stream) else None
    if shown is None:
        from rich.console import Console

        Console(stderr=stderr, highlight=False, soft_wrap=True).print(text)
        return
    stream.write(shown)
    stream.flush()


def doctor_report(checks: list[Any], repaired: list[str], *, offline: bool, repair: bool) -> None:
    """`doctor`'s output; raises OperationFailed (exit 1) when a check failed."""
    from ..errors import OperationFailed
    from .state import STATE

    for line in repaired:
        render.note(f"repaired: {line}")
    failed = [c for c in checks if not c.ok]
    if STATE.json:
        render.emit_json(
            {
                "healthy": not failed,
                "offline": offline,
                "checks": [c.to_dict() for c in checks],
                **({"repaired": repaired} if repair else {}),
            }
        )
    elif STATE.quiet:  # cron: only what is wrong, on stderr
        if failed:
            _print_whole([doctor_line(c) for c in failed], stderr=True)
    else:
        _print_whole([doctor_line(c) for c in checks], stderr=False)
    if failed:
        first = failed[0]
        # the summary line alone must say what is wrong (stderr is all some callers keep); with --quiet the
        # failed checks' own lines are already there, on stderr
        detail = "" if STATE.quiet and not STATE.json else f" ({first.name}: {first.message})"
        raise OperationFailed(
            f"doctor: {len(failed)} check(s) failed: " + ", ".join(c.name for c in failed) + detail,
            hint="" if detail == "" else first.hint,
        )
