"""Airtable's metadata JSON ⇄ the sandbox's BaseDef/TableDef/FieldDef.

Two directions:

- *documents*: the answer of `GET /v0/meta/bases/{id}/tables` (what a user saves from a real base, and
  what a backup's schema.json holds) becomes a BaseDef **keeping** its table, field and view ids
  (`base_from_doc`); fields without an id get a new one. Any field type and any options are accepted and
  stored as given (a real base holds formula, rollup, button… fields; computing them is not this module's
  business), so a loaded base answers its own document back.
- *requests*: the bodies of the metadata write endpoints (create base / table / field) become new
  TableDef/FieldDef with Airtable's validation and errors (`table_from_request`, `field_from_request`).

Error types and messages, with where they come from (recorded answers in public code; Airtable's docs
name no messages):
- `UNSUPPORTED_FIELD_TYPE_FOR_CREATE` "Invalid options for Tasks.Created At: Creating createdTime fields
  is not supported at this time" — a recorded 422 in a public test suite's comment.
- `INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE` "Invalid options for Bilagor.Namn: Failed schema validation:
  options is not included in the Namn.(type=singleLineText) schema" and "…: <Field>.options is missing"
  — recorded 422s quoted in public projects.
- `DUPLICATE_OR_EMPTY_FIELD_NAME` (422) and `DUPLICATE_TABLE_NAME` (422): types seen in public clients'
  error handling; their message text is not recorded anywhere we found, so ours is descriptive.
"""

from __future__ import annotations

import json
import random
from typing import Any

from .schema import CHOICE_COLORS, BaseDef, FieldDef, SchemaError, TableDef, ViewDef, is_id, new_id
from .store import ApiError, invalid_request

# Airtable refuses these through the API (issue 18; field-model docs mark them read-only config);
# the sandbox can still hold them when a document is loaded.
NOT_CREATABLE_TYPES = frozenset(
    {
        "autoNumber",
        "button",
        "count",
        "createdBy",
        "createdTime",
        "formula",
        "lastModifiedBy",
        "lastModifiedTime",
        "multipleLookupValues",
        "rollup",
        "externalSyncSource",
    }
)
# The field types of Airtable's field model (https://airtable.com/developers/web/api/field-model).
KNOWN_TYPES = NOT_CREATABLE_TYPES | {
    "aiText",
    "barcode",
    "checkbox",
    "currency",
    "date",
    "dateTime",
    "duration",
    "email",
    "multilineText",
    "multipleAttachments",
    "multipleCollaborators",
    "multipleRecordLinks",
    "multipleSelects",
    "number",
    "percent",
    "phoneNumber",
    "rating",
    "richText",
    "singleCollaborator",
    "singleLineText",
    "singleSelect",
    "url",
}
# Types whose create request carries no options (Airtable: "options is not included in the … schema").
NO_OPTION_TYPES = frozenset(
    {
        "singleLineText",
        "multilineText",
        "richText",
        "email",
        "url",
        "phoneNumber",
        "barcode",
        "singleCollaborator",
        "multipleCollaborators",
    }
)
# Types whose create request must carry options (recorded "…options is missing" answers; field-model docs).
REQUIRED_OPTIONS = {
    "checkbox": ("color", "icon"),
    "number": ("precision",),
    "percent": ("precision",),
    "currency": ("precision", "symbol"),
    "rating": ("icon", "max", "color"),
    "duration": ("durationFormat",),
    "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"),
    "singleSelect": ("choices",),
    "multipleSelects": ("choices",),
    "multipleRecordLinks": ("linkedTableId",),
}
# Types a primary field may have ("Supported field types", support.airtable.com/docs/the-primary-field),
# less the ones the API cannot create; dateTime is the API's name of a date field with a time.
PRIMARY_TYPES = frozenset(
    {
        "singleLineText",
        "multilineText",
        "date",
        "dateTime",
        "phoneNumber",
        "email",
        "url",
        "number",
        "currency",
        "percent",
        "duration",
        "barcode",
    }
)
MAX_DESCRIPTION = 20000  # pyairtable: "Must be no longer than 20k characters"


# ---------------------------------------------------------------------------- documents → BaseDef


