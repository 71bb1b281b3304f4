"""CLI conventions (issue 16) through the real console script: global options anywhere, help that
reads right, piped output in full rows, shell completion; and a gate over every command's help."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: a value placeholder: an explicit UPPERCASE name (TABLE, FILE, SECONDS, FIELD,...), never typer's `<str>`
METAVAR_RE = re.compile(r"^[A-Z][A-Z_]*(,\.\.\.)?$")


def beststag(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    """The console script in a new process, stdout and stderr pipes (not a terminal), the test's env."""
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args],
        env=kw.pop("env", os.environ.copy()),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, (*path, name))


@pytest.fixture(scope="module")
def tree() -> list[tuple[tuple[str, ...], Any]]:
    from beststag_cli.cli.main import command

    return list(_walk(command()))


def _own(cmd: Any) -> list[Any]:
    """A command's own parameters (the inherited global options are checked once, at the root)."""
    return [p for p in cmd.params if getattr(p, "rich_help_panel", None) != "Global options"]


# ---------------------------------------------------------------- the gate over every command


REPO = Path(__file__).resolve().parents[2]


def test_every_command_has_help_and_an_example(tree: list[tuple[tuple[str, ...], Any]]) -> None:
    for path, cmd in tree:  # groups and the root too: `beststag cache --help` shows a line to start from
        name = " ".join(path) or "beststag"
        assert (cmd.help or "").strip(), f"{name} has no help text"
        assert re.search(r"^Example: .*beststag ", cmd.help, re.M), f"{name} has no 'Example:' line"


def test_every_command_is_in_the_cli_reference(tree: list[tuple[tuple[str, ...], Any]]) -> None:
    reference = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (beststag(?: [\w-]+)*)$", reference, re.M))
    commands = {" ".join(("beststag", *path)) for path, cmd in tree if not getattr(cmd, "hidden", False)}
    assert commands - headings == set(), "missing from docs/cli.md: run `cog -r README.md docs/cli.md`"
    assert headings - commands == set(), "docs/cli.md names commands that are gone: run `cog -r README.md docs/cli.md`"
    for path, cmd in tree:  # each section holds the command's help, as --help shows it
        section = reference.split(f"## {' '.join(('beststag', *path))}\n", 1)[1].split("\n## ", 1)[0]
        assert cmd.help.strip() in section, path


def test_generated_docs_are_current_whatever_the_terminal_and_environment(tmp_path: Path) -> None:
    # what a developer's shell may hold must not change the generated text: width, colours, data dir, cwd
    env = {
        **os.environ,
        "COLUMNS": "37",
        "LINES": "5",
        "TERM": "dumb",
        "FORCE_COLOR": "1",
        "NO_COLOR": "",
        "BESTSTAG_DATA_DIR": str(tmp_path / "elsewhere"),
        "PYTHONPATH": str(REPO),
    }
    docs = [str(REPO / "README.md"), str(REPO / "docs" / "cli.md")]
    done = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", *docs],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\nregenerate with `cog -r README.md docs/cli.md`"


def test_no_flag_shows_a_value_placeholder_and_values_are_named_alike(tree: list[tuple[tuple[str, ...], Any]]) -> None:
    import typer

    for path, cmd in tree:
        name = " ".join(path) or "beststag"
        ctx = typer.Context(cmd, info_name=name)
        for p in [*_own(cmd), cmd.get_help_option(ctx)]:
            if p is None:
                continue
            shown = p.display_type_rich(ctx) if hasattr(p, "display_type_rich") else None
            if getattr(p, "is_flag", False):
                assert not shown, f"{name} {p.opts[0]} is a flag but its help shows {shown!r}"
            elif p.name not in ("install_completion", "show_completion"):  # typer's own (a shell name)
                assert p.metavar and METAVAR_RE.match(p.metavar), f"{name} {p.name}: placeholder {p.metavar!r}"
                assert shown in (None, p.metavar), f"{name} {p.name}: help shows {shown!r}"


def test_a_short_option_means_one_thing_across_the_cli(tree: list[tuple[tuple[str, ...], Any]]) -> None:
    meaning: dict[str, tuple[str, str]] = {}
    for path, cmd in tree:
        for p in cmd.params:
            if p.param_type_name != "option":
                continue
            long = next((o for o in p.opts if o.startswith("--")), "")
            for short in (o for o in [*p.opts, *p.secondary_opts] if re.fullmatch(r"-[^-]", o)):
                where = " ".join(path) or "beststag"
                seen = meaning.setdefault(short, (long, where))
                assert seen[0] == long, f"{short} is {seen[0]} in `{seen[1]}` but {long} in `{where}`"


def test_lists_of_tables_are_passed_one_way(tree: list[tuple[tuple[str, ...], Any]]) -> None:
    for path, cmd in tree:
        for p in _own(cmd):
            if p.param_type_name == "argument" and not p.hidden:
                assert p.nargs == 1 or p.metavar != "TABLE", f"{' '.join(path)}: tables as positional arguments"
            if p.name in ("tables", "tables_opt"):
                assert p.opts == ["--tables"] and p.metavar == "TABLE,...", f"{' '.join(path)}: {p.opts}"


