"""cli/argv.py: the fast paths' one reading of the global options agrees with the Typer root's option set."""

from __future__ import annotations

from beststag_cli.cli import argv


def test_every_global_option_of_the_typer_root_is_read_or_declined() -> None:
    """A global option added to cli/main.py must be taught to cli/argv.py (or declined there), or the fast
    paths would take it for a command's argument."""
    from beststag_cli.cli.main import _GLOBALS, command

    root = {o for p in command().params if p.name in _GLOBALS for o in (*p.opts, *p.secondary_opts)}
    assert root == {*argv._FLAGS, "--config", *argv.DECLINED}


def test_global_options_anywhere_and_command_values_left_alone() -> None:
    got = argv.split_globals(["backup", "--json", "list", "--type", "--quiet", "-q", "--config=c.yaml"], ["--type"])
    assert got is not None
    opts, rest = got
    assert (opts.json, opts.quiet, opts.config) == (True, True, "c.yaml")
    assert rest == ["backup", "list", "--type", "--quiet"]  # `--quiet` is --type's value, as click reads it
    for line in (
        ["-v", "backup", "list"],
        ["backup", "list", "--verbose"],
        ["backup", "list", "--", "x"],
        ["--config", "a", "backup", "list", "--config", "b"],
        ["backup", "list", "--config"],
        ["--config=", "backup", "list"],
        ["backup", "list", "-h"],
    ):
        assert argv.split_globals(line) is None, line
