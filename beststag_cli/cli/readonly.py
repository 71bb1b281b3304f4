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

#: what a handler gives back: the output to print (given --json), once it is known that this path answers;
#: it returns the exit code (None: 0)
Output = Callable[[bool], int | None]
#: the options of these commands that take a value (their value is never a global option)
_VALUE_OPTIONS = ("--type", "--count", "-n", "--range", "-r")


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


def _runs_here(settings: Any) -> bool:
    """The snapshot holds what `metrics alerts` and `doctor` read, and no secret they need is missing from it:
    every secret comes from the environment (read again from there), no ping or alert URL is configured
    (those are secrets the snapshot leaves out: the full CLI calls them)."""
    from ..fastconfig import valid_for_commands

    return (
        valid_for_commands(settings._data)
        and settings.secrets_from_env
        and not settings.has_pings
        and not settings.has_notify_urls
    )


def _metrics_alerts(settings: Any, rest: list[str]) -> Output | None:
    parsed = _options(rest, {"--range": "range", "-r": "range"})
    if parsed is None or parsed[1] or not _runs_here(settings):
        return None
    range_ = parsed[0].get("range")  # a bad one is refused inside the job, as the Typer command does
    return lambda as_json: _run(settings, lambda: views.metrics_alerts(settings, range_))


def _doctor(settings: Any, rest: list[str]) -> Output | None:
    if not rest or any(a != "--offline" for a in rest) or not _runs_here(settings):
        return None  # the network checks (and --repair) need the gateway: the full CLI's

    def body() -> None:
        from ..doctor import run_checks

        views.doctor_report(run_checks(settings, None), [], offline=True, repair=False)

    return lambda as_json: _run(settings, body, look_only=True)


def _run(settings: Any, body: Callable[[], None], *, look_only: bool = False) -> int:
    """Run a command that writes as it goes (log lines, the journal): from here on this path answers, so it
    reports a failure itself, through `cli/outcome.py` as `cli/main.py:run` does (one line, the exit code)."""
    from ..fsutil import harden_umask, keep_modes
    from ..logs import setup_logging
    from .console_log import rich_handler
    from .outcome import report_failure
    from .state import STATE

    harden_umask()  # the journal and the log file are private whatever the umask, as under the full CLI
    if look_only:
        keep_modes()  # doctor: setting up logs must not chmod what it reports
    setup_logging(settings, quiet=STATE.quiet, verbose=False, json_mode=STATE.json, terminal_handler=rich_handler)
    try:
        body()
        return 0
    except (KeyboardInterrupt, Exception) as e:  # one line and the exit code, as the full CLI's
        return int(report_failure(e, settings.paths.data_dir))


_COMMANDS: dict[tuple[str, ...], Callable[[Any, list[str]], Output | None]] = {
    ("backup", "list"): _backup_list,
    ("backup", "show"): _backup_show,
    ("schedule", "show"): _schedule_show,
    ("metrics", "alerts"): _metrics_alerts,
    ("doctor",): _doctor,
}

#: the command words this path may answer (cli/__init__.py looks here before importing more)
WORDS = frozenset(w for pair in _COMMANDS for w in pair)


def try_read_only(argv: list[str]) -> int | None:
    """Exit code when answered here, None to run the full CLI."""
    parsed = split_globals(argv, _VALUE_OPTIONS)
    if parsed is None:
        return None
    opts, rest = parsed
    words = 2 if tuple(rest[:2]) in _COMMANDS else 1
    handler = _COMMANDS.get(tuple(rest[:words]))
    if handler is None:
        return None
    try:
        from ..fastconfig import fast_settings

        settings = fast_settings(opts.config)
        if settings is None:
            return None
        output = handler(settings, rest[words:])
    except Exception:  # an error, or any surprise: the full CLI reports it properly
        return None
    if output is None:
        return None
    from .state import STATE

    STATE.json, STATE.quiet = opts.json, opts.quiet
    return output(opts.json) or 0