def test_help_through_the_console_script_reads_right(cli: Any) -> None:
    out = beststag("backup", "restore", "--help")
    assert out.returncode == 0, out.stderr
    assert not re.search(r"<(bool|str|int|float|path)", out.stdout), out.stdout
    assert "--tables" in out.stdout and "TABLE,..." in out.stdout and "--json" in out.stdout
    warm = cli("cache", "warm", "--help").stdout
    assert "--tables" in warm and "Usage: beststag cache warm [OPTIONS]\n" in re.sub(r" +\n", "\n", warm)


def test_shell_completion_is_enabled() -> None:
    # the script `--show-completion` prints, asked for bash by name: `--show-completion` itself detects the
    # shell from the process's ancestors (shellingham), which under pytest-xdist is not always a shell
    out = beststag(env={**os.environ, "_BESTSTAG_COMPLETE": "source_bash"})
    assert out.returncode == 0 and "_BESTSTAG_COMPLETE" in out.stdout, out
    assert "--show-completion" in beststag("--help").stdout
    env = {**os.environ, "_BESTSTAG_COMPLETE": "complete_bash", "COMP_WORDS": "beststag backup li", "COMP_CWORD": "2"}
    done = beststag(env=env)
    assert done.returncode == 0 and "list" in done.stdout.split(), done
    env["COMP_WORDS"], env["COMP_CWORD"] = "beststag backup list --js", "3"
    assert "--json" in beststag(env=env).stdout.split()  # the inherited global options complete too


# ---------------------------------------------------------------- global options anywhere


@pytest.fixture
def seeded(clean_env: Path, _sample_db: Path) -> Path:
    """The data dir of the console-script runs, holding a copy of the seeded sample sandbox."""
    from beststag_cli.config import load_config
    from beststag_cli.fsutil import ensure_private_dir

    db = load_config().paths.sandbox_db
    ensure_private_dir(db.parent)
    shutil.copy(_sample_db, db)
    db.chmod(0o600)
    return db


def test_global_options_work_anywhere_before_the_double_dash(seeded: Path, tmp_path: Path, cli: Any) -> None:
    # the console script: the option last, as gh/llm take it and a cron line ending in --quiet has it
    last = beststag("backup", "list", "--json")
    assert last.returncode == 0 and json.loads(last.stdout) == [], last
    quiet = beststag("cache", "get", "Usuários", "--max", "2", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == "", quiet
    # the same parser in-process: any place, the same effect as first
    assert cli("backup", "list", "--json").json() == cli("--json", "backup", "list").json()
    doctor = cli("doctor", "-v", "--json")
    assert "No such option" not in doctor.stderr and doctor.json()["checks"], doctor
    assert cli("backup", "--json", "list").json() == []
    # an option that takes a value keeps its value
    cfg = tmp_path / "nowhere.yaml"
    bad = cli("backup", "list", "--config", str(cfg))
    assert bad.exit_code == 2 and str(cfg) in bad.stderr and "Traceback" not in bad.stderr, bad
    # after `--` it is an argument like any other: here a table name
    literal = cli("--json", "cache", "get", "--", "--quiet")
    assert literal.exit_code == 2 and "--quiet" in literal.json()["error"]["message"], literal


# ---------------------------------------------------------------- piped output


def test_piped_tables_print_full_tab_separated_rows(seeded: Path, cli: Any) -> None:
    for btype in ("critical", "complete"):
        assert cli("--json", "backup", "run", "--type", btype).exit_code == 0
    ids = [b["id"] for b in cli("--json", "backup", "list").json()]
    out = beststag("backup", "list", env={**os.environ, "COLUMNS": "40"})  # even a narrow terminal setting
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "type", "time", "status", "tables", "records", "size"]
    assert len(lines) == 1 + len(ids)  # one record a line: nothing wrapped
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == ids  # whole ids, ready to copy into `backup restore`
    assert all(re.fullmatch(r"\d+(\.\d)? (B|KB|MB|GB)", r[6]) for r in rows), rows  # `1.8 MB` stays together
    assert "│" not in out.stdout and "─" not in out.stdout
    restore = cli("--json", "backup", "restore", rows[-1][0], "--dry-run")
    assert restore.exit_code == 0 and restore.json()["backup_id"] == ids[-1], restore
    # a long human line (not a table) is not cut at 80 columns either
    shown = beststag("backup", "show", ids[-1]).stdout.splitlines()
    assert shown[0].startswith(ids[-1]) and "parent" in shown[0], shown[:2]


def test_cache_warm_takes_tables_like_every_other_command(cli: Any) -> None:
    warmed = cli("--json", "cache", "warm", "--tables", "Usuários,Interações")
    assert warmed.exit_code == 0, warmed
    assert {w["table"] for w in warmed.json()["warmed"]} == {"Usuários", "Interações"}
    old = cli("--json", "cache", "warm", "Usuários")  # the old positional form still works (undocumented)
    assert {w["table"] for w in old.json()["warmed"]} == {"Usuários"}


def test_the_cache_hit_path_takes_trailing_global_flags() -> None:
    from beststag_cli.cli.fastpath import _parse

    opts = _parse(["cache", "get", "Usuários", "--max", "2", "--quiet", "--json"])
    assert opts is not None and opts["quiet"] and opts["json"] and opts["table"] == "Usuários"
    assert _parse(["cache", "get", "Usuários", "--", "--quiet"]) is None  # `--`: the full CLI decides
