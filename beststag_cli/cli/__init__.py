"""The `beststag` command line: parses arguments, calls core modules, renders results."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def app(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with the documented code."""
    from .main import run

    sys.exit(run(list(argv) if argv is not None else None))
