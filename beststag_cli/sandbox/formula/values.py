"""Runtime value model and coercions of the formula engine.

Values flowing through a compiled formula are: ``None`` (blank), ``str``, ``int``/``float``, ``bool``,
aware ``datetime`` (any zone; compared by instant), ``list`` and :class:`FormulaValueError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any


class FormulaValueError:
    """The in-formula error value (``#ERROR!``, ``#DIV/0!``...). Never raised; returned as a value."""

    __slots__ = ("code", "detail")

    def __init__(self, code: str = "#ERROR!", detail: str = "") -> None:
        self.code = code
        self.detail = detail

    def __repr__(self) -> str:
        if self.detail:
            return f"FormulaValueError({self.code!r}, {self.detail!r})"
        return f"FormulaValueError({self.code!r})"

    def __str__(self) -> str:
        return self.code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FormulaValueError) and other.code == self.code

    def __hash__(self) -> int:
        return hash(("FormulaValueError", self.code))

    def __bool__(self) -> bool:
        return False


ERROR = FormulaValueError("#ERROR!")
DIV0 = FormulaValueError("#DIV/0!")
NUM_ERROR = FormulaValueError("#NUM!")

MAX_TEXT = 1_000_000  # guard against REPT/concatenation blow-ups


class CoercionError(Exception):
    """Internal: a value could not be coerced; turned into an error value by the caller."""


# ---------------------------------------------------------------- truthiness


def is_truthy(value: Any) -> bool:
    """Airtable filter truthiness: 0, False, "", NaN, [], blank and errors are falsy."""
    if value is None or value is False or value is True:
        return bool(value)
    t = type(value)
    if t is str:
        return value != ""
    if t is int:
        return value != 0
    if t is float:
        return value != 0.0 and value == value
    if t is list:
        return any(is_truthy(x) for x in flatten(value))  # consistent with AND()/OR() flattening
    if t is FormulaValueError:
        return False
    if isinstance(value, datetime):
        return True
    if isinstance(value, (int, float)):
        return bool(value) and value == value
    return bool(value)


def flatten(values: Iterable[Any]) -> Iterator[Any]:
    for v in values:
        if type(v) is list:
            yield from flatten(v)
        else:
            yield v


def first_error(values: Iterable[Any]) -> FormulaValueError | None:
    for v in values:
        if type(v) is FormulaValueError:
            return v
        if type(v) is list:
            e = first_error(v)
            if e is not None:
                return e
    return None


# ---------------------------------------------------------------- text


def format_number(n: int | float) -> str:
    if type(n) is bool:
        return "1" if n else "0"
    if isinstance(n, int):
        return str(n)
    if n != n:
        return "NaN"
    if n in (math.inf, -math.inf):
        return "Infinity" if n > 0 else "-Infinity"
    if n.is_integer() and abs(n) < 1e21:
        return str(int(n))
    r = repr(n)
    if "e" in r:
        mant, exp = r.split("e")
        sign = "-" if exp.startswith("-") else "+"
        r = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return r


