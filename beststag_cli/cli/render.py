"""Output: machine JSON on stdout with --json, rich tables otherwise; messages on stderr."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .state import STATE

if TYPE_CHECKING:
    from ..progress import Reporter


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    # soft_wrap: a message stays one line, however narrow the terminal (cron mails, log scrapers)
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr)


def emit_json(data: Any) -> None:
    STATE.emitted = True
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A human table on stdout (not shown with --quiet: cron mails whatever is printed)."""
    if STATE.quiet:
        return
    from rich.table import Table

    t = Table(title=title, show_lines=False, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    _console().print(t)


def line(text: str) -> None:
    """A human line on stdout (not shown with --json or --quiet)."""
    if not STATE.json and not STATE.quiet:
        _console().print(text)


def note(text: str) -> None:
    """An informational line on stderr (hidden by --quiet)."""
    if not STATE.quiet:
        _console(stderr=True).print(text)


def error(kind: str, message: str, hint: str = "") -> None:
    from ..logs import redact

    message, hint = redact(message), redact(hint)
    if STATE.json and not STATE.emitted:  # stdout holds one JSON document, never two
        emit_json({"error": {"type": kind, "message": message, "hint": hint}})
        return
    from rich.markup import escape

    text = f"[bold red]error:[/] {escape(message)}"
    if hint:
        text += f" [dim]({escape(hint)})[/]"
    _console(stderr=True).print(text)


def progress() -> AbstractContextManager[Reporter]:
    """Progress of long work: a live display on a terminal; JSON lines in the log otherwise (pipes, cron, --quiet).

    ``with render.progress() as reporter: core_call(..., progress=reporter)``
    """
    if sys.stderr.isatty() and not STATE.json and not STATE.quiet:
        from .progress_view import live_progress

        STATE.settings  # noqa: B018 - sets up logging first: the display draws through the log handler's Console
        return live_progress()
    from ..progress import LogReporter

    return nullcontext(LogReporter())
