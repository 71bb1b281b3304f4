"""Read-only `--json` commands without Typer, pydantic or pyairtable (issue 16, "Start-up time").

`beststag --json backup list`, `backup show ID` and `schedule show` only read the data dir and the
config, yet the full CLI pays for Typer (whose parameter coercion imports pydantic), the pydantic
config models and every command group: ~14× `python -c pass`. This path answers them from the
settings snapshot (`fastconfig`, the same fingerprint checks as the cache-hit path) and the same core
functions the Typer commands call, so the JSON document is the same.

It handles only the plainest invocations: global options before the command word, options it knows
with values it accepts. Anything else — the human table, `--help`, `--remote`, another option, a bad
value, no snapshot, an error (a backup that does not exist), a warning to print — returns None and
the full CLI runs the command again, which answers, fails or warns exactly as it always has.
`tests/test_startup_imports.py` keeps the heavy modules out of this path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_GLOBAL_FLAGS = {"--json": "json", "--quiet": "quiet", "-q": "quiet"}


def _globals(argv: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """(global options, the rest) when every option before the command word is one we know."""
    opts: dict[str, Any] = {"json": False, "quiet": False, "config": None}
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
            return None  # --verbose (debug logs), --version, --help…: the full CLI
        i += 1
    return opts, argv[i:]


def _options(rest: list[str], value_opts: dict[str, str]) -> tuple[dict[str, str], list[str]] | None:
    """Options of `value_opts` (each with one value) and the positionals; None on anything else."""
    found: dict[str, str] = {}
    positional: list[str] = []
    j = 0
    while j < len(rest):
        a = rest[j]
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        if a == "--":
            return None
        if name in value_opts:
            if eq:
                value = inline
            elif j + 1 < len(rest):
                j += 1
                value = rest[j]
            else:
                return None
            key = value_opts[name]
            if key in found:
                return None  # given twice: the full CLI decides which one wins
            found[key] = value
        elif a.startswith("-"):
            return None
        else:
            positional.append(a)
        j += 1
    return found, positional


def _backup_list(settings: Any, rest: list[str]) -> Any:
    from ..paths import BACKUP_TYPES

    parsed = _options(rest, {"--type": "type"})
    if parsed is None or parsed[1]:
        return None
    type_ = parsed[0].get("type")
    if type_ is not None and type_ not in BACKUP_TYPES:
        return None  # the full CLI says what is wrong
    from ..backup.layout import list_backups

    types = [type_] if type_ else list(BACKUP_TYPES)
    return [b.summary() for b in list_backups(settings.paths.backups, types=types)]


def _backup_show(settings: Any, rest: list[str]) -> Any:
    parsed = _options(rest, {})
    if parsed is None or len(parsed[1]) != 1:
        return None
    from ..backup.layout import find_backup

    return find_backup(settings.paths.backups, parsed[1][0]).summary()


def _schedule_show(settings: Any, rest: list[str]) -> Any:
    parsed = _options(rest, {"--count": "count", "-n": "count"})
    if parsed is None or parsed[1]:
        return None
    raw = parsed[0].get("count", "3")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 50:
        return None
    count = int(raw)
    from .. import clock
    from ..ops.schedule import lock_collisions, next_runs, scheduled_jobs

    jobs = scheduled_jobs(settings)
    now = clock.now().astimezone()  # cron reads schedules in the server's zone
    if lock_collisions(jobs, now):
        return None  # the full CLI prints the warning that goes with them
    return {"now": now.isoformat(timespec="seconds"),
            "jobs": [{"name": j.name, "schedule": j.cron, "command": j.command, "what": j.what, "lock": j.lock,
                      "next": [t.isoformat(timespec="minutes") for t in next_runs(j.cron, now, count)]}
                     for j in jobs],
            "lock_collisions": []}


_COMMANDS: dict[tuple[str, str], Callable[[Any, list[str]], Any]] = {
    ("backup", "list"): _backup_list,
    ("backup", "show"): _backup_show,
    ("schedule", "show"): _schedule_show,
}

#: the command words this path may answer (cli/__init__.py looks here before importing more)
WORDS = frozenset(w for pair in _COMMANDS for w in pair)


def try_read_only(argv: list[str]) -> int | None:
    """Exit code when answered here, None to run the full CLI."""
    parsed = _globals(argv)
    if parsed is None:
        return None
    opts, rest = parsed
    handler = _COMMANDS.get((rest[0], rest[1])) if len(rest) >= 2 else None
    if handler is None or not opts["json"] or any(a in ("-h", "--help") for a in rest):
        return None
    try:
        from ..fastconfig import fast_settings

        settings = fast_settings(opts["config"])
        if settings is None:
            return None
        data = handler(settings, rest[2:])
    except Exception:  # an error, or any surprise: the full CLI reports it properly
        return None
    if data is None:
        return None
    from . import render
    from .state import STATE

    STATE.json, STATE.quiet = True, opts["quiet"]
    render.emit_json(data)
    return 0
