"""Generated documentation: the README's exit-code table (from `errors.py`) and `docs/cli.md` (from the
Typer tree). cog runs these from the `[[[cog ... ]]]` blocks in those files (`cog -r README.md docs/cli.md`;
`scripts/test` runs `cog --check`), so the docs cannot drift from the code.

The output depends on the code only: help text and options come from the click objects themselves,
never from a rendered terminal (no width, no colours), and a default is shown only when it is a
constant in the code (a default computed at run time, such as the data dir, would differ per machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import ROOT_KINDS, ExitStatus, all_error_classes


def _cell(text: str) -> str:
    """One markdown table cell: pipes escaped, line breaks folded (a cell is one line)."""
    return " ".join(text.split()).replace("|", "\\|")


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


# ---------------------------------------------------------------- exit codes (README)


def exit_codes_markdown() -> str:
    """The exit-code table and the error list, both from errors.py (README, section "Exit codes")."""
    classes = sorted(
        (c for c in all_error_classes() if c.__name__ != "BestStagError"), key=lambda c: (int(c.exit_code), c.kind)
    )
    kinds: dict[ExitStatus, list[str]] = {s: [] for s in ExitStatus}
    for cls in classes:
        kinds[cls.exit_code].append(cls.kind)
        if cls.kind == "interrupted":  # one class, two codes: 128 + the signal (errors.Interrupted)
            kinds[ExitStatus.SIGTERM].append(cls.kind)
    for kind, (status, _) in ROOT_KINDS.items():
        kinds[status].append(kind)
    out = ["| code | name | meaning | `error.type` (`--json`) |", "|---|---|---|---|"]
    for s in ExitStatus:
        shown = ", ".join(f"`{k}`" for k in sorted(set(kinds[s])))
        out.append(f"| {int(s)} | `{s.name}` | {_cell(s.meaning)} | {shown} |")
    out += [
        "",
        "Every error is one line on stderr, `error: MESSAGE` and a hint (with `--json`, an object "
        '`{"error": {"type", "message", "hint"}}` on stdout):',
        "",
        "| `error.type` | exit | what happened | hint |",
        "|---|---|---|---|",
    ]
    for cls in classes:
        code = "130 / 143" if cls.kind == "interrupted" else str(int(cls.exit_code))
        out.append(f"| `{cls.kind}` | {code} | {_cell(_first_paragraph(cls.__doc__))} | {_cell(cls.hint)} |")
    for kind, (status, what) in ROOT_KINDS.items():
        out.append(f"| `{kind}` | {int(status)} | {_cell(what)} | |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- CLI reference (docs/cli.md)


def _walk(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    """(command, its context) for ``cmd`` and everything below it, in the order --help lists them."""
    import typer

    yield cmd, ctx
    for name in getattr(cmd, "list_commands", lambda c: [])(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            yield from _walk(sub, typer.Context(sub, info_name=name, parent=ctx))


def commands() -> list[tuple[str, Any, Any]]:
    """(full path as typed, command, context) for every command of the tree, the root first."""
    import typer

    from .main import command

    root = command()
    return [(ctx.command_path, cmd, ctx) for cmd, ctx in _walk(root, typer.Context(root, info_name="beststag"))]


def _anchor(path: str) -> str:
    """GitHub's heading anchor for `## PATH` (lower case, spaces as dashes)."""
    return path.lower().replace(" ", "-")


def _params_table(cmd: Any, ctx: Any, *, global_options: bool) -> list[str]:
    """The command's own arguments and options, or (``global_options``) the root's global ones: those are
    on every command (cli/main.py copies them) and listed once, at the root."""
    from .main import _GLOBALS

    rows = []
    for p in cmd.params:
        if p.hidden or p.name == "help" or (p.name in _GLOBALS) != global_options:
            continue
        if p.param_type_name == "argument":
            name, text = p.metavar or p.name.upper(), (p.help or "") + ("  [required]" if p.required else "")
        else:
            record = p.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
        rows.append(f"| `{_cell(name)}` | {_cell(text)} |")
    return ["| argument / option | meaning |", "|---|---|", *rows] if rows else []


def cli_reference_markdown() -> str:
    """Every command: its usage line, its help text and its options, in the order of the tree."""
    out: list[str] = []
    everything = commands()
    for path, cmd, ctx in everything:
        usage = " ".join([f"Usage: {path}", *cmd.collect_usage_pieces(ctx)])  # click's get_usage wraps at $COLUMNS
        out += [f"## {path}", "", "```text", usage, "", (cmd.help or "").strip(), "```", ""]
        table = _params_table(cmd, ctx, global_options=False)
        if table:
            out += [*table, ""]
        subs = [(p, c) for p, c, _ in everything if p.rsplit(" ", 1)[0] == path and p != path]
        if subs:
            out += ["| command | what it does |", "|---|---|"]
            out += [f"| [`{p}`](#{_anchor(p)}) | {_cell(c.get_short_help_str(limit=200))} |" for p, c in subs]
            out.append("")
        if cmd is everything[0][1]:
            out += [
                "**Global options**: accepted by every command, anywhere on the line before `--`; "
                "`-h`/`--help` shows a command's help.",
                "",
                *_params_table(cmd, ctx, global_options=True),
                "",
            ]
    return "\n".join(out)
