"""Differential property: for random specs over the sample schema, the records the sandbox returns
for the compiled formula (with sort and maxRecords pushed server-side) are exactly the records the
Python evaluator selects from all records, in the same order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli import clock
from beststag_cli.query.evaluate import apply_query
from beststag_cli.query.schema import ATTACHMENTS, CHECKBOX, DATE, MULTI, NUMBER, OTHER, BaseSchema, TableInfo
from beststag_cli.query.spec import QuerySpec
from beststag_cli.query.validate import SORTABLE_KINDS

from .conftest import BASE

TABLES = ("Usuários", "Interações", "Tarefas")


def _show(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without attachment URLs (they are signed per request)."""
    out = []
    for r in records:
        fields = {
            k: (
                [{a: b for a, b in x.items() if a not in ("url", "thumbnails")} for x in v]
                if isinstance(v, list) and v and isinstance(v[0], dict)
                else v
            )
            for k, v in r["fields"].items()
        }
        out.append({**r, "fields": fields})
    return out


class Data:
    """All records of the tables under test, value pools per field, and the link resolver."""

    def __init__(self, api: Any, schema: BaseSchema) -> None:
        self.schema = schema
        self.records = {t.name: api.table(BASE, t.name).all() for t in schema.tables}
        self.display = {
            (t.id, r["id"]): _show(r["fields"].get(t.primary.name)) for t in schema.tables for r in self.records[t.name]
        }
        self.pools: dict[tuple[str, str], list[Any]] = {}
        for t in TABLES:
            info = schema.table(t)
            for f in info.fields:
                vals: list[Any] = []
                for r in self.records[t]:
                    v = r["fields"].get(f.name)
                    if v is None:
                        continue
                    if f.type == "multipleRecordLinks":
                        vals.extend(self.display.get((f.linked_table_id, x)) for x in v)
                    elif isinstance(v, list):
                        vals.extend(x for x in v if isinstance(x, (str, int, float)))
                    else:
                        vals.append(v)
                self.pools[(t, f.name)] = sorted({v for v in vals if v is not None}, key=repr)[:60]

    def links(self, table_id: str, record_id: str) -> str | None:
        return self.display.get((table_id, record_id))


@pytest.fixture
def data(api, schema) -> Data:  # type: ignore[no-untyped-def]
    return Data(api, schema)


def _value(draw: Any, data: Data, table: str, f: Any, text_ok: bool = True) -> Any:
    pool = data.pools.get((table, f.name)) or []
    if f.choices:
        return draw(st.sampled_from(f.choices))
    if f.kind == NUMBER:
        extra = st.integers(-5, 2000) | st.sampled_from([0, 0.5, 29.9])
        return draw(st.sampled_from(pool) | extra) if pool else draw(extra)
    strs = [p for p in pool if isinstance(p, str)]
    base = st.sampled_from(strs) if strs else st.text(min_size=1, max_size=5)
    return draw(base | st.text("aeiouAÉ'\"\\{}()&, ␟\n", min_size=1, max_size=6))


