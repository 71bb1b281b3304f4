"""Schema recreation for `backup restore`: the tables and fields a target lacks, made from the backup's schema.json.

Three parts, each usable alone:

- :func:`plan_schema` — pure: from the backup's schema (the metadata API's answer, saved at backup time),
  the target's current schema and the tables to restore, a typed :class:`SchemaPlan`: the tables to create
  (with every field the API can create, primary first), the fields to add to tables that exist, the link
  fields (created once every table exists, one side of each pair: Airtable makes the inverse, which is
  renamed to the backup's name), and what a person must recreate by hand (:class:`ManualItem`: formula,
  rollup, lookup, count, autoNumber, created/modified time and by, button; the views). A field the target
  has with another type (or a link to another table) is a :class:`~beststag_cli.errors.SchemaConflict`,
  raised before anything is written; nothing is ever converted.
- :func:`execute_schema` — carries a plan out through the gateway's metadata writes. Exactly once by the
  end state: every table and field is looked up by name in the target before it is created (Airtable refuses
  a second table or field of the same name anyway), and a create whose answer is lost is looked for by
  reading the schema again before it is sent again. A run killed half-way is planned again from the target
  as it is, so the next run creates only what is still missing.
- :func:`write_manual` — the manual list as a 0600 JSON file under ``<data dir>/restores/`` (0700).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import errors
from beststag_cli.fsutil import ensure_private_dir, write_private_file
from beststag_cli.logs import log_event

if TYPE_CHECKING:
    from beststag_cli.gateway.api import Gateway

#: field types Airtable computes; a restore never writes them (and the API cannot create them)
COMPUTED_TYPES = frozenset(
    {
        "formula",
        "rollup",
        "multipleLookupValues",
        "count",
        "autoNumber",
        "createdTime",
        "lastModifiedTime",
        "createdBy",
        "lastModifiedBy",
        "button",
        "aiText",
        "externalSyncSource",
        "manualSort",
    }
)
#: types whose create request carries no options
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
#: the options each creatable type's create request takes (Airtable's field model, write side)
WRITE_OPTIONS: dict[str, tuple[str, ...]] = {
    "number": ("precision",),
    "percent": ("precision",),
    "currency": ("precision", "symbol"),
    "duration": ("durationFormat",),
    "rating": ("icon", "max", "color"),
    "checkbox": ("icon", "color"),
    "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"),
    "singleSelect": ("choices",),
    "multipleSelects": ("choices",),
    "multipleAttachments": ("isReversed",),
    "multipleRecordLinks": ("prefersSingleRecordLink",),  # + linkedTableId, the target's id, at create time
}
#: types a table's primary field can be created with
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
#: the view every table Airtable creates starts with
DEFAULT_VIEW = "Grid view"
#: attempts per metadata create when Airtable fails or loses the answer
ATTEMPTS = 6
_FIELD_REF = re.compile(r"\{(fld[A-Za-z0-9]{14})\}")


def creatable(ftype: str) -> bool:
    """True if the metadata API can create a field of ``ftype``."""
    return ftype in NO_OPTION_TYPES or ftype in WRITE_OPTIONS


# --------------------------------------------------------------------------------------------
# the plan


@dataclass
class NewField:
    table: str
    name: str
    type: str
    options: dict[str, Any] | None = None
    description: str | None = None
    #: links: the linked table's name
    link_to: str | None = None
    #: links: the backup's name of the inverse field Airtable makes in ``link_to`` (renamed to it)
    inverse: str | None = None
    #: links: the backup's description of that inverse field (set with its name)
    inverse_description: str | None = None

    def body(self, table_ids: Mapping[str, str]) -> dict[str, Any]:
        """The create request's object; a link's ``linkedTableId`` is the target's id of ``link_to``."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        opts = dict(self.options or {})
        if self.type == "multipleRecordLinks":
            opts["linkedTableId"] = table_ids[str(self.link_to)]
        if opts:
            out["options"] = opts
        return out

    def label(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass
class NewTable:
    name: str
    fields: list[NewField]
    description: str | None = None
    #: the backup's primary field cannot be created (a formula, an autoNumber…): a text field holds its place
    placeholder_primary: bool = False

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "fields": [f.body({}) for f in self.fields]}
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class ManualItem:
    """A field the API cannot create, with what a person needs to recreate it."""

    table: str
    field: str
    type: str
    what: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class SchemaPlan:
    tables: list[NewTable] = field(default_factory=list)
    #: into tables that exist (or are created first): plain fields, then links
    fields: list[NewField] = field(default_factory=list)
    manual: list[ManualItem] = field(default_factory=list)
    #: table → the backup's views the target lacks (``{name, type}``); the API cannot create views
    views: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return len(self.tables) + len(self.fields)

    def will_exist(self, table: str, name: str, target_fields: Mapping[str, set[str]]) -> bool:
        """True if ``table.name`` is in the target, or this plan creates it (as a field or as an inverse)."""
        if name in target_fields.get(table, set()):
            return True
        for t in self.tables:
            if t.name == table and any(f.name == name for f in t.fields):
                return True
        return any(
            (f.table == table and f.name == name) or (f.link_to == table and f.inverse == name) for f in self.fields
        )

    def summary(self) -> dict[str, Any]:
        return {
            "create_tables": {t.name: [f.name for f in t.fields] for t in self.tables},
            "create_fields": [f.label() for f in self.fields],
            "manual": [asdict(m) for m in self.manual],
            "views": self.views,
            "warnings": self.warnings,
        }


