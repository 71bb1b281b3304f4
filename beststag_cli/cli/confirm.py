"""The one way a destructive command asks first: a question on a terminal, `--yes` otherwise."""

from __future__ import annotations

import sys

from ..errors import BadInput


def confirm(question: str, *, what: str, yes: bool) -> None:
    """Return when the user agreed (or passed --yes); raise BadInput (exit 2, nothing touched) otherwise.

    Without a terminal (cron, a pipe) there is nobody to answer: refusing with a line that says to
    pass --yes beats reading an answer from whatever stdin holds, or hanging.
    """
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise BadInput(f"{what}; without a terminal pass --yes", hint="nothing was changed")
    import typer

    if not typer.confirm(question, default=False, err=True):
        raise BadInput("nothing changed", hint="pass --yes to skip the question")
