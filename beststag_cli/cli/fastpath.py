"""`beststag cache get` on a hit, without Typer, pydantic, pyairtable or requests.

A hit must answer in well under 100 ms for the whole process. The usual path pays ~22 ms for
Typer, ~95 ms for the pydantic config models and the query spec, and would pay ~280 ms for
pyairtable on a miss. This path handles only the plainest `cache get` invocations; it reads the
settings snapshot (`fastconfig`) and the request's alias in the cache. Anything else — another
command, an option it does not know, no snapshot, no alias, an expired entry — returns None and
the normal CLI runs, which answers identically (and fills what this path needs next time).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .argv import split_globals

_VALUE_OPTS = {
    "--filter": "filter",
    "-f": "filter",
    "--fields": "fields",
    "--sort": "sort",
    "--max": "max",
    "--view": "view",
}


def _parse(argv: list[str]) -> dict[str, Any] | None:
    parsed = split_globals(argv, _VALUE_OPTS)
    if parsed is None:
        return None
    globals_, words = parsed
    if words[:2] != ["cache", "get"]:
        return None
    opts: dict[str, Any] = {
        "json": globals_.json,
        "quiet": globals_.quiet,
        "config": globals_.config,
        "fields": [],
        "sort": [],
        "filter": None,
        "max": None,
        "view": None,
        "table": None,
    }
    rest = words[2:]
    j = 0
    while j < len(rest):
        a = rest[j]
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        if name in _VALUE_OPTS:
            if eq:
                value = inline
            elif j + 1 < len(rest):
                value = rest[j + 1]
                j += 1
            else:
                return None
            key = _VALUE_OPTS[name]
            if key in ("fields", "sort"):
                opts[key].append(value)
            elif key == "max":
                if not value.isdigit() or int(value) < 1:
                    return None
                opts["max"] = int(value)
            else:
                opts[key] = value
        elif a.startswith("-"):
            return None  # --record, --ttl, --refresh, --verbose…: the full CLI decides
        elif opts["table"] is None:
            opts["table"] = a
        else:
            return None
        j += 1
    return opts if opts["table"] else None


def try_cache_hit(argv: list[str]) -> int | None:
    """Exit code when answered here, None to run the normal CLI."""
    opts = _parse(argv)
    if opts is None:
        return None
    try:
        from ..cache import build_cache
        from ..cache.manager import alias_digest
        from ..fastconfig import fast_settings
        from ..query.request import from_cli

        settings = fast_settings(opts["config"])
        if settings is None:
            return None
        # the Typer command's reading of the line (a bad filter raises here: the full CLI reports it)
        query = from_cli(opts["table"], opts["filter"], opts["fields"], opts["sort"], opts["max"], opts["view"])
        m = build_cache(settings)  # type: ignore[arg-type]
        res = m.lookup_alias(alias_digest(query))
        if res is None:
            return None
        if opts["json"]:
            sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, indent=2) + "\n")
        else:
            from .cache import render_result
            from .state import STATE

            STATE.quiet = opts["quiet"]
            render_result(res)
        return 0
    except Exception:  # any surprise: the full CLI will do it properly
        return None
