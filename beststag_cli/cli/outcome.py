"""A failure → its one printed line and its exit code: the mapping every CLI door shares (issue 17).

`cli/main.py:run` (the Typer CLI) and `cli/readonly.py:_run` (the Typer-free read-only path, once it has
started answering) end a command the same way: one of our errors prints its kind, message and hint and
exits with its code; Ctrl-C is 130; anything else is a bug (one line, exit 1) unless a full disk explains
it. Typer-free and light (errors and render only) so the read-only path keeps its start-up cost
(tests/test_startup_imports.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import BestStagError, ExitStatus
from . import render

BUG_HINT = "this is a bug; run again with -v for the traceback and report it"


def report_failure(e: BaseException, data_dir: Path, *, verbose: bool = False) -> ExitStatus:
    """Print `e` as one line and give its exit code. `data_dir` is where a disk-full error is measured;
    `verbose` (-v) adds the traceback of our errors and of bugs. Call it from the `except` clause."""
    if isinstance(e, BestStagError):
        render.error(e.kind, e.message, e.hint)
        logging.getLogger("beststag").debug("error", exc_info=e)
        if verbose:
            _traceback(e)
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        render.error("interrupted", "interrupted")
        return ExitStatus.SIGINT
    from ..diskspace import as_disk_full

    full = as_disk_full(e, data_dir)
    if full is not None:  # SQLite's I/O error on a nearly full disk is not a bug: say what to do
        render.error(full.kind, full.message, full.hint)
        return full.exit_code
    render.error("internal_error", f"{type(e).__name__}: {e}", BUG_HINT)
    if verbose:
        _traceback(e)
    return ExitStatus.FAILED


def _traceback(e: BaseException) -> None:
    import traceback

    traceback.print_exception(e)
