"""Built-in function table of the formula engine.

Each entry is a :class:`FunctionSpec`. Kinds:

* ``strict``  – ``impl(*values)``; an error value among the arguments is returned as is.
* ``lenient`` – ``impl(*values)``; the implementation sees error values (ISERROR).
* ``ctx``     – ``impl(ctx, *values)``; errors propagate. When called with ``ctx=None`` (constant
  folding) an implementation that needs the record raises :class:`NeedsContext`.
* ``lazy``    – compiled specially by the compiler (IF, SWITCH, LAST_MODIFIED_TIME).

Implementations may raise anything; the compiler turns exceptions into ``#ERROR!``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
)
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import regex as _regex_engine

from . import dates
from .values import (
    DIV0,
    ERROR,
    MAX_TEXT,
    NUM_ERROR,
    CoercionError,
    FormulaValueError,
    flatten,
    format_iso,
    is_truthy,
    parse_datetime_text,
    parse_number_text,
    to_datetime,
    to_number,
    to_text,
    values_equal,
)


class NeedsContext(Exception):
    """Raised by ``ctx`` functions evaluated at compile time when they need the record."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any] | None
    kind: str = "strict"


FUNCTIONS: dict[str, FunctionSpec] = {}


def _register(name: str, min_args: int, max_args: int | None, kind: str = "strict") -> Callable[[Any], Any]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = FunctionSpec(name, min_args, max_args, fn, kind)
        return fn

    return deco


def _alias(name: str, target: str) -> None:
    spec = FUNCTIONS[target]
    FUNCTIONS[name] = FunctionSpec(name, spec.min_args, spec.max_args, spec.impl, spec.kind)


# Lazily-evaluated functions: the compiler provides their semantics.
FUNCTIONS["IF"] = FunctionSpec("IF", 2, 3, None, "lazy")
FUNCTIONS["SWITCH"] = FunctionSpec("SWITCH", 2, None, None, "lazy")
FUNCTIONS["LAST_MODIFIED_TIME"] = FunctionSpec("LAST_MODIFIED_TIME", 0, None, None, "lazy")


# ---------------------------------------------------------------- helpers


def _int(value: Any) -> int:
    n = to_number(value)
    if n != n or n in (math.inf, -math.inf):
        raise CoercionError("not a finite number")
    return int(n)


def _date(value: Any) -> datetime:
    d = to_datetime(value)
    if d is None:
        raise CoercionError("blank date")
    return d


def _opt_text(value: Any) -> str | None:
    if value is None:
        return None
    return to_text(value)


def _as_list(value: Any) -> list[Any]:
    if type(value) is list:
        return value
    if value is None:
        return []
    return [value]


def _guard(s: str) -> str:
    if len(s) > MAX_TEXT:
        raise CoercionError("text too long")
    return s


def _num_result(x: float | int | Decimal) -> int | float:
    if isinstance(x, Decimal):
        if x == x.to_integral_value():
            return int(x)
        return float(x)
    return x


# ---------------------------------------------------------------- logical


def _logical_items(args: tuple[Any, ...]) -> list[bool]:
    # an array argument counts as one value, true when any item is (the filter's own truthiness),
    # so AND(a, b) always agrees with "a passes the filter and b passes the filter"
    return [is_truthy(a) for a in args]


@_register("AND", 1, None)
def _and(*args: Any) -> bool:
    return all(_logical_items(args))


@_register("OR", 1, None)
def _or(*args: Any) -> bool:
    return any(_logical_items(args))


@_register("XOR", 1, None)
def _xor(*args: Any) -> bool:
    return sum(_logical_items(args)) % 2 == 1


@_register("NOT", 1, 1)
def _not(x: Any) -> bool:
    return not is_truthy(x)


@_register("TRUE", 0, 0)
def _true() -> bool:
    return True


@_register("FALSE", 0, 0)
def _false() -> bool:
    return False


@_register("BLANK", 0, 0)
def _blank() -> None:
    return None


@_register("ERROR", 0, None)
def _error(*_: Any) -> FormulaValueError:
    return ERROR


@_register("ISERROR", 1, 1, "lenient")
def _iserror(x: Any) -> bool:
    if type(x) is FormulaValueError:
        return True
    return type(x) is list and any(type(v) is FormulaValueError for v in flatten(x))


# ---------------------------------------------------------------- text