@st.composite
def conditions(draw: Any, data: Data, table: str) -> dict[str, Any]:
    info: TableInfo = data.schema.table(table)
    f = draw(st.sampled_from(info.fields))
    kind = f.kind
    if kind in (ATTACHMENTS, OTHER):
        return {f.name: {"operator": draw(st.sampled_from(["is_empty", "not_empty"]))}}
    if kind == CHECKBOX:
        op = draw(st.sampled_from(["eq", "ne", "is_empty", "not_empty"]))
        if op in ("is_empty", "not_empty"):
            return {f.name: {"operator": op}}
        b = draw(st.booleans())
        return {f.name: b} if op == "eq" else {f.name: {"operator": "ne", "value": b}}
    if kind == DATE:
        op = draw(
            st.sampled_from(
                [
                    "date_after",
                    "date_before",
                    "date_within",
                    "gt",
                    "lt",
                    "gte",
                    "lte",
                    "eq",
                    "ne",
                    "is_empty",
                    "not_empty",
                ]
            )
        )
        if op in ("is_empty", "not_empty"):
            return {f.name: {"operator": op}}
        pool = [p for p in data.pools.get((table, f.name), []) if isinstance(p, str)] or ["2024-01-01"]
        absolute = draw(st.sampled_from(pool) | st.sampled_from([p[:10] for p in pool]))
        if op in ("date_after", "date_before"):
            if draw(st.booleans()):
                unit = draw(st.sampled_from(["days", "hours"]))
                n = draw(st.integers(-90, 100)) * (24 if unit == "hours" else 1)
                return {f.name: {"operator": op, unit: n}}
            return {f.name: {"operator": op, "value": absolute}}
        if op == "date_within":
            if draw(st.booleans()):
                n = draw(st.integers(-70, 90).filter(bool))
                return {f.name: {"operator": op, "days": n}}
            lo, hi = sorted([absolute, draw(st.sampled_from(pool))])
            return {f.name: {"operator": op, "from": lo, "to": hi}}
        return {f.name: {op: absolute}}
    if kind == NUMBER:
        op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "is_empty", "not_empty"]))
    elif kind == MULTI:
        op = draw(st.sampled_from(["eq", "ne", "contains", "in", "not_in", "is_empty", "not_empty"]))
    else:
        op = draw(st.sampled_from(["eq", "ne", "contains", "starts_with", "in", "not_in", "is_empty", "not_empty"]))
    if op in ("is_empty", "not_empty"):
        return {f.name: {"operator": op}}
    if op in ("in", "not_in"):
        vals = [_value(draw, data, table, f) for _ in range(draw(st.integers(0, 4)))]
        return {f.name: {"operator": op, "value": vals}}
    v = _value(draw, data, table, f)
    if op in ("contains", "starts_with"):
        if f.kind == MULTI:
            return {f.name: {"operator": op, "value": v}} if op == "contains" else {f.name: v}
        s = str(v)
        i = draw(st.integers(0, max(0, len(s) - 1)))
        part = s[i : i + draw(st.integers(1, 6))] if op == "contains" else s[: draw(st.integers(1, 6))]
        part = part.swapcase() if draw(st.booleans()) else part
        return {f.name: {"operator": op, "value": part or "a"}}
    return {f.name: v} if op == "eq" else {f.name: {"operator": op, "value": v}}


@st.composite
def filters(draw: Any, data: Data, table: str, depth: int = 2) -> dict[str, Any]:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(conditions(data, table))
    kind = draw(st.sampled_from(["and", "or", "not", "multi"]))
    if kind == "not":
        return {"not": draw(filters(data, table, depth - 1))}
    kids = draw(st.lists(filters(data, table, depth - 1), min_size=1, max_size=3))
    if kind == "multi":  # several keys in one object: an implicit AND
        merged: dict[str, Any] = {}
        for k in kids:
            merged.update(k)
        return merged
    return {kind: kids}


@st.composite
def specs(draw: Any, data: Data) -> dict[str, Any]:
    table = draw(st.sampled_from(TABLES))
    info = data.schema.table(table)
    spec: dict[str, Any] = {"table": table, "filters": draw(filters(data, table))}
    sortable = [f.name for f in info.fields if f.kind in SORTABLE_KINDS]
    sort_fields = draw(st.lists(st.sampled_from(sortable), max_size=2, unique=True))
    spec["sort"] = [{"field": s, "direction": draw(st.sampled_from(["asc", "desc"]))} for s in sort_fields]
    if draw(st.booleans()):
        spec["maxRecords"] = draw(st.integers(1, 150))
    if draw(st.booleans()):
        spec["fields"] = draw(st.lists(st.sampled_from([f.name for f in info.fields]), min_size=1, max_size=3))
    return spec


def test_differential(data: Data, service: Any) -> None:
    now = clock.now()
    clock.set_now(now)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(specs(data))
    def check(raw: dict[str, Any]) -> None:
        from beststag_cli.errors import FilterError

        try:
            spec = QuerySpec.parse(raw)
            expected = apply_query(spec, data.records[spec.table], data.schema.table(spec.table), now, links=data.links)
        except FilterError as e:  # a drawn value the grammar refuses (e.g. the member separator)
            assert "U+241F" in e.message or "option" in e.message, e.message
            return
        got = service.run(spec).records
        seen.append((len(got), len(data.records[spec.table])))
        assert [r["id"] for r in got] == [r["id"] for r in expected], raw
        assert _comparable(got) == _comparable(expected), raw

    seen: list[tuple[int, int]] = []
    check()
    # the drawn specs are not degenerate: some select a part of the table, some select nothing
    assert len(seen) >= 100
    assert sum(1 for n, total in seen if 0 < n < total) >= 30
    assert any(n == 0 for n, _ in seen)
