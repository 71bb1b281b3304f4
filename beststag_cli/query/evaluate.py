"""The spec's own semantics in Python, over records as Airtable returns them (JSON).

The cache applies our own writes to cached answers with this (a write returns the full record:
does it now match? where does it sort?), and the differential test checks it against what the
sandbox returns for the compiled formula. Import-light: no pyairtable, no gateway.

Public API::

    ev = Evaluator(table_info, now=clock.now(), links=resolver)   # links: optional, see below
    ev.matches(tree, record) -> bool
    ev.sort_key(sort, record) -> tuple         # per-field keys, direction not applied
    ev.apply(bound_or_spec_parts..., records) -> list[record]
    matches(spec, record, table, now, links=None)                  # one-shot helpers
    apply_query(spec, records, table, now, links=None)

Linked records: Airtable formulas see a link field as the linked records' primary field values,
while record JSON holds their ids. A filter or sort on a link field therefore needs `links`, a
callable `(linked_table_id, record_id) -> display text | None`; without it such a spec raises
`NeedsLinkedRecords` (the cache then invalidates instead of patching). `needs_links(tree, sort,
table)` tells in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from .filters import DATE_OPS, And, Cond, Const, Node, Not, Or, parse_instant, walk
from .schema import CHECKBOX, DATE, MULTI, NUMBER, TEXT, FieldInfo, TableInfo
from .spec import QuerySpec, SortSpec
from .validate import MEMBER_SEP, bind

_SANDBOX_NUMERIC_SORT = frozenset({"number", "percent", "currency", "duration", "rating", "autoNumber"})
LinkResolver = Callable[[str, str], "str | None"]
Record = dict[str, Any]


class NeedsLinkedRecords(Exception):
    """The spec filters or sorts on a link field and no link resolver was given."""


def _num_text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return _num_text(v)
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == [] or v is False


def _instant(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    return parse_instant(str(v))


def needs_links(tree: Node, sort: Sequence[SortSpec], table: TableInfo) -> bool:
    names = {c.field for c in walk(tree)} | {s.field for s in sort}
    return any(table.field(n).type == "multipleRecordLinks" for n in names)


class Evaluator:
    def __init__(self, table: TableInfo, now: datetime, links: LinkResolver | None = None) -> None:
        self.table = table
        self.now = now.astimezone(UTC)
        self.links = links

    # ------------------------------------------------------------------ values
    def _raw(self, f: FieldInfo, record: Record) -> Any:
        return (record.get("fields") or {}).get(f.name)

    def _items(self, f: FieldInfo, record: Record) -> list[str]:
        """A multi-value field as the formula sees it: texts, links by their primary value."""
        raw = self._raw(f, record)
        if not raw:
            return []
        if f.type == "multipleRecordLinks":
            if self.links is None:
                raise NeedsLinkedRecords(f.name)
            tid = f.linked_table_id or ""
            return [_text(self.links(tid, x)) for x in raw]
        return [_text(x) for x in (raw if isinstance(raw, list) else [raw])]

    # ------------------------------------------------------------------ filter
    def matches(self, node: Node, record: Record) -> bool:
        if isinstance(node, Const):
            return node.value
        if isinstance(node, And):
            return all(self.matches(i, record) for i in node.items)
        if isinstance(node, Or):
            return any(self.matches(i, record) for i in node.items)
        if isinstance(node, Not):
            return not self.matches(node.item, record)
        assert isinstance(node, Cond)
        return self._cond(node, record)

    def _cond(self, c: Cond, record: Record) -> bool:
        f = self.table.field(c.field)
        op, v = c.op, c.value
        kind = f.kind
        if kind == CHECKBOX:
            checked = bool(self._raw(f, record))
            want = {"eq": v, "ne": not v, "is_empty": False, "not_empty": True}[op]
            return checked == want
        if kind == MULTI:
            if op in ("is_empty", "not_empty"):
                return _empty(self._raw(f, record)) == (op == "is_empty")
            hay = MEMBER_SEP + MEMBER_SEP.join(self._items(f, record)) + MEMBER_SEP

            def member(x: str) -> bool:
                return (MEMBER_SEP + x + MEMBER_SEP) in hay

            if op in ("eq", "contains"):
                return member(v)
            if op == "ne":
                return not member(v)
            hit = any(member(x) for x in v)
            return hit if op == "in" else not hit
        raw = self._raw(f, record)
        if op == "is_empty":
            return _empty(raw)
        if op == "not_empty":
            return not _empty(raw)
        if kind == TEXT:
            s = _text(raw)
            if op == "eq":
                return s == v
            if op == "ne":
                return s != v
            if op == "contains":
                return v.lower() in s.lower()
            if op == "starts_with":
                return s.lower().startswith(v.lower())
            if op == "in":
                return s in v
            if op == "not_in":
                return s not in v
        if kind == NUMBER:
            n = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else 0
            if op in ("in", "not_in"):
                return (n in v) == (op == "in")
            return {"eq": n == v, "ne": n != v, "gt": n > v, "gte": n >= v, "lt": n < v, "lte": n <= v}[op]
        if kind == DATE:
            return self._date(c, _instant(raw))
        return False

    def _rel(self, unit: str, n: int) -> datetime:
        return self.now + timedelta(**{unit: n})

    def _date(self, c: Cond, d: datetime | None) -> bool:
        op = c.op
        if op not in DATE_OPS:
            text = str(c.value)
            x = parse_instant(text)
            if d is None:
                same, after, before = False, False, False
            else:
                same = d.date() == x.date() if len(text) == 10 else d == x
                after, before = d > x, d < x
            return {"eq": same, "ne": not same, "gt": after, "lt": before, "gte": after or same, "lte": before or same}[
                op
            ]
        if d is None:
            return False
        args = c.date_args
        if op in ("date_after", "date_before"):
            if "value" in args:
                x = parse_instant(args["value"])
            else:
                unit, n = next(iter(args.items()))
                x = self._rel(unit, n)
            return d > x if op == "date_after" else d < x
        if "from" in args or "to" in args:
            ok = True
            if "from" in args:
                ok = ok and d > parse_instant(args["from"])
            if "to" in args:
                ok = ok and d < parse_instant(args["to"])
            return ok
        unit, n = next(iter(args.items()))
        lo, hi = (self._rel(unit, n), self.now) if n < 0 else (self.now, self._rel(unit, n))
        return lo < d < hi

    # ------------------------------------------------------------------ sort
    def field_key(self, f: FieldInfo, record: Record) -> tuple[Any, ...]:
        """Airtable's order for one field, ascending (blanks first), as the sandbox sorts."""
        raw = self._raw(f, record)
        if f.type == "singleSelect":
            choices = f.choices or []
            if raw is None:
                return (0, 0)
            return (1, choices.index(raw) if raw in choices else 1 << 30)
        if f.type in _SANDBOX_NUMERIC_SORT:
            return (1, raw) if isinstance(raw, (int, float)) else (0, 0)
        if f.kind == CHECKBOX:
            return (1 if raw else 0,)
        if f.type == "createdTime":
            return (1, record.get("createdTime", ""))
        if f.kind == DATE:
            d = _instant(raw)
            return (0, "") if d is None else (1, d.timestamp())
        if f.kind == MULTI:
            items = self._items(f, record)
            return (1, ", ".join(items).casefold()) if items else (0, "")
        if _empty(raw):
            return (0, "")
        return (1, _text(raw).casefold())

    def order(self, records: Iterable[Record], sort: Sequence[SortSpec]) -> list[Record]:
        """Stable multi-key sort (later keys first), exactly as the sandbox orders."""
        out = list(records)
        for s in reversed(sort):
            f = self.table.field(s.field)
            out.sort(key=partial(self.field_key, f), reverse=s.direction == "desc")
        return out

    def sort_key(self, sort: Sequence[SortSpec], record: Record) -> tuple[Any, ...]:
        return tuple(self.field_key(self.table.field(s.field), record) for s in sort)


