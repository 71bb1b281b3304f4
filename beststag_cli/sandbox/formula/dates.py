"""Date helpers modelled on moment.js (which Airtable's formula engine uses): units, add, diff,
start-of-unit, and format/parse with moment tokens (English locale only)."""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from .values import CoercionError

# ---------------------------------------------------------------- units

_LONG_UNITS = ("millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year")
_SHORT_UNITS = {
    "ms": "millisecond",
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "D": "day",
    "w": "week",
    "M": "month",
    "Q": "quarter",
    "y": "year",
}
_UNIT_MS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
}


@lru_cache(maxsize=256)
def normalize_unit(unit: str) -> str | None:
    """'days', 'Day', 'd' → 'day'. Short aliases are case-sensitive (``M`` months, ``m`` minutes)."""
    if unit in _SHORT_UNITS:
        return _SHORT_UNITS[unit]
    u = unit.strip()
    if u in _SHORT_UNITS:
        return _SHORT_UNITS[u]
    u = u.lower()
    if u in _LONG_UNITS:
        return u
    if u.endswith("s") and u[:-1] in _LONG_UNITS:
        return u[:-1]
    if u in ("msec", "msecs"):
        return "millisecond"
    return None


def _js_round(x: float) -> int:
    return math.floor(x + 0.5)


def add_months(d: datetime, months: int) -> datetime:
    y, m0 = divmod(d.year * 12 + (d.month - 1) + months, 12)
    day = min(d.day, calendar.monthrange(y, m0 + 1)[1])
    return d.replace(year=y, month=m0 + 1, day=day)


def _add_absolute(d: datetime, ms: float) -> datetime:
    tz = d.tzinfo
    u = d.astimezone(UTC) + timedelta(milliseconds=ms)
    return u.astimezone(tz) if tz is not UTC else u


def _fix_wall(d: datetime) -> datetime:
    """Normalise a wall-clock result in a zoneinfo zone (gaps/folds) through UTC."""
    if d.tzinfo is UTC or d.tzinfo is None:
        return d
    return d.astimezone(UTC).astimezone(d.tzinfo)


def date_add(d: datetime, count: float, unit: str) -> datetime:
    u = normalize_unit(unit)
    if u is None:
        raise CoercionError(f"unknown unit {unit!r}")
    if u in ("millisecond", "second", "minute", "hour"):
        return _add_absolute(d, count * _UNIT_MS[u])
    if u == "day":
        return _fix_wall(d + timedelta(days=_js_round(count)))
    if u == "week":
        return _fix_wall(d + timedelta(days=7 * _js_round(count)))
    if u == "month":
        return _fix_wall(add_months(d, _js_round(count)))
    if u == "quarter":
        return _fix_wall(add_months(d, 3 * _js_round(count)))
    return _fix_wall(add_months(d, 12 * _js_round(count)))


def _ms(td: timedelta) -> float:
    return (td.days * 86_400 + td.seconds) * 1000 + td.microseconds / 1000


def _month_diff(a: datetime, b: datetime) -> float:
    """moment's monthDiff(a, b): months from a to b (negated), fractional."""
    if a.day < b.day:
        return -_month_diff(b, a)
    whole = (b.year - a.year) * 12 + (b.month - a.month)
    anchor = add_months(a, whole)
    if _ms(b - anchor) < 0:
        anchor2 = add_months(a, whole - 1)
        adjust = _ms(b - anchor) / _ms(anchor - anchor2)
    else:
        anchor2 = add_months(a, whole + 1)
        adjust = _ms(b - anchor) / _ms(anchor2 - anchor)
    return -(whole + adjust) or 0.0


def _trunc(x: float) -> int:
    return math.trunc(x) if x == x and x not in (math.inf, -math.inf) else 0


