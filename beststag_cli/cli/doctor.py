"""`beststag doctor`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import OperationFailed
from . import render
from .state import STATE


def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Set damaged files aside (the journal goes to "
                                                          "journal.sqlite.corrupt-<time>) and check again.")] = False,
) -> None:
    """Check config, token, base, tables, data dir, locks, journal and versions; exit 1 when unhealthy.

    Example: beststag doctor --repair
    """
    from ..doctor import run_checks, run_repairs

    checks = run_checks(STATE.settings, STATE.gateway)
    repaired: list[str] = []
    if repair:
        repaired = run_repairs(STATE.settings, STATE.gateway, checks)
        if repaired:
            checks = run_checks(STATE.settings, STATE.gateway)
    for line in repaired:
        render.note(f"repaired: {line}")
    failed = [c for c in checks if not c.ok]
    if STATE.json:
        render.emit_json({"healthy": not failed, "checks": [c.to_dict() for c in checks],
                          **({"repaired": repaired} if repair else {})})
    else:
        render.table("beststag doctor", ["check", "", "detail", "hint"],
                     [[c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail, c.hint] for c in checks])
    if failed:
        raise OperationFailed(f"doctor: {len(failed)} check(s) failed: " + ", ".join(c.name for c in failed),
                              hint=failed[0].hint)