@_register("FIND", 2, 3)
def _find(needle: Any, hay: Any, start: Any = None) -> int:
    n, h = to_text(needle), to_text(hay)
    if n == "":
        return 0
    s = max(_int(start) - 1, 0) if start is not None else 0
    return h.find(n, s) + 1


@_register("SEARCH", 2, 3)
def _search(needle: Any, hay: Any, start: Any = None) -> int | None:
    n, h = to_text(needle).lower(), to_text(hay).lower()
    if n == "":
        return None
    s = max(_int(start) - 1, 0) if start is not None else 0
    pos = h.find(n, s)
    return pos + 1 if pos >= 0 else None


@_register("LOWER", 1, 1)
def _lower(s: Any) -> str:
    return to_text(s).lower()


@_register("UPPER", 1, 1)
def _upper(s: Any) -> str:
    return to_text(s).upper()


@_register("LEN", 1, 1)
def _len(s: Any) -> int:
    return len(to_text(s))


@_register("TRIM", 1, 1)
def _trim(s: Any) -> str:
    return to_text(s).strip()


@_register("LEFT", 2, 2)
def _left(s: Any, n: Any) -> str:
    k = _int(n)
    if k < 0:
        raise CoercionError("negative count")
    return to_text(s)[:k]


@_register("RIGHT", 2, 2)
def _right(s: Any, n: Any) -> str:
    k = _int(n)
    if k < 0:
        raise CoercionError("negative count")
    t = to_text(s)
    return t[len(t) - k :] if k else ""


@_register("MID", 3, 3)
def _mid(s: Any, start: Any, count: Any) -> str:
    st, c = _int(start), _int(count)
    if st < 1 or c < 0:
        raise CoercionError("bad MID arguments")
    return to_text(s)[st - 1 : st - 1 + c]


@_register("SUBSTITUTE", 3, 4)
def _substitute(s: Any, old: Any, new: Any, index: Any = None) -> str:
    t, o, n = to_text(s), to_text(old), to_text(new)
    if o == "":
        return t
    if index is None:
        # the result's length first: building it to find it too long allocated up to MAX_TEXT² characters
        if len(n) > len(o) and len(t) + t.count(o) * (len(n) - len(o)) > MAX_TEXT:
            raise CoercionError("text too long")
        return _guard(t.replace(o, n))
    idx = _int(index)
    if idx < 1:
        raise CoercionError("bad index")
    pos = -1
    for _ in range(idx):
        pos = t.find(o, pos + 1)
        if pos < 0:
            return t
    return t[:pos] + n + t[pos + len(o) :]


@_register("REPLACE", 4, 4)
def _replace(s: Any, start: Any, count: Any, new: Any) -> str:
    t = to_text(s)
    st, c = _int(start), _int(count)
    if st < 1 or c < 0:
        raise CoercionError("bad REPLACE arguments")
    return _guard(t[: st - 1] + to_text(new) + t[st - 1 + c :])


@_register("REPT", 2, 2)
def _rept(s: Any, n: Any) -> str:
    t, k = to_text(s), _int(n)
    if k < 0:
        raise CoercionError("negative count")
    if len(t) * k > MAX_TEXT:
        raise CoercionError("text too long")
    return t * k


@_register("CONCATENATE", 1, None)
def _concatenate(*args: Any) -> str:
    return _guard("".join(to_text(a) for a in args))


@_register("T", 1, 1)
def _t(x: Any) -> str:
    if type(x) is str:
        return x
    if type(x) is list and x and all(type(v) is str for v in flatten(x)):
        return to_text(x)
    return ""


@_register("ENCODE_URL_COMPONENT", 1, 1)
def _encode_url_component(s: Any) -> str:
    return quote(to_text(s), safe="-_.!~*'()")


# ---------------------------------------------------------------- arrays


@_register("ARRAYJOIN", 1, 2)
def _arrayjoin(arr: Any, sep: Any = None) -> str:
    separator = ", " if sep is None else to_text(sep)
    return _guard(separator.join(to_text(v) for v in flatten(_as_list(arr))))


@_register("ARRAYUNIQUE", 1, 1)
def _arrayunique(arr: Any) -> list[Any]:
    out: list[Any] = []
    seen: set[Any] = set()
    for v in flatten(_as_list(arr)):
        key = (type(v).__name__, v) if not isinstance(v, datetime) else ("dt", v.timestamp())
        try:
            if key in seen:
                continue
            seen.add(key)
        except TypeError:
            if v in out:
                continue
        out.append(v)
    return out