def _index(schema: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    tables = {t["name"]: t for t in schema.get("tables", [])}
    return tables, {t["id"]: t["name"] for t in schema.get("tables", [])}


def _write_options(f: Mapping[str, Any]) -> dict[str, Any] | None:
    t = f["type"]
    if t in NO_OPTION_TYPES:
        return None
    opts = f.get("options") or {}
    out = {k: opts[k] for k in WRITE_OPTIONS[t] if k in opts}
    if t in ("singleSelect", "multipleSelects"):
        # a create names its choices; their ids are Airtable's to give
        out["choices"] = [
            {"name": c["name"], **({"color": c["color"]} if c.get("color") else {})} for c in opts.get("choices") or []
        ]
    return out or None


def _single(f: Mapping[str, Any]) -> bool:
    return bool((f.get("options") or {}).get("prefersSingleRecordLink"))


def _new_field(table: str, f: Mapping[str, Any]) -> NewField:
    return NewField(table, f["name"], f["type"], _write_options(f), f.get("description") or None)


def plan_schema(
    backup_schema: Mapping[str, Any], target_schema: Mapping[str, Any], tables: list[str], *, target_base: str = ""
) -> SchemaPlan:
    """What the target lacks of ``tables`` (in the backup's schema), and what only a person can add.

    Pure: no I/O. :raises SchemaConflict: a field of the target has another type than in the backup, or a
    link of the target points to another table (named with both types or tables).
    """
    src, src_ids = _index(backup_schema)
    tgt, tgt_ids = _index(target_schema)
    fid: dict[str, tuple[str, str]] = {f["id"]: (t["name"], f["name"]) for t in src.values() for f in t["fields"]}
    where = f"base {target_base}" if target_base else "the target base"
    _check_conflicts(src, src_ids, tgt, tgt_ids, tables, where)
    plan = SchemaPlan()
    target_fields = {n: {f["name"] for f in t["fields"]} for n, t in tgt.items()}
    will_exist = set(tgt) | set(tables)

    for n in tables:  # the tables to create, with every plain field the API can create
        if n in tgt:
            continue
        st = src[n]
        primary_id = st.get("primaryFieldId") or st["fields"][0]["id"]
        prim = next((f for f in st["fields"] if f["id"] == primary_id), st["fields"][0])
        nt = NewTable(n, [], st.get("description") or None)
        if prim["type"] in PRIMARY_TYPES:
            nt.fields.append(_new_field(n, prim))
        else:
            nt.placeholder_primary = True
            nt.fields.append(NewField(n, prim["name"], "singleLineText", None, prim.get("description") or None))
        for f in st["fields"]:
            if f is not prim and creatable(f["type"]) and f["type"] != "multipleRecordLinks":
                nt.fields.append(_new_field(n, f))
        plan.tables.append(nt)
    for n in tables:  # plain fields an existing table lacks
        for f in src[n]["fields"] if n in tgt else []:
            if f["name"] not in target_fields[n] and creatable(f["type"]) and f["type"] != "multipleRecordLinks":
                plan.fields.append(_new_field(n, f))
    covered: set[tuple[str, str]] = set()  # inverse fields Airtable makes with a planned link
    links = [
        (n, f)
        for n in tables
        for f in src[n]["fields"]
        if f["type"] == "multipleRecordLinks" and f["name"] not in target_fields.get(n, set())
    ]
    todo = {(n, f["name"]) for n, f in links}
    by_name = {(n, f["name"]): f for n, t in src.items() for f in t["fields"]}
    for n, f in links:
        if (n, f["name"]) in covered:
            continue
        opts = f.get("options") or {}
        other = src_ids.get(str(opts.get("linkedTableId")))
        if other is None or other not in will_exist:
            plan.warnings.append(
                f"{n}.{f['name']}: links to table {other!r}, which is neither restored nor in the target; "
                "the field is not created and its links are not restored"
            )
            continue
        inv = fid.get(str(opts.get("inverseLinkFieldId")))
        inverse = inv[1] if inv is not None and inv[0] == other and inv[1] != f["name"] else None
        inv_field = by_name.get((other, inverse)) if inverse is not None else None
        if inv_field is not None and (other, inverse) in todo and _single(inv_field) and not _single(f):
            continue  # made from the other side: only the side created keeps its single-link preference
        if inv_field is not None and _single(inv_field) and _single(f):
            plan.warnings.append(
                f"{other}.{inverse}: Airtable makes it (the inverse of {n}.{f['name']}) allowing several "
                "links; turn 'Allow linking to multiple records' off by hand (the API cannot)"
            )
        if inverse is not None and inverse in target_fields.get(other, set()):
            now = next(x["type"] for x in tgt[other]["fields"] if x["name"] == inverse)
            why = (
                f"is a {now} field in the target (what Airtable leaves of the links to a deleted table)"
                if now != "multipleRecordLinks"
                else "is in the target already, paired with another field"
            )
            plan.warnings.append(
                f"{n}.{f['name']}: its inverse {other}.{inverse} {why}; Airtable gives the new inverse field "
                f"in {other} another name (delete the old field and rename the new one by hand)"
            )
            inverse = None
        elif inverse is not None:
            covered.add((other, inverse))
        elif other != n:
            plan.warnings.append(
                f"{n}.{f['name']}: a one-way link in the backup; Airtable adds an inverse field to {other} "
                "(delete it by hand if it is not wanted)"
            )
        nf = _new_field(n, f)
        nf.link_to, nf.inverse = other, inverse
        if inverse is not None and inv_field is not None:
            nf.inverse_description = inv_field.get("description") or None
        plan.fields.append(nf)
    plan.manual = manual_items(backup_schema, target_schema, tables)
    for n in tables:
        have = {v["name"] for v in (tgt[n].get("views") or [])} if n in tgt else {DEFAULT_VIEW}
        missing = [{"name": v["name"], "type": v.get("type", "grid")} for v in src[n].get("views") or []]
        missing = [v for v in missing if v["name"] not in have]
        if missing:
            plan.views[n] = missing
    return plan


def _check_conflicts(
    src: dict[str, dict[str, Any]],
    src_ids: dict[str, str],
    tgt: dict[str, dict[str, Any]],
    tgt_ids: dict[str, str],
    tables: list[str],
    where: str,
) -> None:
    # Airtable's names are unique whatever their case: a create of "Nome" next to "nome" is refused
    folded = {n.casefold(): n for n in tgt}
    for n in tables:
        if n not in tgt and n.casefold() in folded:
            raise errors.SchemaConflict(
                f"{where}: a table is named {folded[n.casefold()]!r} there and {n!r} in the backup; nothing was written"
            )
    for n in tables:
        if n not in tgt:
            continue
        have = {f["name"]: f for f in tgt[n]["fields"]}
        names = {x.casefold(): x for x in have}
        for f in src[n]["fields"]:
            t = have.get(f["name"])
            if t is None and f["name"].casefold() in names and creatable(f["type"]):
                raise errors.SchemaConflict(
                    f"{where}: table {n!r} has a field {names[f['name'].casefold()]!r} there and {f['name']!r} in "
                    "the backup; nothing was written"
                )
            if t is None or f["type"] in COMPUTED_TYPES:
                continue
            if t["type"] != f["type"]:
                raise errors.SchemaConflict(
                    f"{where}: field {n}.{f['name']} is {t['type']} there and {f['type']} in the backup; "
                    "nothing was written"
                )
            if f["type"] == "multipleRecordLinks":
                want = src_ids.get(str((f.get("options") or {}).get("linkedTableId")))
                got = tgt_ids.get(str((t.get("options") or {}).get("linkedTableId")))
                if want != got:
                    raise errors.SchemaConflict(
                        f"{where}: field {n}.{f['name']} links to table {got!r} there and to {want!r} in the "
                        "backup; nothing was written"
                    )


# --------------------------------------------------------------------------------------------
# what a person must do


def translate_formula(text: str, names: Mapping[str, str]) -> str:
    """``{fldXXXXXXXXXXXXXX}`` references in a formula back to ``{Field name}`` (unknown ids stay)."""
    return _FIELD_REF.sub(lambda m: "{" + names[m.group(1)] + "}" if m.group(1) in names else m.group(0), text)


def manual_items(
    backup_schema: Mapping[str, Any], target_schema: Mapping[str, Any], tables: list[str]
) -> list[ManualItem]:
    """The fields of ``tables`` the API cannot create and the target lacks (by name and type), each with
    what a person needs: formula text (field names, not ids), a rollup's link, field and aggregation, a
    lookup's link and field, a count's link."""
    src, _ = _index(backup_schema)
    tgt, _ = _index(target_schema)
    fid: dict[str, tuple[str, str]] = {f["id"]: (t["name"], f["name"]) for t in src.values() for f in t["fields"]}
    out: list[ManualItem] = []
    for n in tables:
        st = src[n]
        local = {f["id"]: f["name"] for f in st["fields"]}
        have = {f["name"]: f["type"] for f in tgt[n]["fields"]} if n in tgt else {}
        primary_id = st.get("primaryFieldId") or st["fields"][0]["id"]
        for f in st["fields"]:
            placeholder = f["id"] == primary_id and f["type"] not in PRIMARY_TYPES
            if (creatable(f["type"]) and not placeholder) or have.get(f["name"]) == f["type"]:
                continue
            what, details = _describe(f, local, fid)
            now = have.get(f["name"]) or ("singleLineText" if placeholder else None)
            if now is not None:
                what = f"the field exists as {now} (the table's primary field): change its type to {what}"
                details["now"] = now
            out.append(ManualItem(n, f["name"], f["type"], what, details))
    return out


def _describe(
    f: Mapping[str, Any], local: Mapping[str, str], fid: Mapping[str, tuple[str, str]]
) -> tuple[str, dict[str, Any]]:
    t = f["type"]
    opts = f.get("options") or {}
    result = (opts.get("result") or {}).get("type")
    details: dict[str, Any] = {"result": result} if result else {}

    def link_and_field() -> tuple[str | None, str | None, str | None]:
        link = local.get(str(opts.get("recordLinkFieldId")))
        linked = fid.get(str(opts.get("fieldIdInLinkedTable")))
        return link, linked[0] if linked else None, linked[1] if linked else None

    if t == "formula":
        formula = translate_formula(str(opts.get("formula") or ""), local)
        details["formula"] = formula
        return f"formula: {formula}", details
    if t in ("rollup", "multipleLookupValues"):
        link, table, name = link_and_field()
        details.update({"link": link, "linked_table": table, "linked_field": name})
        if t == "multipleLookupValues":
            return f"lookup of {table}.{name} through the link {link!r}", details
        agg = opts.get("formula")
        if agg:
            details["aggregation"] = translate_formula(str(agg), {**local, **{k: v[1] for k, v in fid.items()}})
        how = details.get("aggregation") or "aggregation not in the schema (see the original base)"
        return f"rollup of {table}.{name} through the link {link!r}: {how}", details
    if t == "count":
        link = local.get(str(opts.get("recordLinkFieldId")))
        details["link"] = link
        return f"count of the records linked in {link!r}", details
    if t in ("lastModifiedTime", "lastModifiedBy"):
        refs = [local.get(str(x), str(x)) for x in opts.get("referencedFieldIds") or []]
        details["fields"] = refs
        of = f" of the fields {', '.join(refs)}" if refs else " (any field)"
        return ("last modified time" if t == "lastModifiedTime" else "last modified by") + of, details
    words = {
        "autoNumber": "autonumber (the restored records are numbered anew)",
        "createdTime": "created time (the restored records show the time of the restore)",
        "createdBy": "created by (the restored records show the token's user)",
        "button": "button (its label and action are not in the schema; see the original base)",
        "aiText": "AI text field",
    }
    if t == "aiText" and opts.get("prompt"):
        details["prompt"] = opts["prompt"]
    return words.get(t, f"{t} field (the API cannot create it)"), details


def write_manual(data_dir: Path, restore_id: str, plan: SchemaPlan, *, backup_id: str, target_base: str) -> Path:
    """The manual list (fields and views) as ``<data dir>/restores/<restore id>-manual.json`` (0600 in 0700)."""
    folder = ensure_private_dir(Path(data_dir) / "restores")
    path = folder / f"{restore_id}-manual.json"
    doc = {
        "restore_id": restore_id,
        "backup_id": backup_id,
        "target_base": target_base,
        "fields": [asdict(m) for m in plan.manual],
        "views": plan.views,
        "warnings": plan.warnings,
    }
    write_private_file(path, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# execute


@dataclass
class SchemaOutcome:
    tables_created: list[str] = field(default_factory=list)
    fields_created: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    #: already in the target when their turn came (an earlier run, or a create whose answer was lost)
    found: list[str] = field(default_factory=list)
    #: table name → its id in the target, once it exists
    table_ids: dict[str, str] = field(default_factory=dict)


def _retryable(e: BaseException) -> bool:
    return isinstance(e, errors.UpstreamUnavailable) and not isinstance(e, errors.UpstreamAuthError)


def _duplicate(e: BaseException) -> bool:
    return isinstance(e, errors.BadInput) and ("DUPLICATE_TABLE_NAME" in e.message or "DUPLICATE_OR_EMPTY" in e.message)


def _read(tgw: Gateway) -> dict[str, Any]:
    for attempt in range(1, 4):
        try:
            return tgw.schema()
        except errors.BestStagError as e:
            if not _retryable(e) or attempt == 3:
                raise
            tgw.sleep(tgw._backoff(attempt, None))
    raise AssertionError("unreachable")


def _once(tgw: Gateway, what: str, send: Callable[[], Any], find: Callable[[dict[str, Any]], Any]) -> tuple[bool, Any]:
    """Send a create until it is applied, exactly once: after a failure the schema is read again, and what
    the lost answer did create is found by name. ``(True, answer)`` if this call created it, ``(False,
    None)`` if it was found."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return True, send()
        except errors.BestStagError as e:
            if not (_retryable(e) or _duplicate(e)) or attempt == ATTEMPTS:
                raise
            log_event("restore.retry", _level=30, what=what, attempt=attempt, error=str(e)[:200])
            if not _duplicate(e):
                tgw.sleep(tgw._backoff(attempt, None))
            if find(_read(tgw)) is not None:
                return False, None
            if _duplicate(e):
                raise
    raise AssertionError("unreachable")


def _table(schema: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in schema.get("tables", []) if t["name"] == name), None)


def _field(schema: Mapping[str, Any], table: str, name: str) -> dict[str, Any] | None:
    t = _table(schema, table)
    return next((f for f in t["fields"] if f["name"] == name), None) if t else None


def execute_schema(tgw: Gateway, plan: SchemaPlan, *, progress: Callable[[str], None] | None = None) -> SchemaOutcome:
    """Create what ``plan`` says, in order (tables, plain fields, links), each once; see the module doc."""
    out = SchemaOutcome()
    schema = _read(tgw)
    tell = progress or (lambda _msg: None)
    for nt in plan.tables:
        if _table(schema, nt.name) is not None:
            out.found.append(nt.name)
            continue
        made, answer = _once(
            tgw,
            f"create table {nt.name}",
            lambda nt=nt: tgw.create_table(nt.name, nt.body()["fields"], description=nt.description, source="restore"),  # type: ignore[misc]
            lambda s, nt=nt: _table(s, nt.name),  # type: ignore[misc]
        )
        (out.tables_created if made else out.found).append(nt.name)
        tell(f"table {nt.name}")
        if made and isinstance(answer, dict) and answer.get("name") == nt.name and "fields" in answer:
            schema["tables"].append(answer)  # the answer is the table model: no need to read it back
        else:
            schema = _read(tgw)
    for nf in plan.fields:
        if _field(schema, nf.table, nf.name) is None:
            ids = {t["name"]: t["id"] for t in schema.get("tables", [])}
            if nf.table not in ids or (nf.link_to is not None and nf.link_to not in ids):
                raise errors.OperationFailed(
                    f"cannot create {nf.label()}: table {nf.table if nf.table not in ids else nf.link_to!r} "
                    "is not in the target base"
                )
            made, answer = _once(
                tgw,
                f"create field {nf.label()}",
                lambda nf=nf, ids=ids: tgw.create_field(nf.table, ids[nf.table], nf.body(ids), source="restore"),  # type: ignore[misc]
                lambda s, nf=nf: _field(s, nf.table, nf.name),  # type: ignore[misc]
            )
            (out.fields_created if made else out.found).append(nf.label())
            tell(f"field {nf.label()}")
            table = _table(schema, nf.table)
            if made and nf.link_to is None and table is not None and isinstance(answer, dict) and "id" in answer:
                table["fields"].append(answer)  # the field model; a link also changed its linked table: read
            else:
                schema = _read(tgw)
        else:
            out.found.append(nf.label())
        if nf.inverse is not None:
            schema = _rename_inverse(tgw, schema, nf, out)
    out.table_ids = {t["name"]: t["id"] for t in schema.get("tables", [])}
    return out


def _rename_inverse(tgw: Gateway, schema: dict[str, Any], nf: NewField, out: SchemaOutcome) -> dict[str, Any]:
    """Give the inverse Airtable made for link ``nf`` the backup's name (idempotent: a PATCH of the name)."""
    made = _field(schema, nf.table, nf.name)
    other = _table(schema, str(nf.link_to))
    inv_id = ((made or {}).get("options") or {}).get("inverseLinkFieldId")
    if made is None or other is None or not inv_id:
        return schema
    inv = next((f for f in other["fields"] if f["id"] == inv_id), None)
    want = {"name": nf.inverse, "description": nf.inverse_description}
    if inv is None or all((inv.get(k) or None) == v for k, v in want.items()):
        return schema
    if any(f["name"] == nf.inverse and f["id"] != inv_id for f in other["fields"]):
        return schema  # taken (a warning of the plan said so)
    body = {k: v for k, v in want.items() if v is not None}

    def renamed(s: dict[str, Any]) -> Any:
        t = _table(s, str(nf.link_to))
        hit = next((f for f in (t or {}).get("fields", []) if f["id"] == inv_id), None)
        return hit if hit is not None and all(hit.get(k) == v for k, v in body.items()) else None

    _once(
        tgw,
        f"rename {nf.link_to}.{inv['name']}",
        lambda: tgw.update_field(str(nf.link_to), other["id"], inv_id, body, source="restore"),
        renamed,
    )
    out.renamed.append(f"{nf.link_to}.{inv['name']} → {nf.inverse}")
    return _read(tgw)
