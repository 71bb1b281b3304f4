"""Compile a bound filter tree to an Airtable `filterByFormula`, type-aware and injection-safe.

Escaping is the security boundary. Every value goes through `quoted()` and every field name
through `field_ref()`, byte-for-byte what `pyairtable.formulas.quoted()` / `field_name()` produce
(we do not import pyairtable: it costs ~280 ms and the cache's hit path must stay light). So a
value or name is always one STRING or FIELD token, whatever it holds: quotes, backslashes,
braces, parentheses, `&`, newlines, unicode. `tests/query/test_injection.py` checks the parse
tree's shape against the sandbox's grammar.

How each kind compiles (`{f}` is the field, `v` the value):

=========== ==================================================================================
text        eq `{f}='v'`, ne `{f}!='v'`, contains `FIND('v', LOWER({f}))>0` (v lower-cased: case-
            insensitive), starts_with `FIND('v', LOWER({f}))=1`, in/not_in as OR/AND of eq/ne
number      `{f}=n` `{f}!=n` `{f}>n` `{f}>=n` `{f}<n` `{f}<=n` (an empty cell counts as 0)
checkbox    true `{f}=TRUE()`, false `NOT({f})`
date        date_after `IS_AFTER({f}, DATEADD(NOW(), -7, 'days'))` or `IS_AFTER({f},
            DATETIME_PARSE('2024-01-31'))`; date_before IS_BEFORE; date_within both; gt/lt
            IS_AFTER/IS_BEFORE; eq IS_SAME, gte/lte add it (a bare date: unit 'day',
            so lte 2024-01-31 includes that whole day in UTC)
multi       eq/contains: membership `FIND('␟v␟', '␟' & ARRAYJOIN({f}, '␟') & '␟')>0`
            (links compare the linked records' primary values); ne/not_in negated; in: OR
empty       is_empty `{f}&''=''`, not_empty `{f}&''!=''` (checkbox: NOT({f}) / {f}=TRUE())
=========== ==================================================================================
"""

from __future__ import annotations

from typing import Any

from ..errors import FilterError
from .filters import And, Cond, Const, Node, Not, Or
from .schema import CHECKBOX, DATE, MULTI, NUMBER, TEXT, TableInfo
from .validate import MEMBER_SEP, Bound


