"""Start-up time of the read-only commands (issue 16, "Start-up time"), as paired ratios to `python -c pass`.

Goal from the issue: every read-only command within 5× `python -c pass`. Each command runs in a new
process, interleaved with `python -c pass` (pass, command, pass, command, …) so both see the same load
on the machine; the figure is the median over N pairs of (command time ÷ the pass run just before it).

Measured (issue 17): `backup list` (the table, piped: what cron and `| cut` get), `backup list --json`,
`backup show latest`, `schedule show`, `metrics alerts` and `doctor --offline` (doctor without its
network checks), each with the goal ≤ 5×; stdout and stderr go to /dev/null, i.e. piped output.

Bytecode: the package is compiled first (`compileall`), as `pip install` does for an installed package;
an editable install under PYTHONDONTWRITEBYTECODE (this sandbox, CI) would otherwise compile every module
at every start (about 30 ms, a third of `doctor`'s time), which no installed user pays.

Set up once, in a private temporary data dir, against the in-process sandbox: one critical backup
(so `backup list`/`show` read a real manifest) and one run of each command through the full CLI (it
writes the settings snapshot the fast path needs). Also measured, same pairs: the same commands
through the full Typer CLI (`python -c` calling `cli.main.run`: what every command the fast path
declines pays), and `beststag --version`. In-process: the sandbox's formula parser loaded from its
precompiled tables against building it from the grammar.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio, timed_best

GOAL = 5.0


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def _paired(args: list[str], env: dict[str, str], pairs: int) -> tuple[float, float, float]:
    """(median ratio to the pass run just before, median command ms, median pass ms) over `pairs` pairs."""
    bare = [sys.executable, "-c", "pass"]
    ratios, cmd_ms, bare_ms = [], [], []
    for _ in range(pairs):
        b = _run(bare, env)
        c = _run(args, env)
        ratios.append(c / b)
        cmd_ms.append(c * 1000)
        bare_ms.append(b * 1000)
    return statistics.median(ratios), statistics.median(cmd_ms), statistics.median(bare_ms)


def _full_cli(argv: list[str]) -> list[str]:
    """The same command through the Typer CLI (bypasses cli/__init__.py's fast paths)."""
    code = f"import sys; from beststag_cli.cli.main import run; sys.exit(run({argv!r}))"
    return [sys.executable, "-c", code]


def _formula_parser(repeat: int) -> list[dict[str, Any]]:
    """The sandbox's formula parser: loaded from the precompiled tables vs built from the grammar (in-process)."""
    import lark

    from beststag_cli.sandbox.formula import lalr_tables, parser

    grammar = parser._GRAMMAR_PATH.read_text(encoding="utf-8")
    _, load_s, _ = timed_best(lambda: lark.Lark.load(lalr_tables.TABLES), repeat)
    _, build_s, _ = timed_best(lambda: parser._build(grammar), repeat)
    return [
        figure(
            "formula parser from lalr_tables.py (median)",
            load_s * 1000,
            "ms",
            baseline="built from grammar",
            ratio=ratio(load_s, build_s),
            note="once per sandbox process that filters by formula",
        ),
        figure("formula parser built from grammar.lark (median)", build_s * 1000, "ms", role="baseline"),
    ]


def run(quick: bool) -> dict[str, Any]:
    pairs = 5 if quick else 15
    import compileall

    import beststag_cli

    compileall.compile_dir(str(Path(beststag_cli.__file__).parent), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
        env["BESTSTAG_DATA_DIR"] = str(Path(tmp) / "var")
        cli = [sys.executable, "-m", "beststag_cli"]
        subprocess.run(
            [*cli, "--quiet", "backup", "run", "--type", "critical"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        listed = subprocess.run([*cli, "--json", "backup", "list"], env=env, check=True, capture_output=True)
        assert json.loads(listed.stdout), "the set-up backup is missing"
        commands = {
            "backup list": ["backup", "list"],
            "backup list --json": ["--json", "backup", "list"],
            "backup show latest": ["backup", "show", "latest"],
            "schedule show": ["schedule", "show"],
            "metrics alerts": ["metrics", "alerts"],
            "doctor --offline": ["doctor", "--offline"],
        }
        for argv in commands.values():  # warm: the snapshot, the OS's file cache (alerts/doctor may exit 1)
            subprocess.run([*cli, *argv], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        figures: list[dict[str, Any]] = []
        bare_all: list[float] = []
        for name, argv in commands.items():
            r, ms, bare = _paired([*cli, *argv], env, pairs)
            bare_all.append(bare)
            figures.append(
                figure(
                    f"beststag {name} (median of pairs)",
                    ms,
                    "ms",
                    baseline="python -c pass",
                    ratio=r,
                    goal=f"≤ {GOAL:g}×",
                    ok=r <= GOAL,
                )
            )
        for name in ("backup list", "schedule show"):
            r, ms, bare = _paired(_full_cli(commands[name]), env, pairs)
            bare_all.append(bare)
            figures.append(
                figure(
                    f"{name} through the full Typer CLI",
                    ms,
                    "ms",
                    baseline="python -c pass",
                    ratio=r,
                    note="what every command the fast path declines pays",
                )
            )
        r, ms, bare = _paired([*cli, "--version"], env, pairs)
        bare_all.append(bare)
        figures.append(figure("beststag --version (Typer loaded)", ms, "ms", baseline="python -c pass", ratio=r))
        figures.append(figure("python -c pass (median)", statistics.median(bare_all), "ms", role="baseline"))
    figures.extend(_formula_parser(3 if quick else 10))
    return {
        "figures": figures,
        "setup": {"pairs per command": pairs},
        "notes": ["ratio = median over pairs of (command ÷ the `python -c pass` run just before it)"],
    }
