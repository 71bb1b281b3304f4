"""``cellFormat=string``: cell values as text, by the field's format, ``userLocale`` and ``timeZone``.

Airtable documents that ``string`` needs ``timeZone`` and ``userLocale`` and that "the output format
is not stable" (shared/reference/airtable-api.md §2), so the rendering below follows what its UI shows
for each field format; choices without a documented source are marked ❓.

=========================  ===================================================================
Field                      Text
=========================  ===================================================================
date ✅                    the field's ``dateFormat``: ``local`` (moment ``l``) and ``friendly``
                           (``LL``) follow ``userLocale`` (table below), ``us`` M/D/YYYY,
                           ``european`` D/M/YYYY, ``iso`` YYYY-MM-DD. ❓ month names are English.
dateTime ✅/❓             date as above, a space, the ``timeFormat`` (``12hour`` h:mma → "2:05pm",
                           ``24hour`` HH:mm). Zone ❓: the field's ``timeZone`` when it names one
                           ("utc" included), the request's ``timeZone`` when it is ``client`` or
                           absent. createdTime/lastModifiedTime/formula use their ``result`` options.
number/currency/percent ❓ exactly ``precision`` decimals (default 0; currency 2), the locale's
                           decimal mark and thousands grouping; currency puts ``symbol`` first
                           ("-$1,234.50"); percent is the stored fraction × 100 and "%".
duration ✅                ``durationFormat`` h:mm, h:mm:ss, h:mm:ss.S/.SS/.SSS; Airtable: "fractional
                           values round up to the next closest value" (0.5 s as h:mm is 0:01); with
                           seconds and no hours the hours are left out ("3:45"). Negative: "-" first.
rating ❓                  the number. checkbox: "checked" (unchecked cells are absent).
attachments, lists         "name (url)" / items joined with ", "; links show the primary field.
=========================  ===================================================================

Locales ❓: the language before "-" picks the decimal mark and grouping (en, ja, zh, ko, he, th:
"1,234.5"; de, pt, es, it, nl, id, tr, da: "1.234,5"; fr, ru, sv, nb, fi, pl, cs, uk: "1 234,5" with
a narrow no-break space); the whole tag, else the language, picks ``local``/``friendly`` dates.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .formula.dates import format_moment
from .schema import FieldDef

# moment's `l` and `LL` per locale (moment's locale files); unknown locales use English.
_LOCAL = {
    "en": "M/D/YYYY",
    "en-us": "M/D/YYYY",
    "en-gb": "D/M/YYYY",
    "en-ie": "D/M/YYYY",
    "en-au": "D/M/YYYY",
    "en-nz": "D/M/YYYY",
    "en-ca": "YYYY-M-D",
    "pt": "D/M/YYYY",
    "pt-br": "D/M/YYYY",
    "es": "D/M/YYYY",
    "fr": "D/M/YYYY",
    "it": "D/M/YYYY",
    "de": "D.M.YYYY",
    "nl": "D-M-YYYY",
    "ja": "YYYY/M/D",
    "zh": "YYYY/M/D",
}
_FRIENDLY = {
    "en": "MMMM D, YYYY",
    "en-us": "MMMM D, YYYY",
    "en-gb": "D MMMM YYYY",
    "en-ie": "D MMMM YYYY",
    "en-au": "D MMMM YYYY",
    "en-nz": "D MMMM YYYY",
    "pt": "D [de] MMMM [de] YYYY",
    "pt-br": "D [de] MMMM [de] YYYY",
    "es": "D [de] MMMM [de] YYYY",
    "fr": "D MMMM YYYY",
    "it": "D MMMM YYYY",
    "de": "D. MMMM YYYY",
    "nl": "D MMMM YYYY",
}
_FIXED_DATE = {"us": "M/D/YYYY", "european": "D/M/YYYY", "iso": "YYYY-MM-DD"}
_TIME = {"12hour": "h:mma", "24hour": "HH:mm"}

_COMMA_DECIMAL = {"de", "pt", "es", "it", "nl", "id", "tr", "da"}
_SPACE_GROUP = {"fr", "ru", "sv", "nb", "fi", "pl", "cs", "uk"}
NARROW_NBSP = "\u202f"


def _locale(user_locale: str | None) -> tuple[str, str]:
    tag = (user_locale or "en").strip().lower().replace("_", "-")
    return tag, tag.split("-", 1)[0]


def separators(user_locale: str | None) -> tuple[str, str]:
    """(decimal mark, thousands separator) for a locale."""
    _, lang = _locale(user_locale)
    if lang in _COMMA_DECIMAL:
        return ",", "."
    if lang in _SPACE_GROUP:
        return ",", NARROW_NBSP
    return ".", ","


def _per_locale(table: dict[str, str], user_locale: str | None) -> str:
    tag, lang = _locale(user_locale)
    return table.get(tag) or table.get(lang) or table["en"]


def date_pattern(date_format: dict[str, Any] | None, user_locale: str | None) -> str:
    name = (date_format or {}).get("name", "iso")
    if name == "local":
        return _per_locale(_LOCAL, user_locale)
    if name == "friendly":
        return _per_locale(_FRIENDLY, user_locale)
    return _FIXED_DATE.get(name) or str((date_format or {}).get("format") or "YYYY-MM-DD")


def time_pattern(time_format: dict[str, Any] | None) -> str:
    name = (time_format or {}).get("name", "24hour")
    return _TIME.get(name) or str((time_format or {}).get("format") or "HH:mm")


def number_text(value: float | int, precision: int, user_locale: str | None, *, group: bool = True) -> str:
    """``value`` with exactly ``precision`` decimals (half up, decimal-exact), the locale's marks."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    p = max(0, min(int(precision), 8))
    d = (Decimal(repr(value)) if isinstance(value, float) else Decimal(value)).quantize(
        Decimal(1).scaleb(-p), rounding=ROUND_HALF_UP
    )
    sign = "-" if d < 0 else ""
    whole, _, frac = f"{abs(d):f}".partition(".")
    dec_mark, sep = separators(user_locale)
    if group:
        whole = f"{int(whole):,}".replace(",", sep)
    return sign + whole + (dec_mark + frac if p else "")


