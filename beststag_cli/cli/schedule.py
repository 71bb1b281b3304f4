"""`beststag schedule …`: the cron schedule from config, its next runs, and the crontab for this installation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput
from . import render, views
from .state import STATE

app = typer.Typer(
    help="The cron schedule from config: next runs, and crontab lines for this installation.\n\n"
    "Example: beststag schedule show",
    no_args_is_help=True,
)


@app.command()
def show(
    count: Annotated[
        int, typer.Option("--count", "-n", metavar="N", min=1, max=50, help="Next runs to list per job.")
    ] = 3,
) -> None:
    """List the scheduled jobs with their cron schedule, command and next runs (server local time).

    Example: beststag schedule show --count 5
    """
    views.schedule_show(views.schedule_data(STATE.settings, count), as_json=STATE.json)


@app.command()
def crontab(
    home: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Installation folder holding scripts/cron-job (default: this checkout)."),
    ] = None,
    env_file: Annotated[
        Path, typer.Option("--env-file", metavar="FILE", help="File with AIRTABLE_TOKEN=... that every job loads.")
    ] = Path("/etc/beststag/env"),
) -> None:
    """Print the crontab lines for this installation (the schedule from config, paths filled in).

    Example: beststag schedule crontab --env-file /etc/beststag/env | crontab -
    """
    from ..ops.schedule import WRAPPER, installation_home, render_crontab

    home = (home or installation_home()).absolute()
    if not (home / WRAPPER).is_file():
        render.note(f"[yellow]warning:[/] {home / WRAPPER} does not exist (yet); the lines call it")
    if not env_file.is_absolute():
        raise BadInput(
            f"--env-file {env_file} is not an absolute path",
            hint="cron runs from another folder; give the full path, e.g. /etc/beststag/env",
        )
    text = render_crontab(STATE.settings, home, env_file)
    if STATE.json:
        from ..ops.schedule import parse_crontab

        render.emit_json(
            {
                "home": str(home),
                "env_file": str(env_file),
                "crontab": text,
                "entries": [{"schedule": e.cron, "args": list(e.args)} for e in parse_crontab(text)],
            }
        )
        return
    sys.stdout.write(text)
    sys.stdout.flush()