@_register("ARRAYCOMPACT", 1, 1)
def _arraycompact(arr: Any) -> list[Any]:
    return [v for v in flatten(_as_list(arr)) if v is not None and v != ""]


@_register("ARRAYFLATTEN", 1, 1)
def _arrayflatten(arr: Any) -> list[Any]:
    return list(flatten(_as_list(arr)))


@_register("ARRAYSLICE", 2, 3)
def _arrayslice(arr: Any, start: Any, end: Any = None) -> list[Any]:
    items = list(flatten(_as_list(arr)))
    s = _int(start)
    s = s - 1 if s > 0 else len(items) + s if s < 0 else 0
    if end is None:
        return items[s:]
    e = _int(end)
    e = e if e >= 0 else len(items) + e + 1
    return items[s:e]


# ---------------------------------------------------------------- numeric


@_register("VALUE", 1, 1)
def _value(x: Any) -> int | float:
    if type(x) is not str:
        return to_number(x)
    s = x.strip()
    if s == "":
        return 0
    n = parse_number_text(s)
    if n is not None:
        return n
    negative = s.startswith("-") or (s.startswith("(") and s.endswith(")"))
    percent = s.endswith("%")
    cleaned = re.sub(r"[^0-9.eE+-]", "", s.replace(",", "")).lstrip("+-")
    n = parse_number_text(cleaned)
    if n is None:
        raise CoercionError(f"VALUE cannot parse {x!r}")
    if percent:
        n = n / 100
    return -n if negative else n


# Sentinel mode for ROUND: Airtable's formula reference says ties are "broken by rounding half up
# toward positive infinity" (ROUND(-2.5, 0) = -2, ROUND(2.5, 0) = 3); decimal has no such mode, so
# it is half-up for positive values and half-down (toward zero, i.e. toward +∞) for negative ones.
_ROUND_HALF_CEILING = "ROUND_HALF_CEILING"


def _round_with(value: Any, places: Any, mode: str) -> int | float:
    x = to_number(value)
    p = _int(places) if places is not None else 0
    if x != x or x in (math.inf, -math.inf):
        return x
    d = _dec(x)
    if mode == _ROUND_HALF_CEILING:
        mode = ROUND_HALF_UP if d >= 0 else ROUND_HALF_DOWN
    if p < 0:
        return _num_result(d.scaleb(p).quantize(Decimal(1), rounding=mode).scaleb(-p))
    return _num_result(d.quantize(Decimal(1).scaleb(-p), rounding=mode))


@_register("ROUND", 1, 2)
def _round(value: Any, places: Any = None) -> int | float:
    return _round_with(value, places, _ROUND_HALF_CEILING)


@_register("ROUNDUP", 1, 2)
def _roundup(value: Any, places: Any = None) -> int | float:
    return _round_with(value, places, ROUND_UP)


@_register("ROUNDDOWN", 1, 2)
def _rounddown(value: Any, places: Any = None) -> int | float:
    return _round_with(value, places, ROUND_DOWN)


@_register("ABS", 1, 1)
def _abs(x: Any) -> int | float:
    return abs(to_number(x))


@_register("INT", 1, 1)
def _int_fn(x: Any) -> int | float:
    n = to_number(x)
    return math.floor(n) if n == n and n not in (math.inf, -math.inf) else n


def _dec(x: int | float) -> Decimal:
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _to_multiple(value: Any, significance: Any, mode: str) -> int | float:
    x = to_number(value)
    sig = abs(to_number(significance)) if significance is not None else 1
    if sig == 0:
        return 0
    if x != x or sig != sig or math.inf in (abs(x), sig):
        return math.nan
    ds = _dec(sig)
    return _num_result((_dec(x) / ds).to_integral_value(rounding=mode) * ds)


@_register("CEILING", 1, 2)
def _ceiling(value: Any, significance: Any = None) -> int | float:
    return _to_multiple(value, significance, ROUND_CEILING)


@_register("FLOOR", 1, 2)
def _floor(value: Any, significance: Any = None) -> int | float:
    return _to_multiple(value, significance, ROUND_FLOOR)


@_register("EVEN", 1, 1)
def _even(value: Any) -> int:
    x = to_number(value)
    n = math.ceil(abs(x))
    n += n % 2
    return n if x >= 0 else -n


