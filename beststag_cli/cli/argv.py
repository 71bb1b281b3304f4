"""The global options of a command line, for the Typer-free fast paths (stdlib only).

One reading of `--json`, `--quiet`/`-q` and `--config FILE` for cli/fastpath.py and cli/readonly.py,
matching cli/main.py: the root's options, accepted anywhere on the line (issue 16: `beststag backup
list --json`, a cron line ending in `--quiet`). Anything this reading is unsure of — `--verbose` (debug
logs), `--version`, `--help`, `--`, a repeated `--config`, an empty config value (the full CLI refuses
it) — makes it return None, and the caller leaves the line to the full CLI.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

_FLAGS = {"--json": "json", "--quiet": "quiet", "-q": "quiet"}
#: global options the fast paths leave to the full CLI: debug logging and tracebacks are its business
DECLINED = ("--verbose", "-v")


@dataclass
class GlobalOptions:
    json: bool = False
    quiet: bool = False
    config: str | None = None


def split_globals(argv: list[str], value_options: Collection[str] = ()) -> tuple[GlobalOptions, list[str]] | None:
    """(the global options, every other argument in order), or None to leave the line to the full CLI.

    ``value_options`` are the caller's command options that take a value: their value is never read as a
    global option (`--filter --json` is a filter, as click reads it).
    """
    opts = GlobalOptions()
    rest: list[str] = []
    config_seen = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _FLAGS:
            setattr(opts, _FLAGS[a], True)
        elif a == "--config" or a.startswith("--config="):
            if a == "--config":
                if i + 1 >= len(argv):
                    return None
                i += 1
                value = argv[i]
            else:
                value = a.split("=", 1)[1]
            if not value or config_seen:
                return None  # the full CLI refuses an empty value, and decides which repeated one wins
            opts.config, config_seen = value, True
        elif a in ("--", "-h", "--help", *DECLINED):
            return None
        elif a in value_options:
            rest.append(a)
            if i + 1 < len(argv):
                i += 1
                rest.append(argv[i])
        else:
            rest.append(a)
        i += 1
    return opts, rest
