"""The filter language of a query spec: its syntax tree and the parser from the JSON forms.

Schema-free and import-light (no pydantic, no pyairtable): the cache builds keys from this tree.
Type checks against the base schema happen later, in `validate.py`.

Grammar (README, "Queries and filters"): a filter is a JSON object whose keys are field names or
the logical keys `and` / `or` (a list of filters) and `not` (one filter); several keys are ANDed.
A field's value is a scalar (equality), `null` (is empty), a list (`in`), an object with an
`"operator"` key (the spec's form: `{"operator": "date_after", "days": -7}`), or an object whose
keys are operator names (`{"gte": 100, "lt": 500}`). A list of filters at the top is an AND.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from ..errors import FilterError
from ..names import did_you_mean

LOGICAL = ("and", "or", "not")

SCALAR_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
TEXT_OPS = ("contains", "starts_with")
LIST_OPS = ("in", "not_in")
EMPTY_OPS = ("is_empty", "not_empty")
DATE_OPS = ("date_after", "date_before", "date_within")
OPERATORS: tuple[str, ...] = SCALAR_OPS + TEXT_OPS + LIST_OPS + EMPTY_OPS + DATE_OPS

ALIASES = {
    "=": "eq",
    "==": "eq",
    "!=": "ne",
    "<>": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "neq": "ne",
    "startswith": "starts_with",
    "isempty": "is_empty",
    "notempty": "not_empty",
    "nin": "not_in",
}

#: keys a date operator takes besides "operator"
REL_UNITS = ("days", "hours", "minutes")
_OP_ARG_KEYS = {"value", "date", "from", "to", *REL_UNITS}

Scalar = str | int | float | bool

#: how deep and/or/not may nest; deeper filters are refused before anything recurses too far
MAX_DEPTH = 100


# ------------------------------------------------------------------------------------------ nodes
@dataclass(frozen=True)
class Node:
    def to_json(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def canon(self) -> str:
        """Canonical JSON text of this node (sorted keys, no spaces): equal text ⇔ equal filter."""
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Const(Node):
    """Always true (no filter) or always false (a contradiction: answered empty without a request)."""

    value: bool

    def to_json(self) -> Any:
        return {"const": self.value}


@dataclass(frozen=True)
class Cond(Node):
    """One condition on one field. `value` is canonical JSON data:
    scalar for eq/ne/gt/gte/lt/lte/contains/starts_with; a tuple of scalars for in/not_in; None for
    is_empty/not_empty; for date ops a tuple of (key, value) pairs from REL_UNITS/date/from/to."""

    field: str
    op: str
    value: Any = None

    def to_json(self) -> Any:
        v = self.value
        if self.op in DATE_OPS:
            v = dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out: dict[str, Any] = {"field": self.field, "op": self.op}
        if v is not None:
            out["value"] = v
        return out

    @property
    def date_args(self) -> dict[str, Any]:
        return dict(self.value) if self.op in DATE_OPS else {}


@dataclass(frozen=True)
class And(Node):
    items: tuple[Node, ...]

    def to_json(self) -> Any:
        return {"and": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Or(Node):
    items: tuple[Node, ...]

    def to_json(self) -> Any:
        return {"or": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Not(Node):
    item: Node

    def to_json(self) -> Any:
        return {"not": self.item.to_json()}


TRUE = Const(True)
FALSE = Const(False)


def walk(node: Node) -> list[Cond]:
    """Every condition of the tree, depth first."""
    if isinstance(node, Cond):
        return [node]
    if isinstance(node, (And, Or)):
        return [c for i in node.items for c in walk(i)]
    if isinstance(node, Not):
        return walk(node.item)
    return []


# ------------------------------------------------------------------------------------------ values
def _bad(msg: str, path: str) -> FilterError:
    return FilterError(f"filter {path}: {msg}" if path else f"filter: {msg}")


def canon_scalar(v: Any, path: str) -> Scalar:
    """A JSON scalar in canonical form (integral floats become ints); refuses null, NaN, lists, objects."""
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _bad(f"{v!r} is not a finite number", path)
        return int(v) if v.is_integer() and abs(v) < 2**53 else v
    raise _bad(f"expected a text, number or true/false value, got {type_name(v)}", path)


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "true/false", str: "text", int: "number", float: "number", list: "a list", dict: "an object"}.get(
        type(v), type(v).__name__
    )


def canon_instant(text: Any, path: str) -> str:
    """ISO date → `YYYY-MM-DD`; ISO datetime → UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` (naive = UTC)."""
    if not isinstance(text, str):
        raise _bad(f"expected an ISO date like 2024-01-31 or 2024-01-31T12:00:00Z, got {type_name(text)}", path)
    s = text.strip()
    try:
        if len(s) == 10:
            return datetime.strptime(s, "%Y-%m-%d").strftime("%Y-%m-%d")
        dt = datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{text!r} is not an ISO date or datetime (2024-01-31, 2024-01-31T12:00:00Z)", path) from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> datetime:
    """Inverse of canon_instant (date-only → midnight UTC)."""
    if len(text) == 10:  # fromisoformat: strptime costs ~8 µs a call, and dates are sorted by the thousand
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _rel_count(v: Any, key: str, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise _bad(f'"{key}" must be a whole number (negative = in the past), got {v!r}', path)
    if abs(v) > 100_000 * (24 * 60 if key == "minutes" else 24 if key == "hours" else 1):
        raise _bad(f'"{key}" is out of range: {v!r}', path)
    return int(v)


def _date_args(op: str, args: dict[str, Any], path: str) -> tuple[tuple[str, Any], ...]:
    """Canonical arguments of a date operator."""
    args = dict(args)
    if "date" in args and "value" not in args:
        args["value"] = args.pop("date")
    rel = [k for k in REL_UNITS if k in args]
    unknown = sorted(set(args) - {"value", "from", "to", *REL_UNITS})
    if unknown:
        raise _bad(
            f'{op} does not take "{unknown[0]}" (it takes one of days, hours, minutes, value'
            + (", or from/to" if op == "date_within" else "")
            + ")",
            path,
        )
    if len(rel) > 1:
        raise _bad(f"{op}: give one of days, hours, minutes, not {' and '.join(rel)}", path)
    if rel:
        if set(args) - set(rel):
            raise _bad(f"{op}: a relative ({rel[0]}) and an absolute date cannot be combined", path)
        n = _rel_count(args[rel[0]], rel[0], path)
        if op == "date_within" and n == 0:
            raise _bad(f'date_within needs a non-zero "{rel[0]}" (-7 = the last 7, 7 = the next 7)', path)
        return ((rel[0], n),)
    if op == "date_within":
        if "value" in args:
            raise _bad('date_within takes "days"/"hours"/"minutes" or "from"/"to", not "value"', path)
        out = tuple((k, canon_instant(args[k], path)) for k in ("from", "to") if k in args)
        if not out:
            raise _bad('date_within needs "days", "hours", "minutes", or "from"/"to"', path)
        return out
    if "from" in args or "to" in args:
        raise _bad(f'{op} takes "days", "hours", "minutes" or "value", not from/to', path)
    if "value" not in args:
        raise _bad(f'{op} needs "days" (e.g. -7), "hours", "minutes" or an ISO date in "value"', path)
    v = args["value"]
    if isinstance(v, dict):
        return _date_args(op, v, path)
    return (("value", canon_instant(v, path)),)


def op_name(raw: Any, path: str) -> str:
    if not isinstance(raw, str):
        raise _bad(f"an operator must be text, got {type_name(raw)}", path)
    name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in OPERATORS:
        raise FilterError(
            f"filter {path}: unknown operator {raw!r}{did_you_mean(raw, OPERATORS)}",
            hint="operators: " + ", ".join(OPERATORS),
        )
    return name


def make_cond(field: str, op: str, args: dict[str, Any], path: str) -> Node:
    """Build a canonical condition from an operator and its argument keys (value, days, ...)."""
    if op in DATE_OPS:
        return Cond(field, op, _date_args(op, args, path))
    extra = sorted(set(args) - {"value"})
    if extra:
        raise _bad(f'{op} takes only "value", not "{extra[0]}"', path)
    if op in EMPTY_OPS:
        if "value" in args and args["value"] not in (True, None):
            raise _bad(f"{op} takes no value", path)
        return Cond(field, op)
    if "value" not in args:
        raise _bad(f'{op} needs a "value"', path)
    v = args["value"]
    if op in LIST_OPS:
        if not isinstance(v, list):
            v = [v]
        items = {json.dumps(x, sort_keys=True): x for x in (canon_scalar(x, path) for x in v)}
        vals = tuple(items[k] for k in sorted(items))
        if not vals:
            return FALSE if op == "in" else TRUE
        if len(vals) == 1:
            return Cond(field, "eq" if op == "in" else "ne", vals[0])
        return Cond(field, op, vals)
    if v is None and op in ("eq", "ne"):
        return Cond(field, "is_empty" if op == "eq" else "not_empty")
    sv = canon_scalar(v, path)
    if op in ("eq", "ne") and sv == "":
        return Cond(field, "is_empty" if op == "eq" else "not_empty")
    if op in TEXT_OPS and (not isinstance(sv, str) or sv == ""):
        raise _bad(f"{op} needs a non-empty text value, got {v!r}", path)
    return Cond(field, op, sv)


# ------------------------------------------------------------------------------------------ parser
def parse_filters(raw: Any, path: str = "", depth: int = 0) -> Node:
    """The spec's filter JSON → a (not yet simplified) tree. Raises FilterError with the JSON path."""
    if raw is None:
        return TRUE
    if depth > MAX_DEPTH:
        raise FilterError(
            f"the filter nests and/or/not more than {MAX_DEPTH} levels deep",
            hint="flatten it: and/or take a list of any length",
        )
    if isinstance(raw, list):
        return And(tuple(parse_filters(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(raw)))
    if not isinstance(raw, dict):
        raise _bad(f'expected an object like {{"status": "Ativo"}}, got {type_name(raw)}', path or "")
    items: list[Node] = []
    for key, val in raw.items():
        sub = f"{path}.{key}" if path else str(key)
        lk = key.lower() if isinstance(key, str) else key
        if lk in ("and", "or", "$and", "$or"):
            if not isinstance(val, list):
                raise _bad(f'"{key}" takes a list of filters', sub)
            kids = tuple(parse_filters(x, f"{sub}[{i}]", depth + 1) for i, x in enumerate(val))
            items.append(And(kids) if lk.endswith("and") else Or(kids))
        elif lk in ("not", "$not"):
            items.append(Not(parse_filters(val, sub, depth + 1)))
        else:
            items.append(_field_filter(str(key), val, sub))
    return items[0] if len(items) == 1 else And(tuple(items))


def _field_filter(field: str, val: Any, path: str) -> Node:
    if not field.strip():
        raise _bad("a field name is empty", path)
    if isinstance(val, dict):
        if "operator" in val:
            args = {k: v for k, v in val.items() if k != "operator"}
            return make_cond(field, op_name(val["operator"], path), args, path)
        if not val:
            raise _bad('an empty object; write {"operator": ..., "value": ...}', path)
        conds: list[Node] = []
        for k, v in val.items():
            op = op_name(k, path)
            if op in DATE_OPS:
                args = v if isinstance(v, dict) else {"value": v}
            elif op in EMPTY_OPS:
                if v is not True:
                    raise _bad(f'write {{"{op}": true}}', path)
                args = {}
            else:
                args = {"value": v}
            conds.append(make_cond(field, op, args, path))
        return conds[0] if len(conds) == 1 else And(tuple(conds))
    if isinstance(val, list):
        return make_cond(field, "in", {"value": val}, path)
    if val is None:
        return Cond(field, "is_empty")
    return make_cond(field, "eq", {"value": val}, path)