@_register("ODD", 1, 1)
def _odd(value: Any) -> int:
    x = to_number(value)
    n = math.ceil(abs(x))
    if n % 2 == 0:
        n += 1
    return n if x >= 0 else -n


@_register("MOD", 2, 2)
def _mod(a: Any, b: Any) -> int | float | FormulaValueError:
    x, y = to_number(a), to_number(b)
    if y == 0:
        return DIV0
    if isinstance(x, int) and isinstance(y, int):
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    return math.fmod(x, y)


@_register("POWER", 2, 2)
def _power(a: Any, b: Any) -> int | float | FormulaValueError:
    x, y = to_number(a), to_number(b)
    r = math.pow(float(x), float(y))
    if isinstance(x, int) and isinstance(y, int) and y >= 0 and abs(r) < 2**53:
        return int(r)
    return r


@_register("SQRT", 1, 1)
def _sqrt(a: Any) -> float | FormulaValueError:
    x = to_number(a)
    if x < 0:
        return NUM_ERROR
    r = math.sqrt(x)
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


@_register("EXP", 1, 1)
def _exp(a: Any) -> float:
    return math.exp(to_number(a))


@_register("LOG", 1, 2)
def _log(a: Any, base: Any = None) -> float | FormulaValueError:
    x = to_number(a)
    b = to_number(base) if base is not None else 10
    if x <= 0 or b <= 0 or b == 1:
        return NUM_ERROR
    return math.log(x, b)


def _numbers(args: tuple[Any, ...]) -> list[int | float]:
    out: list[int | float] = []
    for v in flatten(args):
        t = type(v)
        if t is int or t is float:
            out.append(v)
        elif t is bool:
            out.append(int(v))
        elif t is str:
            n = parse_number_text(v)
            if n is not None:
                out.append(n)
    return out


def _dates_only(args: tuple[Any, ...]) -> list[datetime] | None:
    items = [v for v in flatten(args) if v is not None and v != ""]
    if items and all(isinstance(v, datetime) for v in items):
        return items
    return None


@_register("SUM", 1, None)
def _sum(*args: Any) -> int | float:
    return sum(_numbers(args))


@_register("AVERAGE", 1, None)
def _average(*args: Any) -> float | FormulaValueError:
    nums = _numbers(args)
    if not nums:
        return DIV0
    return sum(nums) / len(nums)


@_register("MIN", 1, None)
def _min(*args: Any) -> Any:
    ds = _dates_only(args)
    if ds is not None:
        return min(ds, key=lambda d: d.timestamp())
    nums = _numbers(args)
    return min(nums) if nums else 0


@_register("MAX", 1, None)
def _max(*args: Any) -> Any:
    ds = _dates_only(args)
    if ds is not None:
        return max(ds, key=lambda d: d.timestamp())
    nums = _numbers(args)
    return max(nums) if nums else 0


@_register("COUNT", 1, None)
def _count(*args: Any) -> int:
    return sum(1 for v in flatten(args) if type(v) in (int, float))


@_register("COUNTA", 1, None)
def _counta(*args: Any) -> int:
    return sum(1 for v in flatten(args) if v is not None and v != "")


@_register("COUNTALL", 1, None)
def _countall(*args: Any) -> int:
    return sum(1 for _ in flatten(args))


# ---------------------------------------------------------------- record / time


@_register("RECORD_ID", 0, 0, "ctx")
def _record_id(ctx: Any) -> str:
    if ctx is None:
        raise NeedsContext
    return ctx.record_id


@_register("CREATED_TIME", 0, 0, "ctx")
def _created_time(ctx: Any) -> datetime:
    if ctx is None:
        raise NeedsContext
    return ctx.created_time


@_register("NOW", 0, 0, "ctx")
def _now(ctx: Any) -> datetime:
    if ctx is None:
        raise NeedsContext
    return ctx.now


@_register("TODAY", 0, 0, "ctx")
def _today(ctx: Any) -> datetime:
    if ctx is None:
        raise NeedsContext
    n = ctx.now.astimezone(UTC)
    return datetime(n.year, n.month, n.day, tzinfo=UTC)


def _days_from_now(ctx: Any, d: Any) -> int:
    if ctx is None:
        raise NeedsContext
    # whole days between now and the date, either direction (see the package docstring: ❓)
    return abs(dates.date_diff(ctx.now, _date(d), "days"))


