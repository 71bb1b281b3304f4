"""`beststag query explain|run`: the query optimizer, straight to Airtable (no cache)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from . import render
from .state import STATE

app = typer.Typer(
    help="Build, explain and run optimised Airtable queries (filters → filterByFormula).\n\n"
    'Example: beststag query explain Usuários -f \'{"status": "Ativo"}\'',
    no_args_is_help=True,
)

FilterOpt = Annotated[
    str | None,
    typer.Option(
        "--filter",
        "-f",
        metavar="JSON",
        help='Filter JSON, e.g. \'{"status": "Ativo"}\' (README: Queries and filters).',
    ),
]
FieldsOpt = Annotated[
    list[str] | None, typer.Option("--fields", metavar="FIELD,...", help="Fields to return: F,G (repeatable).")
]
SortOpt = Annotated[
    list[str] | None, typer.Option("--sort", metavar="FIELD", help="Sort field; -FIELD for descending (repeatable).")
]
MaxOpt = Annotated[int | None, typer.Option("--max", metavar="N", help="maxRecords: stop after N records.", min=1)]
ViewOpt = Annotated[str | None, typer.Option("--view", metavar="VIEW", help="Only records of this view.")]
PageOpt = Annotated[
    int | None,
    typer.Option(
        "--page-size", metavar="N", help="Records per request (default: from --max, else 100).", min=1, max=100
    ),
]


def build_spec(
    table: str,
    filter_: str | None,
    fields: list[str] | None,
    sort: list[str] | None,
    max_: int | None,
    view: str | None,
    page_size: int | None,
) -> Any:
    from ..query.request import from_cli, spec_data
    from ..query.spec import QuerySpec

    return QuerySpec.parse(spec_data(from_cli(table, filter_, fields, sort, max_, view), page_size))


def _service() -> Any:
    from ..query.service import QueryService

    return QueryService(STATE.gateway)


@app.command()
def explain(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table name (or id).")],
    filter_: FilterOpt = None,
    fields: FieldsOpt = None,
    sort: SortOpt = None,
    max_: MaxOpt = None,
    view: ViewOpt = None,
    page_size: PageOpt = None,
    no_count: Annotated[
        bool, typer.Option("--no-count", help="Do not count the table when the journal has no recent count.")
    ] = False,
) -> None:
    """Show the formula, request plan, estimated cost, complexity and warnings of a query.

    Example: beststag query explain Interações -f '{"timestamp": {"operator": "date_after", "days": -7}}' --max 50
    """
    spec = build_spec(table, filter_, fields, sort, max_, view, page_size)
    plan = _service().explain(spec, count=not no_count)
    data = plan.to_dict()
    if STATE.json:
        render.emit_json(data)
        return
    from rich.markup import escape

    render.line(f"[bold]{escape(plan.table)}[/]  formula: [cyan]{escape(plan.formula or '(none)')}[/]")
    rows = [
        ["method", plan.method + (f" ({plan.url_length} chars)" if plan.method != "none" else "")],
        ["fields", ", ".join(plan.fields) if plan.fields is not None else "all"],
        ["sort", ", ".join(f"{s['field']} {s['direction']}" for s in plan.sort) or "-"],
        ["maxRecords / pageSize", f"{plan.max_records or '-'} / {plan.page_size}"],
        ["records in table", f"{plan.record_count if plan.record_count is not None else '?'} ({plan.count_source})"],
        ["requests (pages)", str(plan.requests)],
        ["estimated bytes", f"{plan.est_bytes:,}"],
        ["estimated time", f"{plan.est_seconds} s at 5 req/s"],
        [
            "complexity",
            f"{plan.complexity.score}  " + ", ".join(f"{k} {v:g}" for k, v in plan.complexity.parts.items() if v),
        ],
    ]
    render.table("plan", ["", ""], rows)
    for w in plan.warnings:
        render.line(f"[yellow]warning:[/] {escape(w)}")


def _cell(v: Any) -> str:
    return render.cell(v)


@app.command()
def run(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table name (or id).")],
    filter_: FilterOpt = None,
    fields: FieldsOpt = None,
    sort: SortOpt = None,
    max_: MaxOpt = None,
    view: ViewOpt = None,
    page_size: PageOpt = None,
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One JSON record per line on stdout.")] = False,
) -> None:
    """Run a query against Airtable without the cache and print the records.

    Example: beststag --json query run Usuários -f '{"status": "Ativo"}' --fields Nome,email --max 10
    """
    spec = build_spec(table, filter_, fields, sort, max_, view, page_size)
    service = _service()
    progress = None
    if sys.stderr.isatty() and not STATE.json and not STATE.quiet and not ndjson:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from .console_log import rich_console

        STATE.settings  # noqa: B018 - logging first: the spinner draws through its Console (log lines above it)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            transient=True,
            console=rich_console() or Console(stderr=True),
        )
    if progress is not None:
        with progress:
            task = progress.add_task(f"fetching {table}", total=None)
            result = service.run(spec, on_page=lambda n: progress.update(task, description=f"{n} records"))
    else:
        result = service.run(spec)
    if ndjson:
        STATE.emitted = True
        for r in result.records:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if STATE.json:
        render.emit_json(result.to_json())
        return
    cols = list(spec.fields) if spec.fields else list(dict.fromkeys(k for r in result.records for k in r["fields"]))
    render.table(
        f"{result.table}: {len(result.records)} record(s)",
        ["id", *cols],
        [[r["id"], *[_cell(r["fields"].get(c, "")) for c in cols]] for r in result.records],
    )
    if result.empty_by_contradiction:
        render.note("the filter can never match: answered without a request")
