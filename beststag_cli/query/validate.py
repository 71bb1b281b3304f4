"""Check a spec against the table's schema and simplify it with what the types tell.

`bind(spec, table)` → `Bound`: the normalised filter tree with every field checked, every operator
allowed for its field's kind, every value of the right type (select values among the choices,
dates canonical), and type-aware contradictions folded to `FALSE` (`status = A` AND `status = B`,
`n > 5` AND `n < 3`, `x in [..]` AND `x in [..]` with nothing in common). Nothing here sends a
request; every problem is a `BadInput` subclass with one line and a hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput, FilterError
from ..names import did_you_mean
from .filters import DATE_OPS, FALSE, And, Cond, Const, Node, Not, Or, canon_instant, type_name
from .normalize import normalize_tree
from .schema import ATTACHMENTS, CHECKBOX, DATE, MULTI, NUMBER, OPS_BY_KIND, OTHER, TEXT, FieldInfo, TableInfo
from .spec import QuerySpec

#: separator used to test membership in multi-value fields (see formula.py); refused inside values
MEMBER_SEP = "\u241f"
_RECORD_ID = re.compile(r"^rec[A-Za-z0-9]{14}$")
SORTABLE_KINDS = frozenset({TEXT, NUMBER, CHECKBOX, DATE, MULTI})


@dataclass(frozen=True)
class Bound:
    """A spec checked against its table."""

    spec: QuerySpec
    table: TableInfo
    tree: Node

    @property
    def empty(self) -> bool:
        """A contradiction: the answer is empty, no request is needed."""
        return self.tree == FALSE

    @property
    def request_fields(self) -> list[str] | None:
        return self.spec.needed_fields()


def bind(spec: QuerySpec, table: TableInfo) -> Bound:
    for name in spec.fields or []:
        table.field(name)
    for s in spec.sort:
        f = table.field(s.field)
        if f.kind not in SORTABLE_KINDS:
            raise BadInput(
                f'cannot sort by "{f.name}" ({f.type})',
                hint="sort by a text, number, checkbox, date, select or link field",
            )
    if spec.view is not None and table.views and spec.view not in table.views:
        raise BadInput(
            f'unknown view "{spec.view}" in table {table.name}{did_you_mean(spec.view, table.views)}',
            hint="views: " + ", ".join(table.views),
        )
    tree = _check(normalize_tree(spec.tree), table)
    return Bound(spec, table, normalize_tree(simplify(normalize_tree(tree), table)))


# ------------------------------------------------------------------------------------------ checks
def _check(node: Node, table: TableInfo) -> Node:
    if isinstance(node, Cond):
        return check_cond(node, table.field(node.field))
    if isinstance(node, And):
        return And(tuple(_check(i, table) for i in node.items))
    if isinstance(node, Or):
        return Or(tuple(_check(i, table) for i in node.items))
    if isinstance(node, Not):
        return Not(_check(node.item, table))
    return node


def _kind_label(f: FieldInfo) -> str:
    return {
        TEXT: "text",
        NUMBER: "number",
        CHECKBOX: "checkbox",
        DATE: "date",
        MULTI: "multi-value",
        ATTACHMENTS: "attachment",
        OTHER: f.type,
    }[f.kind]


def check_cond(c: Cond, f: FieldInfo) -> Cond:
    where = f'"{f.name}"'
    if c.op not in OPS_BY_KIND[f.kind]:
        allowed = ", ".join(sorted(OPS_BY_KIND[f.kind]))
        raise FilterError(
            f"operator {c.op} makes no sense for {where}, a {_kind_label(f)} field ({f.type})",
            hint=f"operators for {f.type}: {allowed}",
        )
    values = (
        list(c.value)
        if isinstance(c.value, tuple) and c.op not in DATE_OPS
        else ([c.value] if c.value is not None and c.op not in DATE_OPS else [])
    )
    kind = f.kind

    def wrong(v: Any, expected: str) -> FilterError:
        return FilterError(f"{where} is a {f.type} field: {c.op} needs {expected}, got {type_name(v)} {v!r}")

    if kind in (TEXT, MULTI):
        for v in values:
            if not isinstance(v, str):
                raise wrong(v, "text")
            if kind == MULTI and MEMBER_SEP in v:
                raise FilterError(f"{where}: the character U+241F cannot be used in a value")
        choices = f.choices
        member_ops = ("eq", "ne", "in", "not_in", "contains") if kind == MULTI else ("eq", "ne", "in", "not_in")
        if choices is not None and c.op in member_ops:
            for v in values:
                if v not in choices:
                    raise FilterError(
                        f'"{v}" is not an option of {where}{did_you_mean(v, choices)}',
                        hint="options: " + ", ".join(choices),
                    )
        if f.type == "multipleRecordLinks":
            for v in values:
                if _RECORD_ID.match(v):
                    raise FilterError(
                        f"{where} links to other records: filter by the linked record's primary "
                        f"field value (its name), not by its id {v}",
                        hint="Airtable formulas see linked records by their primary field",
                    )
    elif kind == NUMBER:
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise wrong(v, "a number")
    elif kind == CHECKBOX:
        for v in values:
            if not isinstance(v, bool):
                raise wrong(v, "true or false")
    elif kind == DATE and c.op not in DATE_OPS and values:
        if not isinstance(c.value, str):
            raise wrong(c.value, "an ISO date (2024-01-31 or 2024-01-31T12:00:00Z)")
        return Cond(c.field, c.op, canon_instant(c.value, f.name))
    return c


# ------------------------------------------------------------------------------------------ simplify
def simplify(node: Node, table: TableInfo) -> Node:
    """Fold type-aware contradictions inside AND groups to FALSE (recursively)."""
    if isinstance(node, Or):
        return Or(tuple(simplify(i, table) for i in node.items))
    if isinstance(node, Not):
        return Not(simplify(node.item, table))
    if isinstance(node, Cond):
        return FALSE if _impossible([node], table.field(node.field)) else node
    if not isinstance(node, And):
        return node
    items = [simplify(i, table) for i in node.items]
    by_field: dict[str, list[Cond]] = {}
    for i in items:
        if isinstance(i, Const) and not i.value:
            return FALSE
        if isinstance(i, Cond):
            by_field.setdefault(i.field, []).append(i)
    for name, conds in by_field.items():
        if _impossible(conds, table.field(name)):
            return FALSE
    return And(tuple(items))


def _impossible(conds: list[Cond], f: FieldInfo) -> bool:
    """True when no single value of `f` can satisfy every condition."""
    kind = f.kind
    if kind in (MULTI, ATTACHMENTS, OTHER, DATE):
        return False
    ops = {c.op for c in conds}
    if kind == CHECKBOX:
        want: set[bool] = {True, False}
        for c in conds:
            if c.op == "eq":
                want &= {c.value}
            elif c.op == "ne":
                want -= {c.value}
            elif c.op == "is_empty":
                want &= {False}
            elif c.op == "not_empty":
                want &= {True}
        return not want
    possible: set[Any] | None = None  # None = unrestricted
    excluded: set[Any] = set()
    for c in conds:
        if c.op == "eq":
            possible = {c.value} if possible is None else possible & {c.value}
        elif c.op == "in":
            possible = set(c.value) if possible is None else possible & set(c.value)
        elif c.op == "ne":
            excluded.add(c.value)
        elif c.op == "not_in":
            excluded.update(c.value)
    if kind == TEXT and "is_empty" in ops and possible is not None:
        return True  # eq/in values are never empty (eq "" became is_empty)
    if kind == NUMBER:
        lo, hi = -float("inf"), float("inf")
        lo_strict = hi_strict = False
        for c in conds:
            v = float(c.value) if c.op in ("gt", "gte", "lt", "lte") else None
            if v is None:
                continue
            if c.op in ("gt", "gte") and (v > lo or (v == lo and c.op == "gt")):
                lo, lo_strict = v, c.op == "gt"
            if c.op in ("lt", "lte") and (v < hi or (v == hi and c.op == "lt")):
                hi, hi_strict = v, c.op == "lt"
        if lo > hi or (lo == hi and (lo_strict or hi_strict)):
            return True
        if possible is not None:
            possible = {
                v
                for v in possible
                if (v > lo or (v == lo and not lo_strict)) and (v < hi or (v == hi and not hi_strict))
            }
        if "is_empty" in ops and possible is not None and 0 not in possible:
            return True  # an empty number compares as 0
    if possible is not None:
        return not (possible - excluded)
    return False
