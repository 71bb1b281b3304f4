"""Read-only commands without Typer, pydantic or pyairtable (issue 16, "Start-up time").

`beststag backup list`, `backup show ID` and `schedule show` only read the data dir and the config,
yet the full CLI pays for Typer (whose parameter coercion imports pydantic), the pydantic config
models and every command group: ~14× `python -c pass`. This path answers them from the settings
snapshot (`fastconfig`, the same fingerprint checks as the cache-hit path) through the same core
functions and the same output functions (`cli/views.py`, `cli/render.py`) as the Typer commands, so
the JSON document and the human output (tab-separated rows when piped, no rich import) are the same.

It handles only the invocations it is sure of: global options (anywhere, `cli/argv.py`), options it
knows with values it accepts. Anything else — `--help`, `--remote`, another option, a bad value, no
snapshot, an error (a backup that does not exist) — returns None and the full CLI runs the command
again, which answers or fails exactly as it always has. Nothing is printed before the answer is
known, so a declined command has printed nothing. `tests/test_startup_imports.py` keeps the heavy
modules out of this path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import render, views
from .argv import split_globals

#: what a handler gives back: the output to print, once it is known that this path answers
Output = Callable[[bool], None]
#: the options of these commands that take a value (their value is never a global option)
_VALUE_OPTIONS = ("--type", "--count", "-n")


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


def _backup_list(settings: Any, rest: list[str]) -> Output | None:
    from ..paths import BACKUP_TYPES

    parsed = _options(rest, {"--type": "type"})
    if parsed is None or parsed[1]:
        return None
    type_ = parsed[0].get("type")
    if type_ is not None and type_ not in BACKUP_TYPES:
        return None  # the full CLI says what is wrong
    from ..backup.layout import list_backups

    types = [type_] if type_ else list(BACKUP_TYPES)
    data = [b.summary() for b in list_backups(settings.paths.backups, types=types)]
    return lambda as_json: render.emit_json(data) if as_json else views.backup_list(data)


def _backup_show(settings: Any, rest: list[str]) -> Output | None:
    parsed = _options(rest, {})
    if parsed is None or len(parsed[1]) != 1:
        return None
    from ..backup.layout import find_backup

    data = find_backup(settings.paths.backups, parsed[1][0]).summary()
    return lambda as_json: render.emit_json(data) if as_json else views.backup(data)


def _schedule_show(settings: Any, rest: list[str]) -> Output | None:
    parsed = _options(rest, {"--count": "count", "-n": "count"})
    if parsed is None or parsed[1]:
        return None
    raw = parsed[0].get("count", "3")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 50:
        return None  # the full CLI says what is wrong
    data = views.schedule_data(settings, int(raw))
    return lambda as_json: views.schedule_show(data, as_json=as_json)


_COMMANDS: dict[tuple[str, str], Callable[[Any, list[str]], Output | None]] = {
    ("backup", "list"): _backup_list,
    ("backup", "show"): _backup_show,
    ("schedule", "show"): _schedule_show,
}

#: the command words this path may answer (cli/__init__.py looks here before importing more)
WORDS = frozenset(w for pair in _COMMANDS for w in pair)


def try_read_only(argv: list[str]) -> int | None:
    """Exit code when answered here, None to run the full CLI."""
    parsed = split_globals(argv, _VALUE_OPTIONS)
    if parsed is None:
        return None
    opts, rest = parsed
    handler = _COMMANDS.get((rest[0], rest[1])) if len(rest) >= 2 else None
    if handler is None:
        return None
    try:
        from ..fastconfig import fast_settings

        settings = fast_settings(opts.config)
        if settings is None:
            return None
        output = handler(settings, rest[2:])
    except Exception:  # an error, or any surprise: the full CLI reports it properly
        return None
    if output is None:
        return None
    from .state import STATE

    STATE.json, STATE.quiet = opts.json, opts.quiet
    output(opts.json)
    return 0