def base_from_doc(doc: Any, base_id: str, name: str, rng: random.Random | None = None) -> BaseDef:
    """A BaseDef from a `GET …/tables` answer, keeping its ids; SchemaError names what is wrong."""
    rng = rng or random.Random()
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), list) or not doc["tables"]:
        raise SchemaError('a schema document is an object with a non-empty "tables" list')
    try:  # JSON's "\ud800" escapes decode to text sqlite and every output refuse (a crash after the load)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError("the document holds text that is not Unicode (a lone surrogate)") from None
    tables: list[TableDef] = []
    seen: set[str] = set()
    for i, t in enumerate(doc["tables"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise SchemaError(f"table #{i + 1}: no name")
        tname = t["name"]
        raw_fields = t.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            raise SchemaError(f"table {tname!r}: no fields")
        fields = []
        for j, f in enumerate(raw_fields):
            if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not isinstance(f.get("type"), str):
                raise SchemaError(f"table {tname!r}: field #{j + 1} needs a name and a type")
            fid = f.get("id") or new_id("fld", rng)
            opts = f.get("options")
            if opts is not None and not isinstance(opts, dict):
                raise SchemaError(f"table {tname!r}: field {f['name']!r}: options is not an object")
            if not isinstance(f.get("description"), (str, type(None))):
                raise SchemaError(f"table {tname!r}: field {f['name']!r}: description is not text")
            fields.append(
                FieldDef(
                    _doc_id(fid, "fld", tname), f["name"], f["type"], dict(opts) if opts else None, f.get("description")
                )
            )
        names = [f.name for f in fields]
        if len(set(n.lower() for n in names)) != len(names):
            raise SchemaError(f"table {tname!r}: duplicate field names")
        if not isinstance(t.get("primaryFieldId"), (str, type(None))) or not isinstance(
            t.get("description"), (str, type(None))
        ):
            raise SchemaError(f"table {tname!r}: primaryFieldId and description are text")
        primary = t.get("primaryFieldId") or fields[0].id
        if primary not in {f.id for f in fields}:
            raise SchemaError(f"table {tname!r}: primaryFieldId {primary!r} is not one of its fields")
        views = []
        raw_views = t.get("views") or [{"name": "Grid view", "type": "grid"}]
        if not isinstance(raw_views, list):
            raise SchemaError(f"table {tname!r}: views is not a list")
        for v in raw_views:
            if not isinstance(v, dict) or not isinstance(v.get("name"), str):
                raise SchemaError(f"table {tname!r}: a view needs a name")
            vid = v.get("id") or new_id("viw", rng)
            views.append(ViewDef(_doc_id(vid, "viw", tname), v["name"], str(v.get("type") or "grid")))
        tid = _doc_id(t.get("id") or new_id("tbl", rng), "tbl", tname)
        for x in [tid, *(f.id for f in fields), *(v.id for v in views)]:
            if x in seen:
                raise SchemaError(f"id {x} appears twice")
            seen.add(x)
        tables.append(TableDef(tid, tname, primary, fields, views, t.get("description") or None))
    if len({t.name.lower() for t in tables}) != len(tables):
        raise SchemaError("duplicate table names")
    base = BaseDef(base_id, name, tables)
    by_id = {t.id: t for t in tables}
    for t in tables:
        for f in t.fields:
            opts = f.options or {}
            if f.type == "multipleRecordLinks":
                if opts.get("linkedTableId") not in by_id:
                    raise SchemaError(f"{t.name}.{f.name}: links to unknown table {opts.get('linkedTableId')!r}")
            elif f.type == "multipleLookupValues":
                # the sandbox computes lookups: the link and the looked-up field must be in the document
                link = t._by_id.get(str(opts.get("recordLinkFieldId")))
                other = by_id.get(str((link.options or {}).get("linkedTableId"))) if link else None
                if (
                    link is None
                    or link.type != "multipleRecordLinks"
                    or other is None
                    or str(opts.get("fieldIdInLinkedTable")) not in other._by_id
                ):
                    raise SchemaError(
                        f"{t.name}.{f.name}: a lookup whose link or looked-up field is not in the document"
                    )
    _refuse_lookup_cycles(tables)
    return base


def _refuse_lookup_cycles(tables: list[TableDef]) -> None:
    """Lookups and rollups whose looked-up fields lead back to themselves: Airtable cannot make one, and
    the sandbox's lookup of a lookup recursed without end on every read and write of the table."""
    target: dict[str, str] = {}
    names: dict[str, str] = {}
    for t in tables:
        for f in t.fields:
            names[f.id] = f"{t.name}.{f.name}"
            looked = (f.options or {}).get("fieldIdInLinkedTable")
            if f.type in ("multipleLookupValues", "rollup") and isinstance(looked, str):
                target[f.id] = looked
    for start in target:
        seen, at = {start}, target[start]
        while at in target:
            if at in seen:
                raise SchemaError(f"{names[start]}: its lookups lead back to themselves")
            seen.add(at)
            at = target[at]


def _doc_id(value: Any, prefix: str, where: str) -> str:
    if not is_id(value, prefix):
        raise SchemaError(f"table {where!r}: {value!r} is not a {prefix} id")
    return str(value)


# ---------------------------------------------------------------------------- requests → new definitions


def _invalid_options(table: str, field: str, detail: str) -> ApiError:
    return ApiError(
        422,
        "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
        f"Invalid options for {table}.{field}: Failed schema validation: {detail}",
    )


def field_from_request(
    body: Any, table_name: str, existing: list[FieldDef], base: BaseDef | None, rng: random.Random
) -> FieldDef:
    """A new field from a create-field (or create-table `fields[]`) object, validated as Airtable does.

    Links are *not* wired here (the inverse field goes into another table): see `wire_link`."""
    if not isinstance(body, dict) or set(body) - {"name", "type", "description", "options"}:
        raise invalid_request()
    name, ftype = body.get("name"), body.get("type")
    if not isinstance(ftype, str):
        raise invalid_request()
    if not isinstance(name, str) or not name.strip() or name.strip().lower() in {f.name.lower() for f in existing}:
        raise ApiError(
            422,
            "DUPLICATE_OR_EMPTY_FIELD_NAME",
            f"Field name {name!r} is empty or already used by another field in {table_name}",
        )
    name = name.strip()
    desc = body.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > MAX_DESCRIPTION):
        raise invalid_request()
    if ftype in NOT_CREATABLE_TYPES:
        raise ApiError(
            422,
            "UNSUPPORTED_FIELD_TYPE_FOR_CREATE",
            f"Invalid options for {table_name}.{name}: Creating {ftype} fields is not supported at this time",
        )
    if ftype not in KNOWN_TYPES:
        # Airtable validates `type` against its enum like any other parameter
        raise invalid_request()
    opts = body.get("options")
    if opts is not None and not isinstance(opts, dict):
        raise invalid_request()
    if ftype in NO_OPTION_TYPES:
        if opts:
            raise _invalid_options(table_name, name, f"options is not included in the {name}.(type={ftype}) schema")
        return FieldDef(new_id("fld", rng), name, ftype, None, desc or None)
    need = REQUIRED_OPTIONS.get(ftype, ())
    if need and not opts:
        raise _invalid_options(table_name, name, f"{name}.options is missing")
    opts = dict(opts or {})
    missing = [k for k in need if k not in opts]
    if missing:
        raise _invalid_options(table_name, name, f"{name}.options.{missing[0]} is missing")
    if ftype in ("singleSelect", "multipleSelects"):
        opts["choices"] = _choices(opts["choices"], table_name, name, rng)
    elif ftype in ("number", "percent", "currency"):
        p = opts["precision"]
        if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 8:
            raise _invalid_options(table_name, name, f"{name}.options.precision must be an integer from 0 to 8")
    elif ftype == "multipleRecordLinks":
        # The create endpoint takes only `linkedTableId` (and the single-link preference) — the rest
        # is Airtable's to set (recorded refusals quoted in public clients).
        if set(opts) - {"linkedTableId", "prefersSingleRecordLink"}:
            extra = sorted(set(opts) - {"linkedTableId", "prefersSingleRecordLink"})[0]
            raise _invalid_options(table_name, name, f"{name}.options.{extra} is not allowed")
        if not is_id(opts["linkedTableId"], "tbl") or (
            base is not None and not _has_table(base, opts["linkedTableId"])
        ):
            raise _invalid_options(table_name, name, f"{name}.options.linkedTableId is not a table of this base")
    elif ftype == "multipleAttachments":
        opts = {"isReversed": bool(opts.get("isReversed", False))}
    return FieldDef(new_id("fld", rng), name, ftype, opts or None, desc or None)


def _choices(raw: Any, table: str, field: str, rng: random.Random) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _invalid_options(table, field, f"{field}.options.choices must be a list")
    out = []
    seen: set[str] = set()
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or set(c) - {"name", "color", "id"}:
            raise _invalid_options(table, field, f"{field}.options.choices[{i}] needs a name")
        if c["name"] in seen:
            raise _invalid_options(table, field, f"{field}.options.choices has a duplicate name {c['name']!r}")
        seen.add(c["name"])
        choice = {"id": new_id("sel", rng), "name": c["name"]}
        choice["color"] = str(c.get("color") or CHOICE_COLORS[i % len(CHOICE_COLORS)])
        out.append(choice)
    return out


def _has_table(base: BaseDef, table_id: Any) -> bool:
    """A table of ``base`` by id (the API names a linked table by id, never by name)."""
    return any(t.id == table_id for t in base.tables)


def wire_link(base: BaseDef, table: TableDef, f: FieldDef, rng: random.Random) -> None:
    """Complete a new link field's options and give it its inverse field in the linked table (none when
    the link is to its own table, as in Airtable)."""
    opts = f.options or {}
    other = base.table(str(opts["linkedTableId"]))
    assert other is not None  # checked by field_from_request
    single = bool(opts.get("prefersSingleRecordLink", False))
    if other.id == table.id:
        f.options = {"linkedTableId": table.id, "isReversed": False, "prefersSingleRecordLink": single}
        return
    inverse_name = table.name
    taken = {x.name.lower() for x in other.fields}
    n = 2
    while inverse_name.lower() in taken:  # Airtable numbers the inverse when the name is taken
        inverse_name = f"{table.name} {n}"
        n += 1
    inv = FieldDef(new_id("fld", rng), inverse_name, "multipleRecordLinks", None)
    inv.options = {
        "linkedTableId": table.id,
        "isReversed": False,
        "prefersSingleRecordLink": False,
        "inverseLinkFieldId": f.id,
    }
    f.options = {
        "linkedTableId": other.id,
        "isReversed": False,
        "prefersSingleRecordLink": single,
        "inverseLinkFieldId": inv.id,
    }
    other.fields.append(inv)
    other.reindex()


def table_from_request(
    body: Any, base: BaseDef, rng: random.Random, *, others: list[TableDef] | None = None
) -> TableDef:
    """A new table from a create-table object (`{name, description?, fields}`); links are wired by the caller
    once every table of the request exists (`finish_links`)."""
    if not isinstance(body, dict) or set(body) - {"name", "description", "fields"}:
        raise invalid_request()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_request()
    name = name.strip()
    taken = {t.name.lower() for t in [*base.tables, *(others or [])]}
    if name.lower() in taken:
        raise ApiError(422, "DUPLICATE_TABLE_NAME", f"A table named {name!r} already exists in this base")
    desc = body.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > MAX_DESCRIPTION):
        raise invalid_request()
    raw = body.get("fields")
    if not isinstance(raw, list) or not raw:
        # Airtable: a table needs at least its primary field
        raise invalid_request()
    fields: list[FieldDef] = []
    for fb in raw:
        # links may point to tables created in the same request: checked in finish_links
        fields.append(field_from_request(fb, name, fields, None, rng))
    table = TableDef(
        new_id("tbl", rng), name, fields[0].id, fields, [ViewDef(new_id("viw", rng), "Grid view")], desc or None
    )
    if fields[0].type not in PRIMARY_TYPES:
        # the error type Airtable uses here is not recorded; the options error is the nearest we know
        raise _invalid_options(name, fields[0].name, f"{fields[0].type} cannot be the primary field")
    return table


def finish_links(base: BaseDef, new_tables: list[TableDef], rng: random.Random) -> None:
    """Wire the link fields of tables just added to `base` (their linked tables must exist by now)."""
    for t in new_tables:
        for f in list(t.fields):
            if f.type == "multipleRecordLinks" and "isReversed" not in (f.options or {}):
                linked = str((f.options or {}).get("linkedTableId"))
                if not _has_table(base, linked):
                    raise _invalid_options(
                        t.name, f.name, f"{f.name}.options.linkedTableId is not a table of this base"
                    )
                wire_link(base, t, f, rng)
        t.reindex()
