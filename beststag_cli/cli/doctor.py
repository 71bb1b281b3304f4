"""`beststag doctor`."""

from __future__ import annotations

from ..errors import OperationFailed
from . import render
from .state import STATE


def doctor() -> None:
    """Check config, token, base, tables, data dir, locks and versions; exit 1 when unhealthy.

    Example: beststag doctor
    """
    from ..doctor import run_checks

    checks = run_checks(STATE.settings, STATE.gateway)
    failed = [c for c in checks if not c.ok]
    if STATE.json:
        render.emit_json({"healthy": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        render.table("beststag doctor", ["check", "", "detail", "hint"],
                     [[c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail, c.hint] for c in checks])
    if failed:
        raise OperationFailed(f"doctor: {len(failed)} check(s) failed: " + ", ".join(c.name for c in failed),
                              hint=failed[0].hint)