@_register("TONOW", 1, 1, "ctx")
def _tonow(ctx: Any, d: Any) -> int:
    return _days_from_now(ctx, d)


@_register("FROMNOW", 1, 1, "ctx")
def _fromnow(ctx: Any, d: Any) -> int:
    return _days_from_now(ctx, d)


@_register("IS_AFTER", 2, 2)
def _is_after(a: Any, b: Any) -> bool:
    d1, d2 = to_datetime(a), to_datetime(b)
    if d1 is None or d2 is None:
        return False
    return d1.timestamp() > d2.timestamp()


@_register("IS_BEFORE", 2, 2)
def _is_before(a: Any, b: Any) -> bool:
    d1, d2 = to_datetime(a), to_datetime(b)
    if d1 is None or d2 is None:
        return False
    return d1.timestamp() < d2.timestamp()


@_register("IS_SAME", 2, 3)
def _is_same(a: Any, b: Any, unit: Any = None) -> bool:
    d1, d2 = to_datetime(a), to_datetime(b)
    if d1 is None or d2 is None:
        return False
    return dates.is_same(d1, d2, _opt_text(unit))


@_register("DATEADD", 3, 3)
def _dateadd(d: Any, count: Any, unit: Any) -> datetime:
    return dates.date_add(_date(d), to_number(count), to_text(unit))


@_register("DATETIME_DIFF", 2, 3)
def _datetime_diff(a: Any, b: Any, unit: Any = None) -> int:
    return dates.date_diff(_date(a), _date(b), _opt_text(unit) or None)


@_register("DATETIME_PARSE", 1, 3, "ctx")
def _datetime_parse(ctx: Any, text: Any, fmt: Any = None, _locale: Any = None) -> datetime:
    if isinstance(text, datetime):
        return text
    s = to_text(text)
    f = _opt_text(fmt)
    if not f:
        d = parse_datetime_text(s)
        if d is None:
            raise CoercionError(f"cannot parse date {s!r}")
        return d
    if ctx is None and not re.search(r"Y|X|x|L|l|g|G", f):
        raise NeedsContext  # default year comes from NOW
    year = ctx.now.year if ctx is not None else 1970
    return dates.parse_with_format(s, f, year)


@_register("DATETIME_FORMAT", 1, 3)
def _datetime_format(d: Any, fmt: Any = None, _locale: Any = None) -> str:
    dt = _date(d)
    f = _opt_text(fmt)
    if not f:
        return dates.format_default(dt)
    return dates.format_moment(dt, f)


@_register("SET_TIMEZONE", 2, 2)
def _set_timezone(d: Any, tz: Any) -> datetime:
    return _date(d).astimezone(dates.get_zone(to_text(tz)))


@_register("SET_LOCALE", 2, 2)
def _set_locale(d: Any, _locale: Any) -> datetime:
    return _date(d)


@_register("DATESTR", 1, 1)
def _datestr(d: Any) -> str:
    return dates.format_moment(_date(d), "YYYY-MM-DD")


@_register("TIMESTR", 1, 1)
def _timestr(d: Any) -> str:
    return dates.format_moment(_date(d), "HH:mm:ss")


@_register("YEAR", 1, 1)
def _year(d: Any) -> int:
    return _date(d).year


@_register("MONTH", 1, 1)
def _month(d: Any) -> int:
    return _date(d).month


@_register("DAY", 1, 1)
def _day(d: Any) -> int:
    return _date(d).day


@_register("HOUR", 1, 1)
def _hour(d: Any) -> int:
    return _date(d).hour


@_register("MINUTE", 1, 1)
def _minute(d: Any) -> int:
    return _date(d).minute


@_register("SECOND", 1, 1)
def _second(d: Any) -> int:
    return _date(d).second


@_register("WEEKDAY", 1, 2)
def _weekday(d: Any, start: Any = None) -> int:
    wd = (_date(d).weekday() + 1) % 7
    if start is not None and to_text(start).strip().lower().startswith("mon"):
        return (wd + 6) % 7
    return wd


@_register("WEEKNUM", 1, 2)
def _weeknum(d: Any, start: Any = None) -> int:
    return dates.weeknum(_date(d), to_text(start) if start is not None else "Sunday")