def format_iso(d: datetime) -> str:
    """moment's toISOString(): always UTC with milliseconds and ``Z``."""
    u = d.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def to_text(value: Any) -> str:
    """Stringify as the ``&`` operator does. Errors must be filtered out by the caller."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is int or t is float or t is bool:
        return format_number(value)
    if t is list:
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, datetime):
        return format_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if t is FormulaValueError:
        raise CoercionError(value.code)
    return str(value)


# ---------------------------------------------------------------- numbers

_NUMERIC_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")


def parse_number_text(s: str) -> int | float | None:
    if not _NUMERIC_RE.fullmatch(s):
        return None
    s = s.strip()
    if re.fullmatch(r"[+-]?\d{1,15}", s):
        return int(s)
    return float(s)


def to_number(value: Any) -> int | float:
    """Arithmetic coercion: blank → 0, bool → 1/0, numeric text → number, else CoercionError."""
    t = type(value)
    if t is int or t is float:
        return value
    if value is None:
        return 0
    if t is bool:
        return 1 if value else 0
    if t is str:
        if value.strip() == "":
            return 0
        n = parse_number_text(value)
        if n is None:
            raise CoercionError(f"not a number: {value!r}")
        return n
    if t is list:
        items = [v for v in flatten(value)]
        if not items:
            return 0
        if len(items) == 1:
            return to_number(items[0])
        raise CoercionError("array is not a number")
    raise CoercionError(f"not a number: {value!r}")


# ---------------------------------------------------------------- dates

_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ISO_DT_RE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


@lru_cache(maxsize=4096)
def parse_datetime_text(s: str) -> datetime | None:
    """Parse an ISO date/datetime (or a common human format). Naive results are taken as UTC."""
    s = s.strip()
    if not s:
        return None
    m = _ISO_DT_RE.fullmatch(s)
    if m:
        y, mo, d, hh, mi, ss, frac, tz = m.groups()
        try:
            micro = int((frac or "0")[:6].ljust(6, "0"))
            dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), micro)
        except ValueError:
            return None
        if tz and tz not in ("Z", "z"):
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            off = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            return (dt - sign * off).replace(tzinfo=UTC)
        return dt.replace(tzinfo=UTC)
    if not any(c.isdigit() for c in s):
        return None
    from dateutil import parser as dateutil_parser  # lazy: only for non-ISO text

    try:
        dt = dateutil_parser.parse(s, default=datetime(2000, 1, 1))
    except (ValueError, OverflowError, TypeError):
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_datetime(value: Any) -> datetime | None:
    """Coerce to an aware datetime; ``None`` for blank; CoercionError when impossible."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if type(value) is str:
        d = parse_datetime_text(value)
        if d is None:
            raise CoercionError(f"not a date: {value!r}")
        return d
    if type(value) is list:
        items = [v for v in flatten(value) if v is not None and v != ""]
        if not items:
            return None
        if len(items) == 1:
            return to_datetime(items[0])
        raise CoercionError("array is not a date")
    raise CoercionError(f"not a date: {value!r}")


def epoch_ms(d: datetime) -> float:
    return d.timestamp() * 1000.0


# ---------------------------------------------------------------- comparison


def _cmp_key_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Return a comparable pair for ``a`` and ``b`` or ``None`` when they are incomparable
    (then only ``!=`` is true)."""
    ta, tb = type(a), type(b)
    if ta is bool:
        a, ta = int(a), int
    if tb is bool:
        b, tb = int(b), int
    if ta is list:
        a, ta = to_text(a), str
    if tb is list:
        b, tb = to_text(b), str
    a_num = ta is int or ta is float
    b_num = tb is int or tb is float
    if a_num and b_num:
        return a, b
    a_dt = isinstance(a, datetime)
    b_dt = isinstance(b, datetime)
    if a is None and b is None:
        return 0, 0
    if a is None:
        if b_num:
            return 0, b
        if b_dt:
            return None
        return "", to_text(b)
    if b is None:
        if a_num:
            return a, 0
        if a_dt:
            return None
        return to_text(a), ""
    if a_dt and b_dt:
        return a.timestamp(), b.timestamp()
    if a_dt or b_dt:
        d, other = (a, b) if a_dt else (b, a)
        if type(other) is str:
            od = parse_datetime_text(other)
            pair = (to_text(d), other) if od is None else (d.timestamp(), od.timestamp())
        else:  # number: compare epoch milliseconds
            pair = (epoch_ms(d), other)
        return pair if a_dt else (pair[1], pair[0])
    if a_num and tb is str:
        n = parse_number_text(b)
        return (a, n) if n is not None else (format_number(a), b)
    if b_num and ta is str:
        n = parse_number_text(a)
        return (n, b) if n is not None else (a, format_number(b))
    return to_text(a), to_text(b)


def compare(op: str, a: Any, b: Any) -> Any:
    """Evaluate a comparison operator with Airtable coercions. Returns bool or an error value."""
    ta, tb = type(a), type(b)
    if ta is FormulaValueError:
        return a
    if tb is FormulaValueError:
        return b
    if (ta is str and tb is str) or ((ta is int or ta is float) and (tb is int or tb is float)):
        x, y = a, b
    else:
        if (ta is list and first_error(a)) or (tb is list and first_error(b)):
            return ERROR
        pair = _cmp_key_pair(a, b)
        if pair is None:
            return op == "!="
        x, y = pair
    if op == "=":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == ">":
        return x > y
    if op == "<=":
        return x <= y
    return x >= y


def values_equal(a: Any, b: Any) -> bool:
    r = compare("=", a, b)
    return r is True
