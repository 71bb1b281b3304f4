"""The root command: global options, sub-command groups, and the one error → exit code mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exc  # typer >= 0.26 vendors click (pyproject asks for it)

from .. import __version__
from ..errors import ExitStatus
from . import render
from .outcome import report_failure
from .state import STATE

root = typer.Typer(
    name="beststag",
    help="Cache, query optimizer, backups and metrics for the BestStag Airtable base.\n\n"
    "Example: beststag --json cache get Usuários --max 5",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"beststag {__version__}")
        raise typer.Exit(ExitStatus.OK)


@root.callback()
def _globals(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", metavar="FILE", help="Config file (default: $BESTSTAG_CONFIG, then ./config/beststag.yaml)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr (cron).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE.config = config
    STATE.json = json_out
    STATE.quiet = quiet
    STATE.verbose = verbose


def _register() -> None:
    from . import backup, cache, doctor, feed, metrics, query, records, sandbox, schedule, serve

    root.add_typer(cache.app, name="cache")
    root.add_typer(query.app, name="query")
    root.add_typer(records.app, name="records")
    root.add_typer(backup.app, name="backup")
    root.add_typer(metrics.app, name="metrics")
    root.add_typer(sandbox.app, name="sandbox")
    root.add_typer(schedule.app, name="schedule")
    root.add_typer(feed.app, name="feed")
    root.command("serve")(serve.serve)
    root.command("doctor")(doctor.doctor)


_register()

# The root's options an operator may put anywhere before `--`, as in gh/llm (`beststag backup list --json`,
# a cron line ending in `--quiet`). `--version` and the completion options stay root-only.
_GLOBALS = {"config": "config", "json_out": "json", "quiet": "quiet", "verbose": "verbose"}


def _set_global(ctx: Any, param: Any, value: Any) -> None:
    """Callback of a global option given after a sub-command: only a given value overrides the root's."""
    if param.name == "config":
        if value is not None:
            STATE.config = Path(value)
    elif value:
        setattr(STATE, _GLOBALS[param.name], True)


def _inherit_globals(group: Any, globals_: list[Any]) -> None:
    """Give every group and command below ``group`` a copy of the root's global options (one place, not per
    command): click then parses them wherever they appear, values (`--config FILE`) and `--` included."""
    import copy

    for cmd in group.commands.values():
        for hidden in [p for p in cmd.params if p.param_type_name == "argument" and p.hidden]:
            hidden.get_usage_pieces = lambda ctx: []  # an undocumented old form stays out of the usage line too
        for p in globals_:
            inherited = copy.copy(p)
            inherited.expose_value = False  # the command functions never see them; STATE does
            inherited.callback = _set_global
            inherited.rich_help_panel = "Global options"
            cmd.params.append(inherited)
        if hasattr(cmd, "commands"):
            _inherit_globals(cmd, globals_)


def _no_type_placeholders() -> None:
    """typer 0.29's rich help prints a type after every parameter: `--json <bool>` (a flag takes no value; it
    reads as `--json true`) and `ID <str>` next to the name. Flags show nothing; a value shows its metavar
    (TABLE, FILE, SECONDS), one style everywhere (tests/cli/test_conventions.py holds every command to it)."""
    from typer.core import TyperArgument, TyperOption

    for cls in (TyperOption, TyperArgument):
        shown = getattr(cls, "display_type_rich", None)
        if shown is None or getattr(shown, "_beststag", False):  # older typer, or already done
            continue

        def display_type_rich(self: Any, ctx: Any, _shown: Any = shown) -> str | None:
            if getattr(self, "is_flag", False) or getattr(self, "count", False):
                return None
            if self.param_type_name == "argument" and self.metavar:
                return None  # the name column already shows it
            return _shown(self, ctx)

        display_type_rich._beststag = True  # type: ignore[attr-defined]
        cls.display_type_rich = display_type_rich  # type: ignore[method-assign]


_COMMAND: Any = None


def command() -> Any:
    """The click command tree, built once (typer would rebuild it on every call)."""
    global _COMMAND
    if _COMMAND is None:
        _no_type_placeholders()
        cmd = typer.main.get_command(root)
        _inherit_globals(cmd, [p for p in cmd.params if p.name in _GLOBALS])
        _COMMAND = cmd
    return _COMMAND


def _data_dir() -> Path:
    """Where a stray failure's full disk is measured (the journal's, the metrics', doctor's SQLite)."""
    settings = STATE._settings  # only if already loaded: loading it here could fail for its own reasons
    return settings.paths.data_dir if settings is not None else Path.cwd()


def _status(code: int | None) -> ExitStatus:
    """click's own ends (``ctx.exit()`` after --help, a command's return value) as a member of the table."""
    if code is None:
        return ExitStatus.OK
    try:
        return ExitStatus(code)
    except ValueError:  # a `typer.Exit(n)` outside the table is a bug: never exit with an undocumented code
        render.error(
            "internal_error",
            f"exit code {code} is not one of beststag's",
            "this is a bug; run again with -v and report it",
        )
        return ExitStatus.FAILED


def run(argv: list[str] | None = None) -> ExitStatus:
    """Run the CLI; every failure becomes one line and its exit code, always an ExitStatus member."""
    STATE.reset()
    from ..fsutil import harden_umask, keep_modes, restore_umask

    umask = harden_umask()  # files libraries create (SQLite, diskcache) are private too, whatever the umask
    try:
        rv = command().main(args=argv, prog_name="beststag", standalone_mode=False)
        return _status(rv if isinstance(rv, int) else None)
    except typer.Exit as e:
        return _status(e.exit_code)
    except typer.Abort:
        render.error("aborted", "aborted")
        return ExitStatus.SIGINT
    except click_exc.ClickException as e:
        if STATE.json:
            render.error("usage", e.format_message(), "see --help")
        else:
            e.show()
        return ExitStatus.BAD_INPUT
    except (KeyboardInterrupt, Exception) as e:  # ours, Ctrl-C, a bug (cli/outcome.py)
        return report_failure(e, _data_dir(), verbose=STATE.verbose)
    finally:
        STATE.close()
        restore_umask(umask)
        keep_modes(False)  # `doctor` turns tightening off for its run (and its settings snapshot) only
