"""cellFormat=string: dates by dateFormat/timeFormat and zone, numbers by precision and userLocale,
currency, percent and duration (sandbox/cellformat.py; its docstring says where each rule comes from)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox import SANDBOX_BASE_ID
from beststag_cli.sandbox.cellformat import NARROW_NBSP, duration_text, number_text, render, separators
from beststag_cli.sandbox.schema import FieldDef

BASE = SANDBOX_BASE_ID
SETTINGS = settings(max_examples=200, deadline=None)
LOCALES = st.sampled_from(["en-us", "en-gb", "pt-br", "de", "fr", "ja", "es-mx", "xx"])
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def field(type_: str, **options: Any) -> FieldDef:
    return FieldDef("fldXXXXXXXXXXXXXX", "f", type_, options or None, None)


def parse_number(text: str, locale: str) -> Decimal:
    dec_mark, sep = separators(locale)
    return Decimal(text.replace(sep, "").replace(dec_mark, "."))


@SETTINGS
@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), st.integers(0, 8), LOCALES)
def test_numbers_have_exactly_precision_decimals_and_read_back(x: float, precision: int, locale: str) -> None:
    text = number_text(x, precision, locale)
    dec_mark, sep = separators(locale)
    whole, _, frac = text.lstrip("-").partition(dec_mark)
    assert len(frac) == precision
    # groups of three digits after the first
    groups = whole.split(sep)
    assert all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3
    expected = Decimal(repr(x)).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_UP)
    assert parse_number(text, locale) == expected


@SETTINGS
@given(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.integers(0, 4),
    LOCALES,
    st.sampled_from(["$", "R$", "€"]),
)
def test_currency_is_symbol_then_amount(x: float, precision: int, locale: str, symbol: str) -> None:
    text = render(field("currency", precision=precision, symbol=symbol), x, UTC, locale)
    assert text is not None
    amount = number_text(x, precision, locale)
    assert text == (f"-{symbol}{amount[1:]}" if amount.startswith("-") else symbol + amount)


@SETTINGS
@given(st.floats(min_value=-100, max_value=100, allow_nan=False), st.integers(0, 3), LOCALES)
def test_percent_is_the_fraction_times_100(x: float, precision: int, locale: str) -> None:
    text = render(field("percent", precision=precision), x, UTC, locale)
    assert text is not None and text.endswith("%")
    expected = (Decimal(repr(x)) * 100).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_UP)
    assert abs(parse_number(text[:-1], locale) - expected) <= Decimal(1).scaleb(-precision)


def _duration_seconds(text: str, fmt: str) -> Decimal:
    sign = -1 if text.startswith("-") else 1
    parts = text.lstrip("-").split(":")
    if fmt == "h:mm":
        h, m = parts
        return sign * Decimal(int(h) * 3600 + int(m) * 60)
    if len(parts) == 2:
        parts = ["0", *parts]
    h, m, s = parts
    return sign * (Decimal(int(h) * 3600 + int(m) * 60) + Decimal(s))


@SETTINGS
@given(
    st.floats(min_value=-400000, max_value=400000, allow_nan=False),
    st.sampled_from(["h:mm", "h:mm:ss", "h:mm:ss.S", "h:mm:ss.SS", "h:mm:ss.SSS"]),
)
def test_durations_round_up_to_the_format_unit(seconds: float, fmt: str) -> None:
    text = duration_text(seconds, fmt)
    digits = len(fmt.split(".")[1]) if "." in fmt else 0
    unit = Decimal(60) if fmt == "h:mm" else Decimal(1).scaleb(-digits)
    shown = _duration_seconds(text, fmt)
    magnitude = abs(Decimal(repr(seconds)))
    # Airtable: "fractional values round up to the next closest value"
    assert abs(shown) - unit < magnitude <= abs(shown)
    assert re.fullmatch(
        r"-?\d+:\d\d" + (r"(:\d\d)?" if fmt != "h:mm" else "") + (rf"\.\d{{{digits}}}" if digits else ""), text
    )


@pytest.mark.parametrize(
    ("seconds", "fmt", "text"),
    [
        (0.5, "h:mm", "0:01"),  # Airtable's own example
        (5025, "h:mm", "1:24"),
        (225, "h:mm:ss", "3:45"),
        (5020, "h:mm:ss", "1:23:40"),
        (225.6, "h:mm:ss.S", "3:45.6"),
        (5020, "h:mm:ss.S", "1:23:40.0"),
        (-90, "h:mm", "-0:02"),
    ],
)
def test_duration_examples(seconds: float, fmt: str, text: str) -> None:
    assert render(field("duration", durationFormat=fmt), seconds, UTC, "en-us") == text


@SETTINGS
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_dates_follow_the_date_format_and_read_back(d: date) -> None:
    iso = d.isoformat()

    def show(name: str, locale: str = "en-us") -> str | None:
        return render(field("date", dateFormat={"name": name}), iso, UTC, locale)

    assert show("iso") == iso
    assert show("us") == f"{d.month}/{d.day}/{d.year}"
    assert show("european") == f"{d.day}/{d.month}/{d.year}"
    assert show("local", "en-us") == f"{d.month}/{d.day}/{d.year}"
    assert show("local", "en-gb") == show("local", "pt-br") == f"{d.day}/{d.month}/{d.year}"
    assert show("local", "de") == f"{d.day}.{d.month}.{d.year}"
    assert show("friendly") == d.strftime("%B ") + f"{d.day}, {d.year}"
    assert show("friendly", "pt-br") == f"{d.day} de {d.strftime('%B')} de {d.year}"


@SETTINGS
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_datetimes_use_the_field_zone_else_the_request_zone(dt: datetime) -> None:
    value = dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    iso24 = {"dateFormat": {"name": "iso"}, "timeFormat": {"name": "24hour"}}
    in_sp = dt.astimezone(SAO_PAULO)
    client = render(field("dateTime", **iso24, timeZone="client"), value, SAO_PAULO, "en-us")
    assert client == in_sp.strftime("%Y-%m-%d %H:%M")
    fixed = render(field("dateTime", **iso24, timeZone="utc"), value, SAO_PAULO, "en-us")
    assert fixed == dt.strftime("%Y-%m-%d %H:%M")
    us12 = {"dateFormat": {"name": "us"}, "timeFormat": {"name": "12hour"}}
    twelve = render(field("dateTime", **us12, timeZone="client"), value, SAO_PAULO, "en-us")
    hour = in_sp.hour % 12 or 12
    ampm = "pm" if in_sp.hour >= 12 else "am"
    assert twelve == f"{in_sp.month}/{in_sp.day}/{in_sp.year} {hour}:{in_sp.minute:02d}{ampm}"
    created = FieldDef(
        "fldC", "c", "createdTime", {"result": {"type": "dateTime", "options": {**iso24, "timeZone": "client"}}}, None
    )
    assert render(created, value, SAO_PAULO, "en-us") == client


def test_separators() -> None:
    assert separators("en-us") == (".", ",")
    assert separators("pt-BR") == (",", ".")
    assert separators("fr") == (",", NARROW_NBSP)
    assert separators(None) == (".", ",")


# ---------------------------------------------------------------- through pyairtable


def test_list_records_string_format_through_pyairtable(api) -> None:  # type: ignore[no-untyped-def]
    table = api.table(BASE, "Usuários")
    when = datetime(2024, 3, 5, 1, 30, tzinfo=UTC)  # 4 March 22:30 in São Paulo
    rec = table.create(
        {
            "Nome": "Formato",
            "mensalidade": 1234.5,
            "data de cadastro": "2024-03-05",
            "último acesso": when.isoformat().replace("+00:00", "Z"),
        }
    )
    schema = api.base(BASE).schema().table("Usuários")
    # the sample's datetime fields carry their own zone (sample.py), which wins over the request's
    assert schema.field("último acesso").options.time_zone == "America/Sao_Paulo"  # type: ignore[union-attr]

    def row(locale: str, zone: str) -> dict[str, Any]:
        got = table.get(rec["id"], cell_format="string", user_locale=locale, time_zone=zone)
        return dict(got["fields"])

    br = row("pt-br", "America/Sao_Paulo")
    us = row("en-us", "UTC")
    assert br["mensalidade"] == "R$1.234,50" and us["mensalidade"] == "R$1,234.50"
    assert br["data de cadastro"] == us["data de cadastro"] == "2024-03-05"  # the field's iso format
    expected = when.astimezone(SAO_PAULO).strftime("%Y-%m-%d %H:%M")
    assert br["último acesso"] == us["último acesso"] == expected == "2024-03-04 22:30"
    listed = table.all(cell_format="string", user_locale="pt-br", time_zone="UTC", formula=f"RECORD_ID()='{rec['id']}'")
    assert listed[0]["fields"]["mensalidade"] == "R$1.234,50"
