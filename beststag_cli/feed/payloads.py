"""One webhook payload → the `Change`s it describes, per table, with whole records in REST form.

A payload (Airtable's `GET /v0/bases/{base}/webhooks/{id}/payloads`, format `v0`) lists, per table
id, created records (with `createdTime`), changed records (`current` values of the changed fields,
`unchanged` values of the others when the webhook asked for every field with
`includes.includeCellValuesInFieldIds: "all"`, `previous` values) and destroyed record ids, plus
schema changes. The cache needs whole records to re-evaluate its filters, so:

- a changed record becomes a whole record (current ∪ unchanged) without `createdTime` (payloads do not
  carry it for changes; the cache keeps its own copy's);
- when a changed record cannot be made whole (no `unchanged` part while other fields exist), or a cell
  names a field the schema does not know, or the table's fields or the table itself changed, the table
  is *unknown* for this payload: the sink forgets what it holds of it, and the caller re-reads the schema;
- an error payload (`error: true`, with a `code`) says the webhook lost changes: every table is a gap.

Nothing here talks to Airtable; `translate` is a pure function of the payload and the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..gateway.changes import Change
from ..query.schema import BaseSchema, TableInfo
from .cells import blank, rest_value

SCHEMA_KEYS = ("createdFieldsById", "changedFieldsById", "destroyedFieldIds", "changedMetadata")


@dataclass
class Translation:
    """What one payload says: changes to deliver, and what it cannot say exactly."""

    changes: list[Change] = field(default_factory=list)
    #: table names (or ids, when the schema does not know them) whose changes cannot be applied record by
    #: record: the sink forgets them (exact: the changes did happen, and are all before this moment)
    unknown_tables: set[str] = field(default_factory=set)
    #: the payload says changes were lost or cannot be read at all: a gap (the service names it)
    lost: bool = False
    #: per table name: records created, updated and deleted, as the payload counts them (applied or not)
    activity: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the base's schema changed (tables or fields created, changed or destroyed): re-read it
    schema_changed: bool = False
    #: Airtable reported lost changes (an error payload): every table has a gap
    error_code: str | None = None
    source: str = ""
    user_id: str | None = None
    transaction: int | None = None
    timestamp: str | None = None


#: field types whose values Airtable computes: a record is whole only with their cells too (a payload that
#: leaves them out, as the sandbox's do, would replace the cached values with blanks)
DERIVED_TYPES = frozenset(
    {"formula", "rollup", "multipleLookupValues", "count", "lastModifiedTime", "lastModifiedBy", "button"}
)


def _derived_missing(table: TableInfo, cells: Mapping[str, Any]) -> bool:
    return any(f.type in DERIVED_TYPES and f.id not in cells for f in table.fields)


def _fields(table: TableInfo, cells: Mapping[str, Any]) -> dict[str, Any] | None:
    """REST `fields` of `cells` (by field id), or None when a field id is not in the schema."""
    by_id = {f.id: f for f in table.fields}
    out: dict[str, Any] = {}
    for fid, raw in cells.items():
        f = by_id.get(fid)
        if f is None:
            return None
        value = rest_value(f.type, raw)
        if not blank(value):
            out[f.name] = value
    return out


def _cells(part: Any) -> dict[str, Any]:
    if isinstance(part, Mapping):
        cells = part.get("cellValuesByFieldId")
        if isinstance(cells, Mapping):
            return dict(cells)
    return {}


def _table_change(base: str, table: TableInfo, body: Mapping[str, Any], out: Translation) -> Change | None:
    """The table's record changes; None after marking the table unknown when they are not exact."""
    counted = {
        "created": len(body.get("createdRecordsById") or {}),
        "updated": len(body.get("changedRecordsById") or {}),
        "deleted": len(body.get("destroyedRecordIds") or []),
    }
    if any(counted.values()):
        out.activity[table.name] = counted
    if any(body.get(k) for k in SCHEMA_KEYS):
        out.schema_changed = True
        out.unknown_tables.add(table.name)
        return None
    created, updated = [], []
    for rid, rec in (body.get("createdRecordsById") or {}).items():
        fields = _fields(table, _cells(rec))
        if (
            fields is None
            or not isinstance(rec, Mapping)
            or not rec.get("createdTime")
            or _derived_missing(table, _cells(rec))
        ):
            out.unknown_tables.add(table.name)
            return None
        created.append({"id": rid, "createdTime": rec["createdTime"], "fields": fields})
    n_fields = len(table.fields)
    for rid, rec in (body.get("changedRecordsById") or {}).items():
        if not isinstance(rec, Mapping):
            out.unknown_tables.add(table.name)
            return None
        cells = {**_cells(rec.get("unchanged")), **_cells(rec.get("current"))}
        if "unchanged" not in rec and len(cells) < n_fields:
            # not every field's value is here: a partial record would read as blanks elsewhere
            out.unknown_tables.add(table.name)
            return None
        fields = _fields(table, cells)
        if fields is None or _derived_missing(table, cells):
            out.unknown_tables.add(table.name)
            return None
        updated.append({"id": rid, "fields": fields})
    destroyed = body.get("destroyedRecordIds") or []
    if not isinstance(destroyed, list):  # a string would read as one deletion per character
        raise TypeError("destroyedRecordIds is not a list")
    deleted = tuple(str(r) for r in destroyed)
    if not created and not updated and not deleted:
        return None
    return Change(base, table.name, "feed", created=tuple(created), updated=tuple(updated), deleted=deleted)


