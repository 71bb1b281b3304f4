"""`beststag doctor`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import OperationFailed
from . import render
from .state import STATE

_MARK = {"ok": "[green]ok[/]  ", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}


def _line(c: Any) -> str:
    from rich.markup import escape

    text = f"{_MARK[c.status]} {c.name}: {escape(c.message)}"
    return text + (f" [dim]→ {escape(c.hint)}[/]" if c.hint and c.status == "fail" else "")


def _print(lines: list[str], *, stderr: bool) -> None:
    from rich.console import Console

    # one line per check however narrow the terminal or the pipe: cron mail and grep read it whole
    Console(stderr=stderr, highlight=False, soft_wrap=True).print("\n".join(lines))


def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Set damaged files aside (the journal goes to "
                                                          "journal.sqlite.corrupt-<time>) and check again.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Skip the checks that need the network (base, "
                                                            "tables, Airtable's clock, Redis, S3).")] = False,
) -> None:
    """Check config, data dir, journal, cache, backups, host, base and services; exit 1 when unhealthy.

    Changes nothing (modes included) unless --repair is given.

    Example: beststag doctor --offline
    """
    from ..doctor import run_checks, run_repairs
    from ..fsutil import keep_modes

    keep_modes()  # look, do not fix: loading settings, logs and the journal must not chmod what doctor reports
    settings = STATE.settings
    gateway = None if offline else (lambda: STATE.gateway)
    checks = run_checks(settings, gateway)
    repaired: list[str] = []
    if repair:
        repaired = run_repairs(settings, STATE._gateway, checks)
        if repaired:
            checks = run_checks(settings, gateway)
    for line in repaired:
        render.note(f"repaired: {line}")
    failed = [c for c in checks if not c.ok]
    if STATE.json:
        render.emit_json({"healthy": not failed, "offline": offline, "checks": [c.to_dict() for c in checks],
                          **({"repaired": repaired} if repair else {})})
    elif STATE.quiet:  # cron: only what is wrong, on stderr
        if failed:
            _print([_line(c) for c in failed], stderr=True)
    else:
        _print([_line(c) for c in checks], stderr=False)
    if failed:
        first = failed[0]
        # the summary line alone must say what is wrong (stderr is all some callers keep); with --quiet the
        # failed checks' own lines are already there, on stderr
        detail = "" if STATE.quiet and not STATE.json else f" ({first.name}: {first.message})"
        raise OperationFailed(f"doctor: {len(failed)} check(s) failed: " + ", ".join(c.name for c in failed)
                              + detail, hint="" if detail == "" else first.hint)
