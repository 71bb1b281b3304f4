"""`beststag doctor`."""

from __future__ import annotations

from typing import Annotated

import typer

from .state import STATE


def doctor(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Set damaged files aside (the journal goes to journal.sqlite.corrupt-<time>) and check again.",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Skip the checks that need the network (base, tables, Airtable's clock, Redis, S3)."
        ),
    ] = False,
) -> None:
    """Check config, data dir, journal, cache, backups, host, base and services; exit 1 when unhealthy.

    Changes nothing (modes included) unless --repair is given.

    Example: beststag doctor --offline
    """
    from ..doctor import run_checks, run_repairs
    from ..fsutil import keep_modes
    from .views import doctor_report

    keep_modes()  # look, do not fix: loading settings, logs and the journal must not chmod what doctor reports
    settings = STATE.settings
    gateway = None if offline else (lambda: STATE.gateway)
    checks = run_checks(settings, gateway)
    repaired: list[str] = []
    if repair:
        repaired = run_repairs(settings, STATE._gateway, checks)
        if repaired:
            checks = run_checks(settings, gateway)
    doctor_report(checks, repaired, offline=offline, repair=repair)  # shared with the fast path (cli/readonly.py)
