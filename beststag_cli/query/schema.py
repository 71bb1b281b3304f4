"""The base schema as the query layer sees it: tables, fields and what each field type allows.

Built from the metadata API's JSON (`Gateway.schema()`); import-light. Field types fall into a
few *kinds* that decide which operators make sense and how the compiler and evaluator treat
values (README, "Queries and filters").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownField, UnknownTable
from ..names import did_you_mean

TEXT, NUMBER, CHECKBOX, DATE, MULTI, ATTACHMENTS, OTHER = (
    "text",
    "number",
    "checkbox",
    "date",
    "multi",
    "attachments",
    "other",
)

_KIND_BY_TYPE = {
    **dict.fromkeys(
        (
            "singleLineText",
            "multilineText",
            "richText",
            "email",
            "url",
            "phoneNumber",
            "singleSelect",
            "externalSyncSource",
            "aiText",
        ),
        TEXT,
    ),
    **dict.fromkeys(("number", "currency", "percent", "duration", "rating", "autoNumber", "count"), NUMBER),
    "checkbox": CHECKBOX,
    **dict.fromkeys(("date", "dateTime", "createdTime", "lastModifiedTime"), DATE),
    **dict.fromkeys(("multipleSelects", "multipleRecordLinks", "multipleLookupValues"), MULTI),
    "multipleAttachments": ATTACHMENTS,
}

#: operators allowed per kind
OPS_BY_KIND: dict[str, frozenset[str]] = {
    TEXT: frozenset({"eq", "ne", "contains", "starts_with", "in", "not_in", "is_empty", "not_empty"}),
    NUMBER: frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "is_empty", "not_empty"}),
    CHECKBOX: frozenset({"eq", "ne", "is_empty", "not_empty"}),
    DATE: frozenset(
        {"eq", "ne", "gt", "gte", "lt", "lte", "date_after", "date_before", "date_within", "is_empty", "not_empty"}
    ),
    MULTI: frozenset({"eq", "ne", "contains", "in", "not_in", "is_empty", "not_empty"}),
    ATTACHMENTS: frozenset({"is_empty", "not_empty"}),
    OTHER: frozenset({"is_empty", "not_empty"}),
}

#: field types that Airtable computes per record (filtering on them costs more)
COMPUTED_TYPES = frozenset({"formula", "rollup", "multipleLookupValues", "count", "lastModifiedTime"})
LONG_TEXT_TYPES = frozenset({"multilineText", "richText"})


@dataclass(frozen=True)
class FieldInfo:
    id: str
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def result_type(self) -> str:
        """The type that decides the kind: a formula's or rollup's result type, else the type."""
        if self.type in ("formula", "rollup"):
            res = (self.options or {}).get("result") or {}
            return str(res.get("type") or "singleLineText")
        return self.type

    @property
    def kind(self) -> str:
        return _KIND_BY_TYPE.get(self.result_type, OTHER)

    @property
    def choices(self) -> list[str] | None:
        """Choice names of a single or multiple select, else None."""
        if self.type in ("singleSelect", "multipleSelects"):
            return [str(c.get("name")) for c in (self.options or {}).get("choices", [])]
        return None

    @property
    def linked_table_id(self) -> str | None:
        return (self.options or {}).get("linkedTableId") if self.type == "multipleRecordLinks" else None

    @property
    def is_date_only(self) -> bool:
        return self.result_type == "date"

    @property
    def computed(self) -> bool:
        return self.type in COMPUTED_TYPES


@dataclass(frozen=True)
class TableInfo:
    id: str
    name: str
    primary_field_id: str
    fields: tuple[FieldInfo, ...]
    views: tuple[str, ...] = ()

    def field(self, name: str) -> FieldInfo:
        """By exact name or field id; UnknownField with a 'did you mean' otherwise."""
        for f in self.fields:
            if f.name == name or f.id == name:
                return f
        raise UnknownField(
            f'unknown field "{name}" in table {self.name}{did_you_mean(name, [f.name for f in self.fields])}',
            hint=f"fields of {self.name}: " + ", ".join(f.name for f in self.fields),
        )

    def has_field(self, name: str) -> bool:
        return any(f.name == name or f.id == name for f in self.fields)

    @property
    def primary(self) -> FieldInfo:
        return next((f for f in self.fields if f.id == self.primary_field_id), self.fields[0])


@dataclass(frozen=True)
class BaseSchema:
    base_id: str
    tables: tuple[TableInfo, ...]

    def table(self, name: str) -> TableInfo:
        """By exact name or table id; UnknownTable with a 'did you mean' otherwise."""
        for t in self.tables:
            if t.name == name or t.id == name:
                return t
        raise UnknownTable(
            f'unknown table "{name}"{did_you_mean(name, [t.name for t in self.tables])}',
            hint="tables: " + ", ".join(t.name for t in self.tables),
        )

    def has_table(self, name: str) -> bool:
        return any(t.name == name or t.id == name for t in self.tables)

    def table_by_id(self, table_id: str) -> TableInfo:
        return next(t for t in self.tables if t.id == table_id)

    @classmethod
    def from_json(cls, base_id: str, data: dict[str, Any]) -> BaseSchema:
        tables = []
        for t in data.get("tables", []):
            fields = tuple(
                FieldInfo(str(f["id"]), str(f["name"]), str(f["type"]), dict(f.get("options") or {}))
                for f in t.get("fields", [])
            )
            views = tuple(str(v.get("name")) for v in t.get("views", []) or [])
            tables.append(
                TableInfo(str(t["id"]), str(t["name"]), str(t.get("primaryFieldId") or fields[0].id), fields, views)
            )
        return cls(base_id, tuple(tables))
