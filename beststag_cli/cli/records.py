"""`beststag records create|update|upsert|delete`: batched writes that publish cache invalidation events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import BadInput
from . import render
from .jobrun import interruptible
from .state import STATE

if TYPE_CHECKING:
    from ..query.writes import WriteOp

app = typer.Typer(
    help="Write records (10 a request, batches in parallel within the rate limit).\n\n"
    "Example: beststag records create Usuários --file new-users.ndjson",
    no_args_is_help=True,
)

TableArg = Annotated[str, typer.Argument(metavar="TABLE", help="Table name.")]
DataOpt = Annotated[
    str | None, typer.Option("--data", "-d", metavar="JSON", help="A record or a JSON list of records.")
]
FileOpt = Annotated[
    str | None, typer.Option("--file", metavar="FILE", help="NDJSON file, one record per line ('-' = stdin).")
]
TypecastOpt = Annotated[bool, typer.Option("--typecast", help="Let Airtable convert values (and add options).")]


def _items(data: str | None, file: str | None) -> list[Any]:
    from ..query.writes import read_items

    lines: list[str] | None = None
    if file == "-":
        lines = sys.stdin.read().splitlines()
    elif file is not None:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise BadInput(f"cannot read --file {file}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise BadInput(
                f"--file {file} is not UTF-8: byte {e.start + 1} cannot be decoded",
                hint="save the file as UTF-8 (one JSON object per line)",
            ) from None
    return read_items(data, lines)


def _write(op: WriteOp, table: str, items: list[Any], **kw: Any) -> None:
    from ..query.writes import Writer, to_records

    records = to_records(op, items)
    result = Writer(STATE.gateway).write(op, table, records, **kw)
    if STATE.json:
        render.emit_json(result.to_json())
        return
    render.line(f"{op}: {len(result.records)} record(s) in {result.table} ({result.requests} request(s))")
    if op != "delete":
        from rich.markup import escape

        render.table(
            None,
            ["id", "written"],
            [[r["id"], escape(_written(r, _sent_fields(records, r, i)))] for i, r in enumerate(result.records[:20])],
        )


def _sent_fields(sent: list[Any], record: dict[str, Any], i: int) -> list[str]:
    """The fields the request set on this record: by id (update), else by position (create, upsert)."""
    by_id = {s.get("id"): s for s in sent if isinstance(s, dict) and s.get("id")}
    mine = by_id.get(record.get("id")) or (sent[i] if i < len(sent) and isinstance(sent[i], dict) else {})
    return list(mine.get("fields", {}))


def _written(record: dict[str, Any], names: list[str]) -> str:
    """`field: value` for each field written, as Airtable stored it (typecast included); empty ones say so."""
    import json

    fields = record.get("fields", {})
    parts = []
    for name in names:
        if name not in fields:  # Airtable leaves empty fields out of its answer
            shown = "(empty)"
        else:
            value = fields[name]
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{name}: {shown}")
    return ", ".join(parts)


@app.command()
@interruptible
def create(table: TableArg, data: DataOpt = None, file: FileOpt = None, typecast: TypecastOpt = False) -> None:
    """Create records.

    Example: beststag records create Usuários --data '{"fields": {"Nome": "Ana", "status": "Ativo"}}'
    """
    _write("create", table, _items(data, file), typecast=typecast)


@app.command()
@interruptible
def update(
    table: TableArg,
    data: DataOpt = None,
    file: FileOpt = None,
    typecast: TypecastOpt = False,
    replace: Annotated[bool, typer.Option("--replace", help="PUT: clear unlisted fields.")] = False,
) -> None:
    """Update records by id (PATCH; --replace for PUT).

    Example: beststag records update Usuários --data '[{"id": "rec...", "fields": {"status": "Inativo"}}]'
    """
    _write("update", table, _items(data, file), typecast=typecast, replace=replace)


@app.command()
@interruptible
def upsert(
    table: TableArg,
    merge_on: Annotated[
        str, typer.Option("--merge-on", metavar="FIELD,...", help="Fields that identify a record: F,G.")
    ],
    data: DataOpt = None,
    file: FileOpt = None,
    typecast: TypecastOpt = False,
) -> None:
    """Create or update records matched on --merge-on fields.

    Example: beststag records upsert Usuários --merge-on email --data '[{"fields": {"email": "a@b.c", "Nome": "A"}}]'
    """
    fields = [f.strip() for f in merge_on.split(",") if f.strip()]
    _write("upsert", table, _items(data, file), typecast=typecast, merge_on=fields)


@app.command()
@interruptible
def delete(
    table: TableArg,
    id_: Annotated[list[str] | None, typer.Option("--id", metavar="RECORD_ID", help="Record id (repeatable).")] = None,
    data: DataOpt = None,
    file: FileOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete records by id.

    Example: beststag records delete Tarefas --yes --id recXXXXXXXXXXXXXX --id recYYYYYYYYYYYYYY
    """
    from .confirm import confirm

    items: list[Any] = list(id_ or [])
    if data is not None or file is not None:
        items += _items(data, file)
    from ..query.writes import to_records

    n = len(to_records("delete", items))  # bad ids are bad input, whether or not a terminal could answer
    confirm(
        f"Delete {n:,} record(s) from {table}?",
        what=f"records delete would delete {n:,} record(s) from {table}",
        yes=yes,
    )
    _write("delete", table, items)
