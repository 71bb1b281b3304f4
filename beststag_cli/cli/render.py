"""Output: machine JSON on stdout with --json, rich tables otherwise; messages on stderr.

Piped output is written without importing rich when `plaintext` is sure of what rich would print
(the read-only fast path, cli/readonly.py, renders through these same functions and must stay within
its start-up budget); on a terminal, or for text only rich can render, rich does it.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .plaintext import escape, markup_plain, never_terminal, printed
from .state import STATE

if TYPE_CHECKING:
    from ..progress import Reporter


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    # soft_wrap: a message stays one line, however narrow the terminal (cron mails, log scrapers), and a
    # line piped to another program is never cut at 80 columns (an id split in two cannot be copied)
    console.soft_wrap = stderr or not console.is_terminal
    return console


def _plain(cell: Any) -> str:
    """A cell as rich would show it (markup applied, no colour), on one line so a row stays a line."""
    text = "" if cell is None else str(cell)
    plain = markup_plain(text)
    if plain is not None:
        text = plain
    else:
        from rich.errors import MarkupError
        from rich.text import Text

        try:
            text = Text.from_markup(text).plain
        except MarkupError:  # not markup after all: show it as given
            pass
    return " ".join(text.replace("\t", " ").splitlines())


def _rows_tsv(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Full rows for a pipe, like gh: a header line, then one tab-separated record a line, never wrapped.
    The title goes to stderr, so stdout stays one header and its rows (`cut -f1`, `grep`, `awk`)."""
    if title:
        note(title)
    out = ["\t".join(_plain(c) for c in columns)]
    out += ["\t".join(_plain(v) for v in r) for r in rows]
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def cell(v: Any, width: int = 60) -> str:
    """A record's value as a table cell: escaped (data is never read as rich markup: "[urgent] call"
    must stay whole), lists joined, one line; cut to ``width`` only on a terminal (a pipe gets it all)."""
    if v is None:
        return ""
    if isinstance(v, list):
        v = ", ".join(str(x.get("filename") or x.get("id") or x) if isinstance(x, dict) else str(x) for x in v)
    text = " ".join(str(v).splitlines())
    if len(text) > width and _console().is_terminal:
        text = text[: width - 1] + "…"
    return escape(text)


def emit_json(data: Any) -> None:
    STATE.emitted = True
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A human table on stdout (not shown with --quiet: cron mails whatever is printed); on a terminal a
    rich table, otherwise tab-separated full rows."""
    if STATE.quiet:
        return
    if never_terminal(sys.stdout):
        _rows_tsv(title, columns, rows)
        return
    console = _console()
    if not console.is_terminal:
        _rows_tsv(title, columns, rows)
        return
    from rich.table import Table

    t = Table(title=title, show_lines=False, title_justify="left")
    for i, c in enumerate(columns):
        # the first column is the key (a backup or record id): rich narrows the others before folding it
        t.add_column(c, overflow="fold", no_wrap=i == 0)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def line(text: str) -> None:
    """A human line on stdout (not shown with --json or --quiet)."""
    if not STATE.json and not STATE.quiet:
        _print(text, stderr=False)


def note(text: str) -> None:
    """An informational line on stderr (hidden by --quiet)."""
    if not STATE.quiet:
        _print(text, stderr=True)


def _print(text: str, *, stderr: bool) -> None:
    """One message through rich, or as rich would print it when the stream is no terminal and the text plain."""
    stream = sys.stderr if stderr else sys.stdout
    shown = printed(text) if never_terminal(stream) else None
    if shown is None:
        _console(stderr=stderr).print(text)
        return
    stream.write(shown)
    stream.flush()


def error(kind: str, message: str, hint: str = "") -> None:
    from ..logs import redact

    message, hint = redact(message), redact(hint)
    if STATE.json and not STATE.emitted:  # stdout holds one JSON document, never two
        emit_json({"error": {"type": kind, "message": message, "hint": hint}})
        return
    text = f"[bold red]error:[/] {escape(message)}"
    if hint:
        text += f" [dim]({escape(hint)})[/]"
    _print(text, stderr=True)  # piped (cron): no rich import, so a failing fast-path command stays fast


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
