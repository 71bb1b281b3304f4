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

_GLOBAL_FLAGS = {"--json": "json", "--quiet": "quiet", "-q": "quiet"}
_VALUE_OPTS = {"--filter": "filter", "-f": "filter", "--fields": "fields", "--sort": "sort", "--max": "max",
               "--view": "view"}


def _parse(argv: list[str]) -> dict[str, Any] | None:
    opts: dict[str, Any] = {"json": False, "quiet": False, "config": None, "fields": [], "sort": [],
                            "filter": None, "max": None, "view": None, "table": None}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        a = argv[i]
        if a in _GLOBAL_FLAGS:
            opts[_GLOBAL_FLAGS[a]] = True
        elif a == "--config" and i + 1 < len(argv) and argv[i + 1]:
            opts["config"] = argv[i + 1]
            i += 1
        elif a.startswith("--config=") and a != "--config=":  # an empty value is the full CLI's to refuse
            opts["config"] = a.split("=", 1)[1]
        else:
            return None
        i += 1
    if argv[i:i + 2] != ["cache", "get"]:
        return None
    rest = argv[i + 2:]
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
        elif a in _GLOBAL_FLAGS:  # global options go anywhere (`cache get T --quiet` from cron), as in the CLI
            opts[_GLOBAL_FLAGS[a]] = True
        elif a.startswith("-"):
            return None  # --record, --ttl, --refresh, --config, --help…: the full CLI decides
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
        from ..cache.alias import alias_parts
        from ..cache.manager import alias_digest
        from ..fastconfig import fast_settings

        settings = fast_settings(opts["config"])
        if settings is None:
            return None
        parts = alias_parts(opts["table"], None, opts["filter"], opts["fields"], opts["sort"], opts["max"],
                            opts["view"])
        if parts is None:
            return None
        m = build_cache(settings)  # type: ignore[arg-type]
        res = m.lookup_alias(alias_digest(parts))
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