# ------------------------------------------------------------------------------------------ helpers
def project(record: Record, fields: Sequence[str] | None) -> Record:
    """The record with only `fields` (None = all); blanks stay absent, as on the wire."""
    if fields is None:
        return record
    keep = set(fields)
    return {**record, "fields": {k: v for k, v in (record.get("fields") or {}).items() if k in keep}}


def matches(
    spec: QuerySpec, record: Record, table: TableInfo, now: datetime, links: LinkResolver | None = None
) -> bool:
    """Does `record` (full Airtable JSON) belong to the answer of `spec`? (ignores view and maxRecords)"""
    return Evaluator(table, now, links).matches(bind(spec, table).tree, record)


def sort_key(
    spec: QuerySpec, record: Record, table: TableInfo, now: datetime, links: LinkResolver | None = None
) -> tuple[Any, ...]:
    """Ascending per-field keys for `spec.sort` (apply each field's direction yourself)."""
    return Evaluator(table, now, links).sort_key(spec.sort, record)


def apply_query(
    spec: QuerySpec, records: Iterable[Record], table: TableInfo, now: datetime, links: LinkResolver | None = None
) -> list[Record]:
    """Filter, sort, cap at maxRecords and project `records` (given in Airtable's default order)."""
    ev = Evaluator(table, now, links)
    tree = bind(spec, table).tree
    kept = [r for r in records if ev.matches(tree, r)]
    kept = ev.order(kept, spec.sort)
    if spec.max_records:
        kept = kept[: spec.max_records]
    return [project(r, spec.fields) for r in kept]
