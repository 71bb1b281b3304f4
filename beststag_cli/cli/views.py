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
    render.table(None, ["id", "type", "time", "status", "tables", "records", "size"],
                 [[d["id"], d["type"], d["id"].split("/", 1)[1], d["status"], len(d.get("tables", {})),
                   f"{d.get('records', 0):,}", size(d.get("bytes") or 0)] for d in data])
    for d in data:
        if d["status"] == "broken":
            render.note(f"[yellow]broken:[/] {d['id']}: {d.get('error')} (skipped as a parent and by cleanup)")


def backup(d: dict[str, Any]) -> None:
    render.line(f"[bold]{d['id']}[/]  {d['status']}  base {d.get('base')}  {d.get('records', 0):,} records  "
                f"{size(d.get('bytes') or 0)}  parent {d.get('parent') or '-'}")
    rows = [[n, t.get("mode", ""), t.get("status", ""), t.get("records", 0), size(t.get("bytes") or 0),
             t.get("error", "")] for n, t in d.get("tables", {}).items()]
    render.table(None, ["table", "mode", "status", "records", "size", "error"], rows)
    if d.get("path"):
        render.line(f"[dim]{d['path']}[/]")
    for w in d.get("warnings", []):
        render.note(f"[yellow]warning:[/] {w}")
    remote = d.get("remote")
    if remote and remote.get("status") == "uploaded":
        render.line(f"[dim]uploaded to {remote['url']} ({remote['files']} files, {remote['attachments']} new "
                    f"attachment files, {size(remote['bytes'])})[/]")


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
    render.table(f"schedule (now {now:%Y-%m-%d %H:%M %Z})", ["job", "schedule", "command", "next runs"],
                 [[j.name, j.cron, f"beststag {j.command}", ", ".join(f"{t:%a %Y-%m-%d %H:%M}" for t in nxt)]
                  for j, nxt in rows])


def schedule_collisions(collisions: list[tuple[datetime, list[str]]]) -> None:
    if collisions:
        t, names = collisions[0]
        render.note(f"[yellow]warning:[/] {len(collisions)} start(s) in the next year where jobs sharing the "
                    f"backup lock start in the same minute (first {t:%Y-%m-%d %H:%M}: {', '.join(names)}); "
                    "all but one would exit 75 and skip that turn: move one schedule in the config")


def schedule_json(now: datetime, rows: list[tuple[Any, list[datetime]]],
                  collisions: list[tuple[datetime, list[str]]]) -> dict[str, Any]:
    return {"now": now.isoformat(timespec="seconds"),
            "jobs": [{"name": j.name, "schedule": j.cron, "command": j.command, "what": j.what,
                      "lock": j.lock, "next": [t.isoformat(timespec="minutes") for t in nxt]}
                     for j, nxt in rows],
            "lock_collisions": [{"at": t.isoformat(timespec="minutes"), "jobs": names} for t, names in collisions]}
