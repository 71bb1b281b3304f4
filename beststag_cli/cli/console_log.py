"""The rich console log handler the CLI installs on a terminal (`logs.setup_logging(terminal_handler=...)`).

It lives in the CLI, not in `logs.py`, because the core never imports rich
(tests/test_import_contracts.py). rich is imported only when a terminal handler is made: a cron run
(no terminal) never pays for it.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def rich_handler(stream: TextIO) -> logging.Handler:
    """A RichHandler printing to ``stream`` (a terminal); `logs` sets its formatter and level."""
    from rich.console import Console
    from rich.logging import RichHandler

    console = Console(file=stream, stderr=stream is sys.stderr, force_terminal=True, soft_wrap=True)
    # rich_tracebacks would render from exc_info and bypass the redacted exc_text; markup off: a
    # table name or an error with [brackets] is text, not styling
    return RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)


def rich_console() -> Console | None:
    """The Console the installed terminal log handler prints through (None when logging is not on a terminal).

    A live display (progress bars) must draw through this same Console: rich then prints each log
    line above the display; a second Console on the same terminal would tear it. Found on the root
    logger's handlers (`logs` marks the terminal one), so it is gone once `logs.teardown_logging`
    removes the handler.
    """
    for h in logging.getLogger().handlers:
        console = getattr(h, "console", None) if getattr(h, "_beststag_terminal", False) else None
        if console is not None:
            return console
    return None