def quoted(value: str) -> str:
    """A string literal, as pyairtable.formulas.quoted(): escape `\\` then `'`, wrap in `'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def field_ref(name: str) -> str:
    """A field reference, as pyairtable.formulas.field_name(): `{name}` with `}` escaped as `\\}`.

    A name ending in a backslash cannot be written unambiguously (`{a\\}` would swallow the closing
    brace), so it is refused rather than risked.
    """
    if name.endswith("\\"):
        raise FilterError(
            f"field name {name!r} ends with a backslash and cannot be used in a formula",
            hint="rename the field in Airtable",
        )
    return "{" + name.replace("}", "\\}") + "}"


def number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FilterError(f"expected a number, got {v!r}")
    text = repr(v) if isinstance(v, float) else str(v)
    return text


def instant(text: str) -> str:
    return f"DATETIME_PARSE({quoted(text)})"


def relative(unit: str, n: int) -> str:
    return f"DATEADD(NOW(), {n}, {quoted(unit)})"


def _call(name: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{name}({', '.join(parts)})"


def compile_tree(node: Node, table: TableInfo) -> str:
    """The formula for a bound tree; '' for a tree that is always true."""
    if isinstance(node, Const):
        return "" if node.value else "FALSE()"
    if isinstance(node, Cond):
        return compile_cond(node, table)
    if isinstance(node, And):
        return _call("AND", [compile_tree(i, table) for i in node.items])
    if isinstance(node, Or):
        return _call("OR", [compile_tree(i, table) for i in node.items])
    assert isinstance(node, Not)
    return f"NOT({compile_tree(node.item, table)})"


def compile_bound(bound: Bound) -> str:
    return compile_tree(bound.tree, bound.table)


def compile_cond(c: Cond, table: TableInfo) -> str:
    f = table.field(c.field)
    ref = field_ref(f.name)
    op, v = c.op, c.value
    kind = f.kind
    if kind == CHECKBOX:
        want = {"eq": v, "ne": not v if isinstance(v, bool) else None, "is_empty": False, "not_empty": True}[op]
        return f"{ref}=TRUE()" if want else f"NOT({ref})"
    if op == "is_empty":
        return f"{ref}&''=''"
    if op == "not_empty":
        return f"{ref}&''!=''"
    if kind == MULTI:

        def member(x: str) -> str:
            return (
                f"FIND({quoted(MEMBER_SEP + x + MEMBER_SEP)}, {quoted(MEMBER_SEP)}&ARRAYJOIN({ref}, "
                f"{quoted(MEMBER_SEP)})&{quoted(MEMBER_SEP)})>0"
            )

        if op in ("eq", "contains"):
            return member(v)
        if op == "ne":
            return f"NOT({member(v)})"
        ors = _call("OR", [member(x) for x in v])
        return ors if op == "in" else f"NOT({ors})"
    if kind == TEXT:
        if op in ("eq", "ne"):
            return f"{ref}{'=' if op == 'eq' else '!='}{quoted(v)}"
        if op == "contains":
            return f"FIND({quoted(v.lower())}, LOWER({ref}))>0"
        if op == "starts_with":
            return f"FIND({quoted(v.lower())}, LOWER({ref}))=1"
        if op == "in":
            return _call("OR", [f"{ref}={quoted(x)}" for x in v])
        if op == "not_in":
            return _call("AND", [f"{ref}!={quoted(x)}" for x in v])
    if kind == NUMBER:
        sym = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        if op in sym:
            return f"{ref}{sym[op]}{number(v)}"
        if op == "in":
            return _call("OR", [f"{ref}={number(x)}" for x in v])
        if op == "not_in":
            return _call("AND", [f"{ref}!={number(x)}" for x in v])
    if kind == DATE:
        return _compile_date(c, ref)
    raise FilterError(f"operator {op} is not supported on {f.name!r} ({f.type})")  # pragma: no cover


def _compile_date(c: Cond, ref: str) -> str:
    op = c.op
    if op in ("eq", "ne", "gt", "gte", "lt", "lte"):
        text = str(c.value)
        d = instant(text)
        same = f"IS_SAME({ref}, {d}, 'day')" if len(text) == 10 else f"IS_SAME({ref}, {d})"
        out = {
            "eq": same,
            "ne": f"NOT({same})",
            "gt": f"IS_AFTER({ref}, {d})",
            "lt": f"IS_BEFORE({ref}, {d})",
            "gte": f"OR(IS_AFTER({ref}, {d}), {same})",
            "lte": f"OR(IS_BEFORE({ref}, {d}), {same})",
        }
        return out[op]
    args = c.date_args
    if op in ("date_after", "date_before"):
        fn = "IS_AFTER" if op == "date_after" else "IS_BEFORE"
        if "value" in args:
            return f"{fn}({ref}, {instant(args['value'])})"
        unit, n = next(iter(args.items()))
        return f"{fn}({ref}, {relative(unit, n)})"
    # date_within: strictly between the two bounds
    if "from" in args or "to" in args:
        parts = []
        if "from" in args:
            parts.append(f"IS_AFTER({ref}, {instant(args['from'])})")
        if "to" in args:
            parts.append(f"IS_BEFORE({ref}, {instant(args['to'])})")
        return _call("AND", parts)
    unit, n = next(iter(args.items()))
    if n < 0:
        return f"AND(IS_AFTER({ref}, {relative(unit, n)}), IS_BEFORE({ref}, NOW()))"
    return f"AND(IS_AFTER({ref}, NOW()), IS_BEFORE({ref}, {relative(unit, n)}))"
