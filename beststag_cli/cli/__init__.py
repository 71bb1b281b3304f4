"""The `beststag` command line: parses arguments, calls core modules, renders results."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def app(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with the documented code."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if "cache" in args[:4]:
        from ..fsutil import harden_umask

        harden_umask()  # the fast path may create the journal or cache files: private whatever the umask
        from .fastpath import try_cache_hit

        code = try_cache_hit(args)
        if code is not None:
            sys.exit(code)
    from .readonly import WORDS, try_read_only

    if WORDS.intersection(args):
        code = try_read_only(args)  # backup list/show, schedule show without Typer or pydantic
        if code is not None:
            sys.exit(code)
    from .main import run

    sys.exit(run(args))