def date_diff(d1: datetime, d2: datetime, unit: str | None) -> int:
    """d1 − d2 in ``unit`` truncated toward zero (moment ``diff``). No unit → seconds;
    unrecognised unit → milliseconds (as Airtable documents)."""
    u = "second" if unit is None else (normalize_unit(unit) or "millisecond")
    that = d2.astimezone(d1.tzinfo) if d1.tzinfo is not None else d2
    if u in ("month", "quarter", "year"):
        months = _month_diff(d1, that)
        if u == "quarter":
            months /= 3
        elif u == "year":
            months /= 12
        return _trunc(months)
    delta = _ms(d1 - that)
    if u in ("day", "week"):
        off1 = d1.utcoffset() or timedelta(0)
        off2 = that.utcoffset() or timedelta(0)
        delta -= _ms(off2 - off1)
    return _trunc(delta / _UNIT_MS[u])


def start_of(d: datetime, unit: str) -> datetime:
    u = normalize_unit(unit)
    if u is None:
        raise CoercionError(f"unknown unit {unit!r}")
    if u == "millisecond":
        return d.replace(microsecond=d.microsecond // 1000 * 1000)
    if u == "second":
        return d.replace(microsecond=0)
    if u == "minute":
        return d.replace(second=0, microsecond=0)
    if u == "hour":
        return d.replace(minute=0, second=0, microsecond=0)
    day = d.replace(hour=0, minute=0, second=0, microsecond=0)
    if u == "day":
        return day
    if u == "week":  # en locale: weeks start on Sunday
        return day - timedelta(days=(day.weekday() + 1) % 7)
    if u == "month":
        return day.replace(day=1)
    if u == "quarter":
        return day.replace(day=1, month=(d.month - 1) // 3 * 3 + 1)
    return day.replace(day=1, month=1)


def is_same(d1: datetime, d2: datetime, unit: str | None) -> bool:
    if unit is None or unit == "":
        return d1.timestamp() == d2.timestamp()
    other = d2.astimezone(d1.tzinfo)
    return start_of(d1, unit) == start_of(other, unit)


@lru_cache(maxsize=64)
def get_zone(name: str) -> tzinfo:
    n = name.strip()
    if n.upper() in ("UTC", "GMT", "Z", "ETC/UTC", "ETC/GMT"):
        return UTC
    return ZoneInfo(n)


# ---------------------------------------------------------------- weeks


def _weekday_sun0(d: datetime) -> int:
    return (d.weekday() + 1) % 7


def _first_week_offset(year: int, dow: int, doy: int) -> int:
    fwd = 7 + dow - doy
    fwdlw = (7 + (datetime(year, 1, fwd).weekday() + 1) % 7 - dow) % 7
    return -fwdlw + fwd - 1


def _weeks_in_year(year: int, dow: int, doy: int) -> int:
    days = 366 if calendar.isleap(year) else 365
    return (days - _first_week_offset(year, dow, doy) + _first_week_offset(year + 1, dow, doy)) // 7


def week_of_year(d: datetime, dow: int = 0, doy: int = 6) -> tuple[int, int]:
    """moment's locale week (en: dow=0 Sunday, doy=6). Returns (week, week-year)."""
    offset = _first_week_offset(d.year, dow, doy)
    week = (d.timetuple().tm_yday - offset - 1) // 7 + 1
    if week < 1:
        return week + _weeks_in_year(d.year - 1, dow, doy), d.year - 1
    wiy = _weeks_in_year(d.year, dow, doy)
    if week > wiy:
        return week - wiy, d.year + 1
    return week, d.year


def weeknum(d: datetime, start: str = "Sunday") -> int:
    """Excel/Airtable WEEKNUM: the week containing January 1st is week 1."""
    start_dow = 1 if start.strip().lower().startswith("mon") else 0
    jan1 = d.replace(month=1, day=1)
    offset = (_weekday_sun0(jan1) - start_dow) % 7
    return (d.timetuple().tm_yday - 1 + offset) // 7 + 1


# ---------------------------------------------------------------- format

_MONTHS = [calendar.month_name[i] for i in range(1, 13)]
_MONTHS_SHORT = [calendar.month_abbr[i] for i in range(1, 13)]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_LOCALIZED = {
    "LTS": "h:mm:ss A",
    "LT": "h:mm A",
    "L": "MM/DD/YYYY",
    "LL": "MMMM D, YYYY",
    "LLL": "MMMM D, YYYY h:mm A",
    "LLLL": "dddd, MMMM D, YYYY h:mm A",
    "l": "M/D/YYYY",
    "ll": "MMM D, YYYY",
    "lll": "MMM D, YYYY h:mm A",
    "llll": "ddd, MMM D, YYYY h:mm A",
}
_TOKEN_RE = re.compile(
    r"\[[^\]]*\]|LTS|LT|LLLL|LLL|LL|L|llll|lll|ll|l"
    r"|Mo|MMMM|MMM|MM|M|Qo|Q|DDDo|DDDD|DDD|Do|DD|D|dddd|ddd|dd|do|d|E|e|wo|ww|w|Wo|WW|W"
    r"|YYYYYY|YYYY|YY|Y|gggg|gg|GGGG|GG|A|a|HH|H|hh|h|kk|k|mm|m|ss|s|S{1,9}|X|x|ZZ|Z|zz|z"
)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _offset(d: datetime, sep: str) -> str:
    off = d.utcoffset() or timedelta(0)
    total = int(off.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    hh, mm = divmod(abs(total), 60)
    return f"{sign}{hh:02d}{sep}{mm:02d}"


def _expand_localized(fmt: str) -> str:
    return re.sub(
        r"\[[^\]]*\]|LTS|LT|LLLL|LLL|LL|L|llll|lll|ll|l", lambda m: _LOCALIZED.get(m.group(0), m.group(0)), fmt
    )


def _format_token(d: datetime, tok: str) -> str:
    if tok[0] == "[":
        return tok[1:-1]
    if tok in _LOCALIZED:
        return format_moment(d, _LOCALIZED[tok])
    y = d.year
    if tok == "YYYY":
        return f"{y:04d}" if y >= 0 else f"-{abs(y):04d}"
    if tok == "YY":
        return f"{y % 100:02d}"
    if tok in ("Y", "YYYYYY"):
        return str(y) if tok == "Y" else f"{'+' if y >= 0 else '-'}{abs(y):06d}"
    if tok == "Q":
        return str((d.month - 1) // 3 + 1)
    if tok == "Qo":
        return ordinal((d.month - 1) // 3 + 1)
    if tok == "M":
        return str(d.month)
    if tok == "MM":
        return f"{d.month:02d}"
    if tok == "Mo":
        return ordinal(d.month)
    if tok == "MMM":
        return _MONTHS_SHORT[d.month - 1]
    if tok == "MMMM":
        return _MONTHS[d.month - 1]
    if tok == "D":
        return str(d.day)
    if tok == "DD":
        return f"{d.day:02d}"
    if tok == "Do":
        return ordinal(d.day)
    yday = d.timetuple().tm_yday
    if tok == "DDD":
        return str(yday)
    if tok == "DDDD":
        return f"{yday:03d}"
    if tok == "DDDo":
        return ordinal(yday)
    wd = _weekday_sun0(d)
    if tok in ("d", "e"):
        return str(wd)
    if tok == "do":
        return ordinal(wd)
    if tok == "dd":
        return _DAYS[wd][:2]
    if tok == "ddd":
        return _DAYS[wd][:3]
    if tok == "dddd":
        return _DAYS[wd]
    if tok == "E":
        return str(d.isoweekday())
    if tok in ("w", "ww", "wo", "gg", "gggg"):
        week, wy = week_of_year(d)
        if tok == "w":
            return str(week)
        if tok == "ww":
            return f"{week:02d}"
        if tok == "wo":
            return ordinal(week)
        return f"{wy % 100:02d}" if tok == "gg" else f"{wy:04d}"
    if tok in ("W", "WW", "Wo", "GG", "GGGG"):
        iy, iw, _ = d.isocalendar()
        if tok == "W":
            return str(iw)
        if tok == "WW":
            return f"{iw:02d}"
        if tok == "Wo":
            return ordinal(iw)
        return f"{iy % 100:02d}" if tok == "GG" else f"{iy:04d}"
    if tok == "H":
        return str(d.hour)
    if tok == "HH":
        return f"{d.hour:02d}"
    h12 = d.hour % 12 or 12
    if tok == "h":
        return str(h12)
    if tok == "hh":
        return f"{h12:02d}"
    if tok == "k":
        return str(d.hour or 24)
    if tok == "kk":
        return f"{d.hour or 24:02d}"
    if tok == "A":
        return "AM" if d.hour < 12 else "PM"
    if tok == "a":
        return "am" if d.hour < 12 else "pm"
    if tok == "m":
        return str(d.minute)
    if tok == "mm":
        return f"{d.minute:02d}"
    if tok == "s":
        return str(d.second)
    if tok == "ss":
        return f"{d.second:02d}"
    if tok[0] == "S":
        return f"{d.microsecond:06d}000"[: len(tok)]
    if tok == "X":
        return str(math.floor(d.timestamp()))
    if tok == "x":
        return str(math.floor(d.timestamp() * 1000))
    if tok == "Z":
        return _offset(d, ":")
    if tok == "ZZ":
        return _offset(d, "")
    if tok in ("z", "zz"):
        return d.tzname() or "UTC"
    return tok


@lru_cache(maxsize=256)
def _tokenize(fmt: str) -> tuple[tuple[bool, str], ...]:
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _TOKEN_RE.finditer(fmt):
        if m.start() > pos:
            out.append((False, fmt[pos : m.start()]))
        out.append((True, m.group(0)))
        pos = m.end()
    if pos < len(fmt):
        out.append((False, fmt[pos:]))
    return tuple(out)


def format_moment(d: datetime, fmt: str) -> str:
    return "".join(_format_token(d, text) if is_tok else text for is_tok, text in _tokenize(fmt))


def format_default(d: datetime) -> str:
    """DATETIME_FORMAT without a format: ISO 8601 with milliseconds; ``Z`` in UTC, else the offset."""
    off = d.utcoffset()
    if not off:
        return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return format_moment(d, "YYYY-MM-DDTHH:mm:ss.SSSZ")


# ---------------------------------------------------------------- parse with a format

_MONTH_LOOKUP = {name.lower(): i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_LOOKUP.update({name.lower(): i + 1 for i, name in enumerate(_MONTHS_SHORT)})
_MONTH_ALT = "|".join(sorted(_MONTH_LOOKUP, key=len, reverse=True))
_DAY_ALT = "|".join(
    sorted(
        {*(x.lower() for x in _DAYS), *(x[:3].lower() for x in _DAYS), *(x[:2].lower() for x in _DAYS)},
        key=len,
        reverse=True,
    )
)
_PARSE_TOKENS: dict[str, tuple[str, str | None]] = {
    "YYYYYY": (r"[+-]?\d{4,6}", "year"),
    "YYYY": (r"\d{4}", "year"),
    "Y": (r"[+-]?\d+", "year"),
    "YY": (r"\d{2}", "year2"),
    "Q": (r"[1-4]", "quarter"),
    "M": (r"\d{1,2}", "month"),
    "MM": (r"\d{1,2}", "month"),
    "Mo": (r"\d{1,2}(?:st|nd|rd|th)", "month"),
    "MMM": (_MONTH_ALT, "monthname"),
    "MMMM": (_MONTH_ALT, "monthname"),
    "D": (r"\d{1,2}", "day"),
    "DD": (r"\d{1,2}", "day"),
    "Do": (r"\d{1,2}(?:st|nd|rd|th)", "day"),
    "DDD": (r"\d{1,3}", "yday"),
    "DDDD": (r"\d{3}", "yday"),
    "d": (r"[0-6]", None),
    "e": (r"[0-6]", None),
    "E": (r"[1-7]", None),
    "dd": (_DAY_ALT, None),
    "ddd": (_DAY_ALT, None),
    "dddd": (_DAY_ALT, None),
    "H": (r"\d{1,2}", "hour"),
    "HH": (r"\d{1,2}", "hour"),
    "h": (r"\d{1,2}", "hour12"),
    "hh": (r"\d{1,2}", "hour12"),
    "k": (r"\d{1,2}", "hour"),
    "kk": (r"\d{1,2}", "hour"),
    "A": (r"[ap]\.?m?\.?", "ampm"),
    "a": (r"[ap]\.?m?\.?", "ampm"),
    "m": (r"\d{1,2}", "minute"),
    "mm": (r"\d{1,2}", "minute"),
    "s": (r"\d{1,2}", "second"),
    "ss": (r"\d{1,2}", "second"),
    "X": (r"-?\d+(?:\.\d+)?", "unix"),
    "x": (r"-?\d+", "unixms"),
    "Z": (r"Z|[+-]\d{2}:?\d{2}", "offset"),
    "ZZ": (r"Z|[+-]\d{2}:?\d{2}", "offset"),
}


@lru_cache(maxsize=256)
def _compile_parse_format(fmt: str) -> tuple[re.Pattern[str], tuple[str | None, ...]]:
    fmt = _expand_localized(fmt)
    parts: list[str] = []
    kinds: list[str | None] = []
    for is_tok, text in _tokenize(fmt):
        if not is_tok:
            for ch in text:
                if ch.isspace():
                    parts.append(r"\s*")
                else:
                    parts.append(re.escape(ch) if ch.isalnum() else r"[^0-9A-Za-z]?")
            continue
        if text[0] == "[":
            parts.append(re.escape(text[1:-1]))
            continue
        if text[0] == "S":
            parts.append(r"(\d+)")
            kinds.append("fraction")
            continue
        pattern, kind = _PARSE_TOKENS.get(text, (re.escape(text), None))
        parts.append(f"({pattern})")
        kinds.append(kind)
    return re.compile(r"\s*" + "".join(parts), re.IGNORECASE), tuple(kinds)


def parse_with_format(text: str, fmt: str, default_year: int) -> datetime:
    """moment-style (non-strict) parse of ``text`` with ``fmt``; the result is UTC unless the
    text carries an offset. A format without a year uses ``default_year`` (the current year)."""
    rx, kinds = _compile_parse_format(fmt)
    m = rx.match(text)
    if m is None:
        raise CoercionError(f"{text!r} does not match format {fmt!r}")
    f: dict[str, int] = {}
    offset_min: int | None = None
    ampm: str | None = None
    for kind, raw in zip(kinds, m.groups(), strict=True):
        if kind is None or raw is None:
            continue
        if kind == "year2":
            v = int(raw)
            f["year"] = v + (2000 if v < 69 else 1900)
        elif kind == "monthname":
            f["month"] = _MONTH_LOOKUP[raw.lower()]
        elif kind in ("month", "day"):
            f[kind] = int(re.sub(r"\D", "", raw))
        elif kind == "quarter":
            f["month"] = (int(raw) - 1) * 3 + 1
        elif kind == "fraction":
            f["microsecond"] = int(raw[:6].ljust(6, "0"))
        elif kind == "ampm":
            ampm = raw[0].lower()
        elif kind == "unix":
            return datetime.fromtimestamp(float(raw), UTC)
        elif kind == "unixms":
            return datetime.fromtimestamp(int(raw) / 1000, UTC)
        elif kind == "offset":
            if raw.upper() == "Z":
                offset_min = 0
            else:
                digits = raw[1:].replace(":", "")
                offset_min = (int(digits[:2]) * 60 + int(digits[2:])) * (1 if raw[0] == "+" else -1)
        else:
            f[kind] = int(raw)
    hour = f.get("hour", f.get("hour12", 0))
    if "hour12" in f or ampm:
        if ampm == "p" and hour < 12:
            hour += 12
        elif ampm == "a" and hour == 12:
            hour = 0
    year = f.get("year", default_year)
    if "yday" in f:
        base = datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=f["yday"] - 1)
        month, day = base.month, base.day
    else:
        month, day = f.get("month", 1), f.get("day", 1)
    dt = datetime(year, month, day, hour, f.get("minute", 0), f.get("second", 0), f.get("microsecond", 0), tzinfo=UTC)
    if offset_min is not None:
        dt -= timedelta(minutes=offset_min)
    return dt
