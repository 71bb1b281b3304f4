"""Schema side of computed and people fields: a BaseSpec's options (field *names*) become
Airtable's options (field *ids*), and formulas get `isValid` and `referencedFieldIds`.

Called from `schema.build_base` (one hook); imports nothing of schema at run time so that the two
modules do not form an import cycle.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import BaseDef, FieldDef, TableDef

# rollup aggregations whose result is a number (Airtable's rollup function list)
_NUMERIC_AGGREGATIONS = ("SUM", "MAX", "MIN", "AVERAGE", "COUNT", "COUNTA", "COUNTALL", "AND", "OR", "XOR")
_DATE_FORMAT = {"name": "iso", "format": "YYYY-MM-DD"}
_TIME_FORMAT = {"name": "24hour", "format": "HH:mm"}


class SpecError(ValueError):
    """A computed field's options name a field that is not there (build_base raises SchemaError)."""


def _rewrite_refs(text: str, table: TableDef) -> str:
    """`{Field name}` and bare field words → `{fldXXX}`, as Airtable stores a formula."""
    from .formula import FormulaError, parse
    from .formula.evaluator import _tokens_in_order
    from .formula.parser import unescape_field

    try:
        tokens = _tokens_in_order(parse(text))
    except FormulaError:
        return text  # kept as written; finalize marks it invalid
    out = text
    for tok in reversed(tokens):  # right to left: earlier positions stay valid
        if tok.type == "FIELD":
            name = unescape_field(str(tok))
        elif tok.type == "NAME":
            name = str(tok)
        else:
            continue
        f = table.field(name)
        if f is not None and tok.start_pos is not None and tok.end_pos is not None:
            out = out[: tok.start_pos] + "{" + f.id + "}" + out[tok.end_pos :]
    return out


def normalize_result(result: dict[str, Any] | None) -> dict[str, Any]:
    """A formula/rollup `result` with the options Airtable always shows for its type (pyairtable's
    models require them, e.g. a date result without `dateFormat` does not parse)."""
    if not result:
        return {"type": "singleLineText"}
    rtype = result["type"]
    opts = dict(result.get("options") or {})
    if rtype in ("number", "percent"):
        opts = {"precision": int(opts.get("precision", 0))}
    elif rtype == "currency":
        opts = {"precision": int(opts.get("precision", 2)), "symbol": opts.get("symbol", "$")}
    elif rtype == "duration":
        opts = {"durationFormat": opts.get("durationFormat", "h:mm")}
    elif rtype == "date":
        opts = {"dateFormat": opts.get("dateFormat", _DATE_FORMAT)}
    elif rtype == "dateTime":
        opts = {
            "dateFormat": opts.get("dateFormat", _DATE_FORMAT),
            "timeFormat": opts.get("timeFormat", _TIME_FORMAT),
            "timeZone": opts.get("timeZone", "utc"),
        }
    elif rtype == "checkbox":
        opts = {"icon": opts.get("icon", "check"), "color": opts.get("color", "greenBright")}
    else:
        return {"type": rtype, **({"options": opts} if opts else {})}
    return {"type": rtype, "options": opts}


def resolve_options(base: BaseDef, table: TableDef, f: FieldDef, opts: dict[str, Any]) -> dict[str, Any] | None:
    """Options of a `schema.SPEC_TYPES` field from its BaseSpec options (names) or Airtable's (ids)."""
    t = f.type
    if t == "duration":
        return {"durationFormat": opts.get("durationFormat", "h:mm")}
    if t == "rating":
        return {
            "icon": opts.get("icon", "star"),
            "max": int(opts.get("max", 5)),
            "color": opts.get("color", "yellowBright"),
        }
    if t == "formula":
        return {
            "formula": _rewrite_refs(str(opts.get("formula", "")), table),
            "isValid": True,  # finalize decides
            "referencedFieldIds": [],
            "result": normalize_result(opts.get("result")),
        }
    if t in ("rollup", "count"):
        link = table.field(opts.get("recordLinkFieldId") or opts.get("recordLinkField") or "")
        if link is None or link.type != "multipleRecordLinks":
            raise SpecError(f"{t} {table.name}.{f.name}: bad recordLinkField")
        if t == "count":
            return {"isValid": True, "recordLinkFieldId": link.id}
        other = base.table_by_id((link.options or {})["linkedTableId"])
        target = other.field(opts.get("fieldIdInLinkedTable") or opts.get("fieldInLinkedTable") or "")
        if target is None:
            raise SpecError(f"rollup {table.name}.{f.name}: bad fieldInLinkedTable")
        formula = str(opts.get("formula", "ARRAYJOIN(values)"))
        result = opts.get("result")
        if result is None and formula.lstrip().upper().startswith(_NUMERIC_AGGREGATIONS):
            result = {"type": "number", "options": {"precision": 0}}
        # `formula` is the aggregation (`SUM(values)`): Airtable's OpenAPI rollup options list it
        # next to referencedFieldIds ("The ids of any fields referenced in the rollup formula").
        return {
            "isValid": _aggregation_compiles(formula),
            "recordLinkFieldId": link.id,
            "fieldIdInLinkedTable": target.id,
            "referencedFieldIds": [target.id],
            "result": normalize_result(result),
            "formula": formula,
        }
    if t == "button":
        return {"label": str(opts.get("label", "Open")), "url": _rewrite_refs(str(opts.get("url", "")), table)}
    return None  # createdBy, lastModifiedBy, collaborators, barcode: Airtable shows no options


def _aggregation_compiles(text: str) -> bool:
    """A rollup's aggregation may only name `values` (Airtable's rollup formula editor)."""
    from .formula import FormulaError, compile_formula, name_resolver

    try:
        compile_formula(text, name_resolver(["values"]))
    except FormulaError:
        return False
    return True


def _formula_refs(text: str, table: TableDef) -> list[str] | None:
    """Field ids a formula reads, in order of appearance; None when it does not compile."""
    from .formula import FormulaError, compile_formula

    seen: list[str] = []

    def resolve(name: str) -> Hashable:
        g = table.field(name)
        if g is None:
            raise KeyError(name)
        if g.id not in seen:
            seen.append(g.id)
        return g.id

    try:
        compile_formula(text, resolve)
    except FormulaError:
        return None
    return seen


def _in_cycles(refs: dict[str, list[str] | None]) -> set[str]:
    """Formula field ids that lie on a reference cycle (depth-first search over formula → formula)."""
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    bad: set[str] = set()

    def visit(fid: str, stack: list[str]) -> None:
        if state.get(fid) == 2:
            return
        if state.get(fid) == 1:
            bad.update(stack[stack.index(fid) :])
            return
        state[fid] = 1
        stack.append(fid)
        for dep in refs.get(fid) or []:
            if dep in refs:
                visit(dep, stack)
        stack.pop()
        state[fid] = 2

    for fid in refs:
        visit(fid, [])
    return bad


def finalize(base: BaseDef) -> None:
    """Set `isValid` and `referencedFieldIds` of every formula: unknown fields or a cycle through
    other formulas (or buttons' URL formulas are not referenceable) make it invalid."""
    for t in base.tables:
        refs: dict[str, list[str] | None] = {}
        for f in t.fields:
            if f.type == "formula" and f.options is not None:
                refs[f.id] = _formula_refs(str(f.options.get("formula", "")), t)
        bad = _in_cycles(refs)
        for fid, ids in refs.items():
            opts = t.field_by_id(fid).options
            assert opts is not None
            opts["isValid"] = ids is not None and fid not in bad
            opts["referencedFieldIds"] = ids or []