def translate(payload: Mapping[str, Any], schema: BaseSchema) -> Translation:
    """The changes `payload` describes for the tables of `schema` (see the module's rules).

    A payload of a shape this does not expect (a list where an object belongs, …) is a gap in every
    table, never an exception: an exception would stop every later pull at the same cursor."""
    try:
        return _translate(payload, schema)
    except (AttributeError, TypeError, ValueError, KeyError):
        out = Translation(schema_changed=True, lost=True)
        out.unknown_tables.update(t.name for t in schema.tables)
        return out


def _translate(payload: Mapping[str, Any], schema: BaseSchema) -> Translation:
    meta = payload.get("actionMetadata") if isinstance(payload.get("actionMetadata"), Mapping) else {}
    user = ((meta or {}).get("sourceMetadata") or {}).get("user") or {}
    out = Translation(
        source=str((meta or {}).get("source") or ""),
        user_id=str(user["id"]) if isinstance(user, Mapping) and user.get("id") else None,
        transaction=payload.get("baseTransactionNumber")
        if isinstance(payload.get("baseTransactionNumber"), int)
        else None,
        timestamp=str(payload["timestamp"]) if payload.get("timestamp") else None,
    )
    if payload.get("error"):
        out.error_code = str(payload.get("code") or "unknown")
        out.lost = True
        out.unknown_tables.update(t.name for t in schema.tables)
        return out
    if payload.get("createdTablesById") or payload.get("destroyedTableIds"):
        out.schema_changed = True
        for tid in list(payload.get("destroyedTableIds") or ()):
            out.unknown_tables.add(_table_name(schema, str(tid)))
    by_id = {t.id: t for t in schema.tables}
    for tid, body in (payload.get("changedTablesById") or {}).items():
        table = by_id.get(tid)
        if table is None or not isinstance(body, Mapping):
            out.schema_changed = True
            out.unknown_tables.add(str(tid))
            continue
        change = _table_change(schema.base_id, table, body, out)
        if change is not None:
            out.changes.append(change)
    return out


def _table_name(schema: BaseSchema, table_id: str) -> str:
    return next((t.name for t in schema.tables if t.id == table_id), table_id)


def touched(payload: Mapping[str, Any]) -> list[tuple[str, str, str]] | None:
    """(table id, record id, kind) for every record `payload` names — ``upsert`` (created or changed) or
    ``destroy`` — and a ``*fields`` mark for a table whose fields or metadata changed, or ``*gap`` for a
    table destroyed; None for an error payload or one whose shape cannot be read (changes may be lost).

    Unlike `translate`, this needs no cell values and no schema: an incremental backup only needs to
    know which records to fetch again and which are gone."""
    if not isinstance(payload, Mapping) or payload.get("error"):
        return None
    out: list[tuple[str, str, str]] = []
    try:
        for tid in payload.get("destroyedTableIds") or ():
            out.append((str(tid), "*gap", "gap"))
        tables = payload.get("changedTablesById") or {}
        if not isinstance(tables, Mapping):
            return None
        for tid, body in tables.items():
            if not isinstance(body, Mapping):
                return None
            if any(body.get(k) for k in SCHEMA_KEYS):
                out.append((str(tid), "*fields", "fields"))
            for key in ("createdRecordsById", "changedRecordsById"):
                part = body.get(key) or {}
                if not isinstance(part, Mapping):
                    return None
                out += [(str(tid), str(rid), "upsert") for rid in part]
            destroyed = body.get("destroyedRecordIds") or []
            if not isinstance(destroyed, list):
                return None
            out += [(str(tid), str(rid), "destroy") for rid in destroyed]  # after upserts: a record made
            # and destroyed within one payload ends destroyed
    except (AttributeError, TypeError):
        return None
    return out
