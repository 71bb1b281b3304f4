"""`beststag cache …`: read through the cache, store, invalidate, warm, prune, stats."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import BadInput
from ..inputs import check_text
from . import render
from .backup import _split as split_tables
from .jobrun import as_job
from .query import FieldsOpt, FilterOpt, MaxOpt, SortOpt, ViewOpt, build_spec
from .state import STATE

app = typer.Typer(
    help="The cache in front of Airtable: answers, invalidation, warming, statistics.\n\n"
    "Example: beststag cache get Usuários --max 5",
    no_args_is_help=True,
)

RecordOpt = Annotated[str | None, typer.Option("--record", metavar="RECORD_ID", help="One record by id (rec…).")]
TTLOpt = Annotated[
    float | None,
    typer.Option(
        "--ttl",
        metavar="SECONDS",
        help="TTL in seconds for this answer, above 0 and at most 2592000 (30 days; default: the table's).",
    ),
]


def _manager() -> Any:
    return STATE.cache


def render_result(res: Any, show_fields: bool = True) -> None:
    if STATE.json:
        render.emit_json(res.to_json())
        _warn(res.extra.get("warning"))
        return
    from rich.markup import escape

    names: list[str] = []
    for r in res.records:
        for k in r.get("fields", {}):
            if k not in names:
                names.append(k)
    names = names[:8]
    rows = [[r["id"], *[_cell(r.get("fields", {}).get(n)) for n in names]] for r in res.records[:200]]
    render.table(f"{escape(res.table)}: {len(res.records)} record(s)", ["id", *names], rows)
    color = {"hit": "green", "miss": "yellow", "stale": "red"}.get(res.status, "white")
    render.note(
        f"cache [{color}]{res.status}[/] ({res.source}) · age {res.age_s:.1f} s · ttl {res.ttl_s:.0f} s · key {res.key}"
    )
    _warn(res.extra.get("warning"))


def _warn(line: str | None) -> None:
    """The cache's own trouble (damaged files, full disk): one line on stderr; the answer was still served."""
    if line:
        from rich.markup import escape

        render.note(f"[yellow]warning:[/] {escape(str(line))}")


def _cell(v: Any) -> str:
    return render.cell(v)


@app.command()
def get(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table name (or id).")],
    record: RecordOpt = None,
    filter_: FilterOpt = None,
    fields: FieldsOpt = None,
    sort: SortOpt = None,
    max_: MaxOpt = None,
    view: ViewOpt = None,
    ttl: TTLOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch from Airtable even on a fresh hit.")] = False,
) -> None:
    """Read records through the cache; says hit, miss or stale and the answer's age.

    Example: beststag cache get Usuários --filter '{"status": "Ativo"}' --fields Nome,email
    """
    from ..cache.manager import alias_digest
    from ..cache.policy import check_ttl

    ttl = check_ttl(ttl)
    if record is not None:
        check_text(record, "--record")
    m = _manager()
    if record is not None:
        if filter_ or fields or sort or max_ or view:
            raise BadInput("--record reads one record: it takes no --filter/--fields/--sort/--max/--view")
        render_result(m.get_record(table, record, ttl=ttl, refresh=refresh))
        return
    from ..query.request import from_cli, spec_data
    from ..query.spec import QuerySpec

    query = from_cli(table, filter_, fields, sort, max_, view)  # the fast path reads the line the same way
    res = m.get(QuerySpec.parse(spec_data(query)), ttl=ttl, refresh=refresh, alias=alias_digest(query))
    render_result(res)


@app.command("set")
def set_(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table name (or id).")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            metavar="JSON",
            help="The answer to store: a JSON list of records "
            '({"id", "createdTime", "fields"}); with --record, one record.',
        ),
    ],
    record: RecordOpt = None,
    filter_: FilterOpt = None,
    fields: FieldsOpt = None,
    sort: SortOpt = None,
    max_: MaxOpt = None,
    view: ViewOpt = None,
    ttl: TTLOpt = None,
) -> None:
    """Store given data under a query or record key.

    Example: beststag cache set Usuários --filter '{"status": "Ativo"}' --data '[]' --ttl 60
    """
    from ..cache.policy import check_ttl
    from ..cache.records import parse_records

    ttl = check_ttl(ttl)
    if record is not None:
        check_text(record, "--record")
    m = _manager()
    if record is not None:
        recs = parse_records(data, single=True)
        if recs[0]["id"] != record:
            raise BadInput(f"--data holds record {recs[0]['id']}, not {record}")
        key = m.set_record(table, recs[0], ttl=ttl)
    else:
        key = m.set(build_spec(table, filter_, fields, sort, max_, view, None), parse_records(data), ttl=ttl)
    if STATE.json:
        render.emit_json({"stored": True, "key": key})
    else:
        render.note(f"stored under {key}")


