"""Schema model of the sandbox: bases, tables, fields and views, with Airtable's ids and JSON.

A base is declared with a *BaseSpec* (plain dict; names instead of ids, see `sample.py`) and
turned into `BaseDef` by `build_base`, which assigns ids and creates inverse link fields.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

ID_ALPHABET = string.ascii_letters + string.digits
ID_BODY_LEN = 14

COMPUTED_TYPES = frozenset(
    {
        "createdTime",
        "lastModifiedTime",
        "autoNumber",
        "multipleLookupValues",
        "formula",
        "rollup",
        "count",
        "createdBy",
        "lastModifiedBy",
        "button",
    }
)
#: computed and people fields: their formula value and cell JSON are computed.py's (one list for both)
EVALUATED_TYPES = frozenset(
    {
        "formula",
        "rollup",
        "count",
        "createdBy",
        "lastModifiedBy",
        "button",
        "singleCollaborator",
        "multipleCollaborators",
        "barcode",
    }
)
#: types whose BaseSpec options computed_schema.py resolves
SPEC_TYPES = EVALUATED_TYPES | {"duration", "rating"}
TEXT_TYPES = frozenset({"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"})
NUMBER_TYPES = frozenset({"number", "percent", "currency", "duration", "rating"})
SUPPORTED_TYPES = (
    TEXT_TYPES
    | NUMBER_TYPES
    | {
        "checkbox",
        "singleSelect",
        "multipleSelects",
        "date",
        "dateTime",
        "createdTime",
        "lastModifiedTime",
        "autoNumber",
        "multipleRecordLinks",
        "multipleLookupValues",
        "multipleAttachments",
    }
    | EVALUATED_TYPES
)
# Types allowed in performUpsert.fieldsToMergeOn (Airtable's documented list).
MERGE_ON_TYPES = TEXT_TYPES | {"number", "percent", "currency", "singleSelect", "multipleSelects", "date", "dateTime"}
CHOICE_COLORS = (
    "blueLight2",
    "cyanLight2",
    "tealLight2",
    "greenLight2",
    "yellowLight2",
    "orangeLight2",
    "redLight2",
    "pinkLight2",
    "purpleLight2",
    "grayLight2",
)


def new_id(prefix: str, rng: random.Random | None = None) -> str:
    """An Airtable-style id: a three-letter prefix and 14 alphanumerics (17 characters)."""
    r = rng or _SYSRAND
    return prefix + "".join(r.choice(ID_ALPHABET) for _ in range(ID_BODY_LEN))


_SYSRAND = random.SystemRandom()


def is_id(value: object, prefix: str) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 3 + ID_BODY_LEN
        and value.startswith(prefix)
        and value[3:].isalnum()
        and value[3:].isascii()
    )


class SchemaError(ValueError):
    """A BaseSpec is inconsistent (unknown linked table, bad option)."""


@dataclass
class FieldDef:
    id: str
    name: str
    type: str
    options: dict[str, Any] | None = None
    description: str | None = None

    @property
    def computed(self) -> bool:
        return self.type in COMPUTED_TYPES

    def to_meta(self, *, stored: bool = False) -> dict[str, Any]:
        """Airtable's field JSON; `stored=True` keeps options Airtable does not show (a button's)."""
        out: dict[str, Any] = {"type": self.type, "id": self.id, "name": self.name}
        if self.description:
            out["description"] = self.description
        if self.options is not None and (stored or self.type != "button"):
            out["options"] = self.options
        return out

    def choice_names(self) -> list[str]:
        return [c["name"] for c in (self.options or {}).get("choices", [])]


@dataclass
class ViewDef:
    id: str
    name: str
    type: str = "grid"
    filter: str | None = None  # a formula over field names, like a view's filter conditions
    sort: list[tuple[str, str]] = field(default_factory=list)  # (field id, asc|desc)

    def to_meta(self, table: TableDef, include_visible: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if include_visible and self.type == "grid":
            out["visibleFieldIds"] = [f.id for f in table.fields]
        return out


@dataclass
class TableDef:
    id: str
    name: str
    primary_field_id: str
    fields: list[FieldDef]
    views: list[ViewDef]
    description: str | None = None

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self._by_id = {f.id: f for f in self.fields}
        self._by_name = {f.name: f for f in self.fields}

    def field(self, name_or_id: str) -> FieldDef | None:
        """Field by exact name, else by id (Airtable accepts both)."""
        return self._by_name.get(name_or_id) or self._by_id.get(name_or_id)

    def field_by_id(self, field_id: str) -> FieldDef:
        return self._by_id[field_id]

    @property
    def primary(self) -> FieldDef:
        return self._by_id[self.primary_field_id]

    def view(self, name_or_id: str) -> ViewDef | None:
        for v in self.views:
            if v.name == name_or_id or v.id == name_or_id:
                return v
        return None

    def to_meta(self, include_visible: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "primaryFieldId": self.primary_field_id}
        if self.description:
            out["description"] = self.description
        out["fields"] = [f.to_meta() for f in self.fields]
        out["views"] = [v.to_meta(self, include_visible) for v in self.views]
        return out


@dataclass
class BaseDef:
    id: str
    name: str
    tables: list[TableDef]

    def table(self, name_or_id: str) -> TableDef | None:
        for t in self.tables:
            if t.id == name_or_id:
                return t
        for t in self.tables:
            if t.name == name_or_id:
                return t
        # ❓ then regardless of case, when only one table matches: pyairtable's integration suite reads
        # the table "Everything" of its real test base as "EVERYTHING" (tests/integration/test_high_volume.py)
        folded = [t for t in self.tables if t.name.casefold() == name_or_id.casefold()]
        return folded[0] if len(folded) == 1 else None

    def table_by_id(self, table_id: str) -> TableDef:
        for t in self.tables:
            if t.id == table_id:
                return t
        raise KeyError(table_id)

    def to_meta(self, include_visible: bool = False) -> dict[str, Any]:
        return {"tables": [t.to_meta(include_visible) for t in self.tables]}

    # --- persistence (the store keeps the schema as one JSON document per base)
    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tables": [
                {
                    "id": t.id,
                    "name": t.name,
                    "description": t.description,
                    "primaryFieldId": t.primary_field_id,
                    "fields": [f.to_meta(stored=True) for f in t.fields],
                    "views": [
                        {"id": v.id, "name": v.name, "type": v.type, "filter": v.filter, "sort": v.sort}
                        for v in t.views
                    ],
                }
                for t in self.tables
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaseDef:
        tables = []
        for t in data["tables"]:
            fields = [
                FieldDef(f["id"], f["name"], f["type"], f.get("options"), f.get("description")) for f in t["fields"]
            ]
            views = [
                ViewDef(
                    v["id"], v["name"], v.get("type", "grid"), v.get("filter"), [tuple(s) for s in v.get("sort") or []]
                )
                for v in t["views"]
            ]
            tables.append(TableDef(t["id"], t["name"], t["primaryFieldId"], fields, views, t.get("description")))
        return cls(data["id"], data["name"], tables)


def _choices(raw: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(raw):
        out.append(
            {
                "id": c.get("id") or new_id("sel", rng),
                "name": c["name"],
                "color": c.get("color", CHOICE_COLORS[i % len(CHOICE_COLORS)]),
            }
        )
    return out


def build_base(spec: dict[str, Any], base_id: str, rng: random.Random | None = None) -> BaseDef:
    """Assign ids to a BaseSpec, create inverse link fields and resolve names in options."""
    rng = rng or random.Random()
    tables: list[TableDef] = []
    for tspec in spec["tables"]:
        fields = []
        for fspec in tspec["fields"]:
            if fspec["type"] not in SUPPORTED_TYPES:
                raise SchemaError(f"unsupported field type {fspec['type']!r} in {tspec['name']}")
            fields.append(
                FieldDef(
                    new_id("fld", rng),
                    fspec["name"],
                    fspec["type"],
                    dict(fspec.get("options") or {}),
                    fspec.get("description"),
                )
            )
        if not fields:
            raise SchemaError(f"table {tspec['name']} has no fields")
        tables.append(TableDef(new_id("tbl", rng), tspec["name"], fields[0].id, fields, [], tspec.get("description")))
    base = BaseDef(base_id, spec.get("name", "Base"), tables)

    def need_table(name: str) -> TableDef:
        t = base.table(name)
        if t is None:
            raise SchemaError(f"unknown linked table {name!r}")
        return t

    # links first (lookups refer to them), creating inverse fields where missing
    for t in list(base.tables):
        for f in list(t.fields):
            if f.type != "multipleRecordLinks" or "linkedTableId" in (f.options or {}):
                continue
            opts = f.options or {}
            other = need_table(opts["linkedTable"])
            if other is t:  # a link to its own table has no inverse field in Airtable
                f.options = {
                    "linkedTableId": t.id,
                    "isReversed": False,
                    "prefersSingleRecordLink": bool(opts.get("prefersSingleRecordLink", False)),
                }
                continue
            inverse_name = opts.get("inverseField") or f"{t.name} ({f.name})"
            inv = other.field(inverse_name)
            if inv is None:
                inv = FieldDef(new_id("fld", rng), inverse_name, "multipleRecordLinks", {})
                other.fields.append(inv)
                other.reindex()
            f.options = {
                "linkedTableId": other.id,
                "isReversed": False,
                "prefersSingleRecordLink": bool(opts.get("prefersSingleRecordLink", False)),
                "inverseLinkFieldId": inv.id,
            }
            inv.options = {
                "linkedTableId": t.id,
                "isReversed": False,
                "prefersSingleRecordLink": bool((inv.options or {}).get("prefersSingleRecordLink")),
                "inverseLinkFieldId": f.id,
            }
    from . import computed_schema as computed  # lazy: only building a base needs it

    for t in base.tables:
        for f in t.fields:
            opts = dict(f.options or {})
            if f.type in SPEC_TYPES:
                try:
                    f.options = computed.resolve_options(base, t, f, opts)
                except computed.SpecError as e:
                    raise SchemaError(str(e)) from None
            elif f.type in ("singleSelect", "multipleSelects"):
                f.options = {"choices": _choices(opts.get("choices", []), rng)}
            elif f.type == "multipleLookupValues":
                link = t.field(opts["recordLinkField"])
                if link is None or link.type != "multipleRecordLinks":
                    raise SchemaError(f"lookup {t.name}.{f.name}: bad recordLinkField")
                other = base.table_by_id(link.options["linkedTableId"])  # type: ignore[index]
                target = other.field(opts["fieldInLinkedTable"])
                if target is None:
                    raise SchemaError(f"lookup {t.name}.{f.name}: bad fieldInLinkedTable")
                f.options = {
                    "isValid": True,
                    "recordLinkFieldId": link.id,
                    "fieldIdInLinkedTable": target.id,
                    "result": {"type": target.type, **({"options": target.options} if target.options else {})},
                }
            elif f.type == "lastModifiedTime":
                refs = [t.field(n) for n in opts.get("referencedFields", [])]
                f.options = {
                    "isValid": True,
                    "referencedFieldIds": [r.id for r in refs if r],
                    "result": {
                        "type": "dateTime",
                        "options": {
                            "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
                            "timeFormat": {"name": "24hour", "format": "HH:mm"},
                            "timeZone": "utc",
                        },
                    },
                }
            elif f.type == "createdTime":
                f.options = {
                    "result": {
                        "type": "dateTime",
                        "options": {
                            "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
                            "timeFormat": {"name": "24hour", "format": "HH:mm"},
                            "timeZone": "utc",
                        },
                    }
                }
            elif f.type in ("autoNumber",) or f.type in TEXT_TYPES:
                f.options = None
            elif f.type == "checkbox":
                f.options = {"icon": opts.get("icon", "check"), "color": opts.get("color", "greenBright")}
            elif f.type in ("number", "percent"):
                f.options = {"precision": int(opts.get("precision", 0))}
            elif f.type == "currency":
                f.options = {"precision": int(opts.get("precision", 2)), "symbol": opts.get("symbol", "$")}
            elif f.type == "date":
                f.options = {"dateFormat": opts.get("dateFormat", {"name": "iso", "format": "YYYY-MM-DD"})}
            elif f.type == "dateTime":
                f.options = {
                    "dateFormat": opts.get("dateFormat", {"name": "iso", "format": "YYYY-MM-DD"}),
                    "timeFormat": opts.get("timeFormat", {"name": "24hour", "format": "HH:mm"}),
                    "timeZone": opts.get("timeZone", "utc"),
                }
            elif f.type == "multipleAttachments":
                f.options = {"isReversed": bool(opts.get("isReversed", False))}
            elif f.type == "multipleRecordLinks":
                pass
            else:
                f.options = opts or None
        t.reindex()
    for t, tspec in zip(base.tables, spec["tables"], strict=True):
        vspecs = tspec.get("views") or [{"name": "Grid view"}]
        for vs in vspecs:
            sort = []
            for s in vs.get("sort", []):
                sf = t.field(s["field"])
                if sf is None:
                    raise SchemaError(f"view {vs['name']}: unknown sort field {s['field']!r}")
                sort.append((sf.id, s.get("direction", "asc")))
            t.views.append(ViewDef(new_id("viw", rng), vs["name"], vs.get("type", "grid"), vs.get("filter"), sort))
    computed.finalize(base)
    return base
