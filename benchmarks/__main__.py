"""`python -m benchmarks NAME [--quick] [--json]`: run one benchmark and print its figures."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from . import available, load


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value) or math.isnan(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _list_names(stream: Any) -> None:
    names = available()
    print("available benchmarks: " + (", ".join(names) if names else "(none)"), file=stream)
    print(
        "usage: ./scripts/bench NAME [--quick] [--json] [--PART ...]  (a benchmark's parts: one flag each)", file=stream
    )


def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze the table into 80 columns
        console = Console(width=140)
    title = f"benchmark {result.get('benchmark', '?')}" + (" (quick)" if result.get("quick") else "")
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("figure", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("ratio", "right"),
        ("baseline (same run)", "left"),
        ("goal", "left"),
        ("", "left"),
        ("note", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in result.get("figures", []):
        ratio = f"{_fmt(row['ratio'])}×" if "ratio" in row else ""
        status = {True: "[green]PASS[/]", False: "[red]FAIL[/]"}.get(row.get("ok"), "")
        name = row["name"] if row.get("role") != "baseline" else f"[dim]{row['name']} (baseline)[/]"
        table.add_row(
            name,
            _fmt(row["value"]),
            row.get("unit", ""),
            ratio,
            row.get("baseline", ""),
            row.get("goal", ""),
            status,
            row.get("note", ""),
        )
    console.print(table)
    for key, value in result.get("setup", {}).items():
        console.print(f"[dim]{key}:[/] {_fmt(value)}")
    for note in result.get("notes", []):
        console.print(f"[dim]note:[/] {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks", description="Run one of the project's benchmarks.")
    parser.add_argument("name", nargs="?", help="benchmark name: " + ", ".join(available()))
    parser.add_argument("--quick", action="store_true", help="smaller data set, fewer repeats")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args, extra = parser.parse_known_args(argv)
    if args.name is None:
        _list_names(sys.stdout)
        return 0
    if args.name not in available():
        print(f"unknown benchmark {args.name!r}", file=sys.stderr)
        _list_names(sys.stderr)
        return 2
    module = load(args.name)
    parts: dict[str, str] = getattr(module, "PARTS", {})
    chosen = [a[2:] for a in extra]
    unknown = [a for a, p in zip(extra, chosen, strict=True) if not a.startswith("--") or p not in parts]
    if unknown:
        flags = ", ".join(f"--{p} ({what})" for p, what in parts.items()) or "none"
        print(f"benchmark {args.name}: unknown option {unknown[0]!r}; its parts: {flags}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = dict(module.run(quick=args.quick, parts=chosen) if chosen else module.run(quick=args.quick))
    result.setdefault("benchmark", args.name)
    result.setdefault("quick", args.quick)
    result["wall_s"] = round(time.perf_counter() - t0, 3)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        render(result)
        print(f"total wall time {result['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