@app.command()
def invalidate(
    table: Annotated[
        str | None, typer.Argument(metavar="TABLE", help="Table to forget (O(1), whatever its size).")
    ] = None,
    record: RecordOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Forget everything.")] = False,
) -> None:
    """Forget a table, one record (and the answers that hold it), or everything.

    Example: beststag cache invalidate Usuários --record recXXXXXXXXXXXXXX
    """
    if all_ == (table is not None):
        raise BadInput("give a TABLE (optionally with --record) or --all", hint="beststag cache invalidate --help")
    if record is not None and table is None:
        raise BadInput("--record needs the TABLE it belongs to")
    if table is not None:
        check_text(table, "TABLE")
    if record is not None:
        check_text(record, "--record")
    m = STATE.cache
    out = m.invalidate(table, record)
    if STATE.json:
        render.emit_json(out)
    else:
        render.note(f"invalidated: {out}")


@app.command()
def stats(
    hours: Annotated[float, typer.Option("--hours", metavar="HOURS", help="Window of the counters.", min=0.01)] = 24,
) -> None:
    """Hits, misses, hit ratio overall and per table, entries, bytes, and each table's current TTL.

    Example: beststag cache stats --hours 1
    """
    data = STATE.cache.stats(hours=hours)
    for w in data.get("warnings", []):
        _warn(w)
    if STATE.json:
        render.emit_json(data)
        return
    o = data["overall"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    render.line(
        f"last {hours:g} h: {o['hits']} hits, {o['misses']} misses, {o['stale']} stale "
        f"(hit ratio {pct(o['hit_ratio'])}), {o['write_applications']} writes applied; "
        + (
            f"{data['entries']} entries, {data['bytes']:,} bytes"
            if data["entries"] is not None
            else "entries and bytes unknown (the cache store is unavailable)"
        )
    )
    render.table(
        None,
        ["table", "mode", "hits", "misses", "hit ratio", "ttl (s)", "why"],
        [
            [n, t["mode"], t["hits"], t["misses"], pct(t["hit_ratio"]), f"{t['ttl_s']:.0f}", t["ttl_reason"]]
            for n, t in data["tables"].items()
        ],
    )


@app.command()
def warm(
    tables_opt: Annotated[
        str | None,
        typer.Option("--tables", metavar="TABLE,...", help="Only these tables, comma-separated (default: all)."),
    ] = None,
    # the old positional form, kept working but not shown: `--tables A,B` is the one way, as in `backup run`
    positional: Annotated[list[str] | None, typer.Argument(metavar="TABLE", hidden=True)] = None,
    from_journal: Annotated[
        bool, typer.Option("--from-journal", help="Also the most frequent queries of the last 24 h.")
    ] = False,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many journal queries.", min=1)] = 20,
) -> None:
    """Load hot queries now: those in config (cache.warm), and with --from-journal the busiest ones.

    Example: beststag cache warm --from-journal
    """
    from ..cache.warmplan import warm_queries

    tables = [*(positional or []), *(split_tables(tables_opt) or [])]
    with render.progress() as progress:
        warmed = warm_queries(_manager(), tables, from_journal=from_journal, limit=limit, progress=progress)
    if STATE.json:
        render.emit_json({"warmed": [w.to_dict() for w in warmed]})
    else:
        from rich.markup import escape

        render.table(
            f"warmed {len(warmed)} queries",
            ["table", "query", "records"],
            [[escape(w.table), escape(w.query), w.records] for w in warmed],
        )


@app.command()
@as_job("cache-prune")
def prune() -> None:
    """Remove expired entries (cron: hourly).

    Example: beststag --quiet cache prune
    """
    out = STATE.cache.prune()
    if STATE.json:
        render.emit_json(out)
    else:
        render.note(f"removed {out['removed']} expired entries")


@app.command()
def clear(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Empty the cache.

    Example: beststag cache clear --yes
    """
    if not yes and not typer.confirm("Empty the whole cache?", default=False):
        raise BadInput("nothing removed", hint="pass --yes to skip the question")
    n = STATE.cache.clear()
    if STATE.json:
        render.emit_json({"removed": n})
    else:
        render.note(f"removed {n} entries")