def _holidays(value: Any) -> set[Any]:
    out: set[Any] = set()
    if value is None:
        return out
    items = list(flatten(_as_list(value)))
    for item in items:
        if isinstance(item, datetime):
            out.add(item.astimezone(UTC).date())
            continue
        for part in to_text(item).split(","):
            if part.strip():
                d = parse_datetime_text(part)
                if d is None:
                    raise CoercionError(f"bad holiday {part!r}")
                out.add(d.date())
    return out


@_register("WORKDAY", 2, 3)
def _workday(start: Any, count: Any, holidays: Any = None) -> datetime:
    d = _date(start)
    n = _int(count)
    if abs(n) > 100_000:
        raise CoercionError("too many days")
    hol = _holidays(holidays)
    step = 1 if n >= 0 else -1
    remaining = abs(n)
    while remaining:
        d = d + timedelta(days=step)
        if d.weekday() < 5 and d.date() not in hol:
            remaining -= 1
    return d


@_register("WORKDAY_DIFF", 2, 3)
def _workday_diff(start: Any, end: Any, holidays: Any = None) -> int:
    a, b = _date(start).date(), _date(end).date()
    sign = 1
    if b < a:
        a, b, sign = b, a, -1
    if (b - a).days > 1_000_000:
        raise CoercionError("range too large")
    hol = _holidays(holidays)
    full_weeks, extra = divmod((b - a).days + 1, 7)
    count = full_weeks * 5
    for i in range(extra):
        if (a + timedelta(days=full_weeks * 7 + i)).weekday() < 5:
            count += 1
    count -= sum(1 for h in hol if a <= h <= b and h.weekday() < 5)
    return sign * count


# ---------------------------------------------------------------- regex


# Airtable runs RE2, which never backtracks; Python's `re` does, and `(a+)+$` over 36 a's and a "!"
# takes hours: one filterByFormula would hang the sandbox. The `regex` engine (re-compatible) stops at
# a timeout; a pattern that timed out once is an error from then on, so a table of such records costs
# one timeout, not one per record.
REGEX_TIMEOUT_S = 0.2
_SLOW_PATTERNS: set[str] = set()


class _Timed:
    """A compiled pattern whose search and sub give up after REGEX_TIMEOUT_S (TimeoutError)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.rx = _regex_engine.compile(pattern)
        self.groups: int = self.rx.groups

    def _guarded(self, call: Callable[[], Any]) -> Any:
        if self.pattern in _SLOW_PATTERNS:
            raise TimeoutError("regex gave up before")
        try:
            return call()
        except TimeoutError:
            _SLOW_PATTERNS.add(self.pattern)
            raise

    def search(self, s: str) -> Any:
        return self._guarded(lambda: self.rx.search(s, timeout=REGEX_TIMEOUT_S))

    def sub(self, repl: Callable[[Any], str], s: str) -> str:
        out: str = self._guarded(lambda: self.rx.sub(repl, s, timeout=REGEX_TIMEOUT_S))
        return out


@lru_cache(maxsize=256)
def _regex(pattern: str) -> _Timed:
    return _Timed(pattern)


@_register("REGEX_MATCH", 2, 2)
def _regex_match(s: Any, pattern: Any) -> bool:
    return _regex(to_text(pattern)).search(to_text(s)) is not None


@_register("REGEX_EXTRACT", 2, 2)
def _regex_extract(s: Any, pattern: Any) -> str | FormulaValueError:
    m = _regex(to_text(pattern)).search(to_text(s))
    if m is None:
        return ERROR
    return m.group(0)


_REPL_RE = re.compile(r"\$(\d+|\$)|\\(\d)")


@_register("REGEX_REPLACE", 3, 3)
def _regex_replace(s: Any, pattern: Any, replacement: Any) -> str:
    rx = _regex(to_text(pattern))
    rep = to_text(replacement)

    def expand(m: Any) -> str:
        def group(g: re.Match[str]) -> str:
            if g.group(1) == "$":
                return "$"
            idx = int(g.group(1) or g.group(2))
            return (m.group(idx) or "") if idx <= (rx.groups or 0) else g.group(0)

        return _REPL_RE.sub(group, rep)

    return _guard(rx.sub(expand, to_text(s)))


# ---------------------------------------------------------------- misc helpers exported


def switch_match(value: Any, pattern: Any) -> bool:
    return values_equal(value, pattern)


__all__ = ["FUNCTIONS", "FunctionSpec", "NeedsContext", "format_iso", "switch_match"]
