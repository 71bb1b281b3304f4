"""Computed and people fields: formula, rollup, count, createdBy, lastModifiedBy, button, plus the
stored-but-special collaborator and barcode cells.

Their schema options are built by computed_schema.py; this module does the reading, from hooks
in store.py:

- formula values: `converter` gives the formula engine's value of such a field on a record, so a
  formula field works in filterByFormula, sort and other formulas exactly like a stored field;
- cell JSON: `cell_json` renders the value as Airtable's REST answer does.

Formula fields are evaluated at read time (never stored), so they cannot go stale after writes to
the fields or linked records they depend on. Compiled formulas and converters are cached for one
store operation only (`store._computed`, cleared by `_sync`): converters read the store's in-memory
tables, which another process's write may replace between operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import clock
from .fields import format_instant, parse_instant
from .schema import EVALUATED_TYPES
from .users import DEFAULT_USER, user_json

if TYPE_CHECKING:
    from .schema import BaseDef, FieldDef, TableDef
    from .store import Rec, SandboxStore

# types whose formula value and cell JSON this module owns (schema.py keeps the one list)
EVALUATED = EVALUATED_TYPES


# ---------------------------------------------------------------- formula values


def _cache(store: SandboxStore) -> dict[Any, Any]:
    return store._computed


def table_converters(store: SandboxStore, base: BaseDef, table: TableDef) -> dict[str, Callable[[Rec], Any]]:
    """Every field's converter for one table, built once per store operation."""
    cache = _cache(store)
    key = ("conv", base.id, table.id)
    conv = cache.get(key)
    if conv is None:
        conv = cache[key] = {}  # registered before filling: formula converters look it up lazily
        for f in table.fields:
            conv[f.id] = store._converter(base, table, f)
    return conv


def _compiled(store: SandboxStore, table: TableDef, text: str) -> Any:
    from .formula import compile_formula

    key = ("formula", table.id, text)
    cache = _cache(store)
    hit = cache.get(key)
    if hit is None:

        def resolve(name: str) -> Hashable:
            g = table.field(name)
            if g is None:
                raise KeyError(name)
            return g.id

        hit = cache[key] = compile_formula(text, resolve)
    return hit


class _RecordContext:
    """The formula engine's EvalContext over one record (store.RecordContext's twin; importing it
    would make store ↔ computed an import cycle)."""

    __slots__ = ("_conv", "now", "rec", "record_id")

    def __init__(self, conv: dict[str, Callable[[Rec], Any]], now: datetime, rec: Rec) -> None:
        self._conv = conv
        self.now = now
        self.rec = rec
        self.record_id = rec.id

    @property
    def created_time(self) -> datetime:  # parsed only for CREATED_TIME(): most formulas never ask
        return parse_instant(self.rec.created)

    def value(self, key: Any) -> Any:
        return self._conv[key](self.rec)

    def last_modified(self, keys: list[Any] | None) -> datetime | None:
        m = self.rec.mtimes
        vals = [m[k] for k in keys if k in m] if keys is not None else list(m.values())
        return parse_instant(max(vals)) if vals else None


def _formula_fn(store: SandboxStore, base: BaseDef, table: TableDef, text: str) -> Callable[[Rec], Any]:
    from .formula.values import ERROR

    compiled = _compiled(store, table, text)
    now = clock.now()

    def value(r: Rec) -> Any:
        # a fresh context per evaluation: a formula may read another formula of the same record
        ctx = _RecordContext(table_converters(store, base, table), now, r)
        try:
            return compiled.evaluate(ctx)
        except RecursionError:  # a cycle across tables (lookups of formulas): Airtable shows an error
            return ERROR

    return value


def converter(store: SandboxStore, base: BaseDef, table: TableDef, f: FieldDef) -> Callable[[Rec], Any]:
    """Formula-engine value of an EVALUATED field (collaborators read as their names, as in Airtable)."""
    fid = f.id
    opts = f.options or {}
    t = f.type
    if t == "formula":
        if not opts.get("isValid", True):
            return lambda r: None
        return _formula_fn(store, base, table, str(opts.get("formula", "")))
    if t == "button":
        return lambda r: opts.get("label")
    if t == "count":
        lid = opts.get("recordLinkFieldId")
        link = table.field(lid) if lid else None
        if link is None:
            return lambda r: None
        target = (link.options or {})["linkedTableId"]
        return lambda r: sum(1 for x in r.fields.get(link.id, ()) if x in store._records(target))
    if t == "rollup":
        return _rollup(store, base, table, f)
    # people are stored as their `{id, email, name}`; formulas see the name, as in Airtable
    if t in ("createdBy", "lastModifiedBy"):
        return lambda r: (r.fields.get(fid) or DEFAULT_USER).get("name")
    if t == "singleCollaborator":
        return lambda r: r.fields[fid].get("name") if fid in r.fields else None
    if t == "multipleCollaborators":
        return lambda r: [u.get("name") for u in r.fields.get(fid, ())] or None
    if t == "barcode":
        return lambda r: (r.fields.get(fid) or {}).get("text")
    raise KeyError(t)