def duration_text(seconds: float | int, duration_format: str | None) -> str:
    fmt = duration_format or "h:mm"
    digits = len(fmt.split(".", 1)[1]) if "." in fmt else 0
    with_seconds = fmt.startswith("h:mm:ss")
    unit = Decimal(1).scaleb(-digits) if with_seconds else Decimal(60)
    d = Decimal(repr(seconds)) if isinstance(seconds, float) else Decimal(seconds)
    sign = "-" if d < 0 else ""
    # round the magnitude up to the format's last unit (Airtable: "fractional values round up")
    steps = (abs(d) / unit).to_integral_value(rounding=ROUND_CEILING)
    total = steps * unit
    if not with_seconds:
        minutes = int(total / 60)
        return f"{sign}{minutes // 60}:{minutes % 60:02d}"
    whole = int(total)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = ""
    if digits:
        frac = "." + f"{total - whole:.{digits}f}".split(".", 1)[1]
    if h:
        return f"{sign}{h}:{m:02d}:{s:02d}{frac}"
    return f"{sign}{m}:{s:02d}{frac}"


def _instant(text: str) -> datetime:
    """A stored instant ("2024-03-05T01:30:00.000Z"); naive text is UTC. (Not fields.parse_instant:
    fields.py imports this module.)"""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _zone(option: Any, request_zone: ZoneInfo) -> ZoneInfo | Any:
    if option in (None, "", "client"):
        return request_zone
    if option == "utc":
        return UTC
    try:
        return ZoneInfo(str(option))
    except (KeyError, ValueError):
        return request_zone


def _result(field: FieldDef) -> tuple[str, dict[str, Any]]:
    """The type and options that decide the format (computed fields: their ``result``)."""
    opts = field.options or {}
    result = opts.get("result")
    if isinstance(result, dict) and result.get("type"):
        return str(result["type"]), dict(result.get("options") or {})
    return field.type, dict(opts)


def render(field: FieldDef, value: Any, tz: ZoneInfo, user_locale: str | None) -> str | None:
    """The text of one cell value (its JSON form) for ``cellFormat=string``; None leaves it out."""
    if value is None:
        return None
    kind, opts = _result(field)
    if kind == "checkbox":
        return "checked" if value else None
    if kind in ("dateTime", "createdTime", "lastModifiedTime") and isinstance(value, str):
        dt = _instant(value).astimezone(_zone(opts.get("timeZone"), tz))
        pattern = date_pattern(opts.get("dateFormat"), user_locale) + " " + time_pattern(opts.get("timeFormat"))
        return format_moment(dt, pattern)
    if kind == "date" and isinstance(value, str):
        if len(value) > 10:  # a formula/rollup giving a date: an instant
            d = _instant(value).astimezone(_zone(opts.get("timeZone"), tz))
        else:
            d = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        return format_moment(d, date_pattern(opts.get("dateFormat"), user_locale))
    if field.type == "multipleAttachments" and isinstance(value, list):
        return ", ".join(f"{a.get('filename', '')} ({a.get('url', '')})" for a in value)
    if isinstance(value, list):
        return ", ".join(
            x for x in (render_scalar(kind, opts, v, user_locale) for v in value) if x is not None and x != ""
        )
    return render_scalar(kind, opts, value, user_locale)


def render_scalar(kind: str, opts: dict[str, Any], value: Any, user_locale: str | None) -> str | None:
    if isinstance(value, bool):
        return "checked" if value else None
    if isinstance(value, (int, float)):
        if kind == "currency":
            text = number_text(value, int(opts.get("precision", 2)), user_locale)
            symbol = str(opts.get("symbol", "$"))
            return "-" + symbol + text[1:] if text.startswith("-") else symbol + text
        if kind == "percent":
            return number_text(value * 100, int(opts.get("precision", 0)), user_locale) + "%"
        if kind == "duration":
            return duration_text(value, opts.get("durationFormat"))
        if kind in ("number", "formula", "rollup") and "precision" in opts:
            return number_text(value, int(opts["precision"]), user_locale)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, dict):  # barcode {text}, button {label}, collaborator {name/email}, errors
        for key in ("text", "label", "name", "email", "error", "specialValue"):
            if isinstance(value.get(key), str):
                return str(value[key])
        return None
    return str(value)