def _rollup(store: SandboxStore, base: BaseDef, table: TableDef, f: FieldDef) -> Callable[[Rec], Any]:
    from .formula import FormulaError, SimpleContext, compile_formula, name_resolver

    opts = f.options or {}
    link = table.field(opts.get("recordLinkFieldId") or "")
    if link is None or not opts.get("isValid", True):
        return lambda r: None
    other = base.table_by_id((link.options or {})["linkedTableId"])
    target = other.field(opts.get("fieldIdInLinkedTable") or "")
    if target is None:
        return lambda r: None
    try:
        agg = compile_formula(str(opts.get("formula", "ARRAYJOIN(values)")), name_resolver(["values"]))
    except FormulaError:  # a schema written before the check (or by hand): reads as empty, like isValid false
        return lambda r: None
    now = clock.now()
    lid = link.id

    def value(r: Rec) -> Any:
        inner = table_converters(store, base, other)[target.id]
        orecs = store._records(other.id)
        items: list[Any] = []
        for x in r.fields.get(lid, ()):
            o = orecs.get(x)
            if o is None:
                continue
            v = inner(o)
            if isinstance(v, list):
                items.extend(v)
            elif v is not None:
                items.append(v)
        return agg.evaluate(SimpleContext(values={"values": items}, record_id=r.id, now=now))

    return value


# ---------------------------------------------------------------- cell JSON


def _json_value(v: Any) -> Any:
    """A formula value as Airtable's REST JSON: errors `{"error": "#ERROR!"}`, NaN/∞ as
    `{"specialValue": …}` (the two shapes pyairtable's `api/types.py` recognises), dates in ISO UTC."""
    from .formula.values import FormulaValueError

    if v is None or v is False or v == "":
        return None
    if isinstance(v, FormulaValueError):
        return {"error": v.code}
    if isinstance(v, float):
        if math.isnan(v):
            return {"specialValue": "NaN"}
        if math.isinf(v):
            return {"specialValue": "Infinity" if v > 0 else "-Infinity"}
        return int(v) if v.is_integer() and abs(v) < 2**53 else v  # JSON from JavaScript: 3, not 3.0
    if isinstance(v, datetime):
        return format_instant(v)
    if isinstance(v, list):
        out = [_json_value(x) for x in v]
        return [x for x in out if x is not None] or None
    return v


def cell_json(store: SandboxStore, base: BaseDef, table: TableDef, f: FieldDef, r: Rec) -> Any:
    """JSON of an EVALUATED field whose record stores nothing for it (stored people and barcodes
    are already in Airtable's shape and never come here)."""
    t = f.type
    if t in ("createdBy", "lastModifiedBy"):
        return dict(DEFAULT_USER)  # records seeded or loaded without one: the sandbox's user
    if t in ("singleCollaborator", "multipleCollaborators", "barcode"):
        return None
    if t == "button":
        opts = f.options or {}
        from .formula import FormulaError

        url = opts.get("url")
        try:
            value = _json_value(_formula_fn(store, base, table, url)(r)) if url else None
        except FormulaError:  # a URL formula naming a missing field: the button has no URL
            value = None
        return {"label": opts.get("label", ""), "url": value if isinstance(value, str) else None}
    value = _json_value(table_converters(store, base, table)[f.id](r))
    if t in ("formula", "rollup") and isinstance(value, str) and _numeric_result(f):
        # a text where the field's result is a number: Airtable shows NaN (pyairtable's real test base:
        # "Formula NaN" = {Name} + "FOO" with a number result reads {"specialValue": "NaN"})
        return {"specialValue": "NaN"}
    return value


def _numeric_result(f: FieldDef) -> bool:
    result = (f.options or {}).get("result") or {}
    return result.get("type") in ("number", "currency", "percent", "duration", "rating")


def display(
    store: SandboxStore, base: BaseDef, table: TableDef, f: FieldDef, recs: dict[str, Rec]
) -> Callable[[str], Any]:
    """How a linked record whose primary field is EVALUATED shows in formulas and cellFormat=string."""
    conv = table_converters(store, base, table)[f.id]

    def show(rid: str) -> Any:
        r = recs.get(rid)
        if r is None:
            return None
        v = _json_value(conv(r))
        if isinstance(v, list):
            return ", ".join(str(x) for x in v)
        if isinstance(v, dict):
            return str(v.get("error") or v.get("specialValue") or v.get("name") or v.get("text") or "")
        return "" if v is None else str(v)

    return show


def sort_key(store: SandboxStore, base: BaseDef, table: TableDef, f: FieldDef) -> Callable[[Rec], Any]:
    """Blanks first, then numbers (and dates) numerically, then text case-insensitively; the middle
    element keeps numbers and text from ever being compared with each other."""
    from .formula.values import FormulaValueError

    conv = table_converters(store, base, table)[f.id]

    def key(r: Rec) -> tuple[int, int, Any]:
        v = conv(r)
        if v is None or v == "" or v == [] or isinstance(v, FormulaValueError):
            return (0, 0, 0.0)
        if isinstance(v, bool):
            return (1, 0, float(v))
        if isinstance(v, (int, float)):
            return (1, 0, float(v)) if not math.isnan(v) else (0, 0, 0.0)
        if isinstance(v, datetime):
            return (1, 0, v.timestamp())
        if isinstance(v, list):
            v = ", ".join("" if x is None else str(x) for x in v)
        return (1, 1, str(v).casefold())

    return key


# ---------------------------------------------------------------- who wrote


def stamp_user(table: TableDef, fields: dict[str, Any], user_id: str, *, created: bool) -> None:
    """Record the writing user in a record's createdBy (on creation) and lastModifiedBy cells."""
    for f in table.fields:
        if f.type == "lastModifiedBy" or (created and f.type == "createdBy"):
            fields[f.id] = user_json(user_id)
