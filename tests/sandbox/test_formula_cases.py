"""Table-driven cases for the Airtable formula engine (``filterByFormula``).

Each row is (formula, record values, expected). ``expected`` is a plain value, ``ERR`` (any error
value), or ``Truthy(bool)`` (only the filter verdict is checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from beststag_cli.sandbox.formula import (
    FormulaError,
    FormulaValueError,
    SimpleContext,
    compile_formula,
    is_truthy,
    name_resolver,
    parse,
)

NOW = datetime(2024, 3, 15, 13, 30, tzinfo=UTC)
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def D(text: str) -> datetime:
    d = datetime.fromisoformat(text)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


class _Err:
    def __repr__(self) -> str:
        return "ERR"


ERR = _Err()


class _NaN:
    def __repr__(self) -> str:
        return "NaN"


NAN = _NaN()  # the number NaN (falsy, not an error)


@dataclass(frozen=True)
class Truthy:
    expected: bool


def make_ctx(values: dict[str, Any]) -> SimpleContext:
    return SimpleContext(dict(values), record_id="recABCDEFGHIJKLMN", created_time=CREATED, now=NOW)


def evaluate(formula: str, values: dict[str, Any] | None = None) -> Any:
    ctx = make_ctx(values or {})
    return compile_formula(formula, ctx.resolver()).evaluate(ctx)


def check(formula: str, values: dict[str, Any], expected: Any) -> None:
    ctx = make_ctx(values)
    compiled = compile_formula(formula, ctx.resolver())
    got = compiled.evaluate(ctx)
    if isinstance(expected, Truthy):
        assert compiled.matches(ctx) is expected.expected, f"{formula!r} -> {got!r}"
        assert is_truthy(got) is expected.expected
    elif expected is NAN:
        assert isinstance(got, float) and math.isnan(got), f"{formula!r} -> {got!r}"
        assert compiled.matches(ctx) is False
    elif expected is ERR:
        assert isinstance(got, FormulaValueError), f"{formula!r} -> {got!r}"
        assert compiled.matches(ctx) is False
    elif isinstance(expected, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{formula!r} -> {got!r}"
        assert math.isclose(got, expected, rel_tol=1e-12), f"{formula!r} -> {got!r}"
    else:
        assert got == expected, f"{formula!r} -> {got!r}, expected {expected!r}"
        assert type(got) is type(expected) or (
            isinstance(got, (int, float)) and isinstance(expected, (int, float)) and type(got) is not bool
        ), f"{formula!r} -> {got!r} ({type(got).__name__}), expected {type(expected).__name__}"


B = {"B": None}

# ---------------------------------------------------------------- precedence, literals, case
PRECEDENCE = [
    ("1+2*3", {}, 7),
    ("(1+2)*3", {}, 9),
    ("'a'&1+2", {}, "a3"),
    ("10-2-3", {}, 5),
    ("2*3/4", {}, 1.5),
    ("-2*3", {}, -6),
    ("--2", {}, 2),
    ("1+2=3", {}, True),
    ("'x'&1=1", {}, False),
    ("1&2='12'", {}, True),
    ("2*-3", {}, -6),
    (".5+.5", {}, 1),
    ("3.5", {}, 3.5),
    ("  1\n+\n\t2  ", {}, 3),
    ("/* comment */ 1 + 1", {}, 2),
    ("lower('ABC')", {}, "abc"),
    ("If(1, 'y', 'n')", {}, "y"),
    ("and(1, 1)", {}, True),
    ("Upper({Nome})", {"Nome": "joão"}, "JOÃO"),
    ("datetime_format(datetime_parse('2024-01-31'), 'YYYY')", {}, "2024"),
]

# ---------------------------------------------------------------- blanks in every operator
BLANKS = [
    ("{B}+1", B, 1),
    ("{B}*5", B, 0),
    ("{B}-1", B, -1),
    ("{B}/2", B, 0),
    ("2/{B}", B, ERR),
    ("{B}&'x'", B, "x"),
    ("{B}&{B}", B, ""),
    ("{B}=0", B, True),
    ("{B}=''", B, True),
    ("{B}=BLANK()", B, True),
    ("{B}!=''", B, False),
    ("{B}<1", B, True),
    ("{B}>0", B, False),
    ("{B}='a'", B, False),
    ("{B}<'a'", B, True),
    ("-{B}", B, 0),
    ("NOT({B})", B, True),
    ("LEN({B})", B, 0),
    ("{B}", B, Truthy(False)),
    ("BLANK()=0", {}, True),
    ("IF({B}, 'y', 'n')", B, "n"),
    ("{B}=DATETIME_PARSE('2024-01-01')", B, False),
    ("{B}!=DATETIME_PARSE('2024-01-01')", B, True),
]

# ---------------------------------------------------------------- numbers, text, booleans
SCALARS = [
    ("{n}=3", {"n": 3}, True),
    ("{n}='3'", {"n": 3}, True),
    ("{n}>=3", {"n": 3}, True),
    ("{n}<3", {"n": 3}, False),
    ("{n}!=3", {"n": 3}, False),
    ("{n}=3", {"n": 3.0}, True),
    ("{s}='Ativo'", {"s": "Ativo"}, True),
    ("{s}='Ativo'", {"s": "ativo"}, False),
    ("{s}!='Ativo'", {"s": "Inativo"}, True),
    ("'abc'<'abd'", {}, True),
    ("'10'+5", {}, 15),
    ("'abc'+1", {}, NAN),  # recorded: {f} + "FOO" reads {"specialValue": "NaN"} in Airtable
    ("'abc'*2", {}, NAN),
    ("'5'*'2'", {}, 10),
    ("TRUE()+TRUE()", {}, 2),
    ("{done}=TRUE()", {"done": True}, True),
    ("{done}=TRUE()", {"done": False}, False),
    ("{done}=1", {"done": True}, True),
    ("{done}=0", {"done": False}, True),
    ("{done}", {"done": False}, Truthy(False)),
    ("{done}&''", {"done": True}, "1"),
    ("1/4&''", {}, "0.25"),
    ("6/3&''", {}, "2"),
    ("{p}*100", {"p": 0.25}, 25.0),
    ("Price*2", {"Price": 3}, 6),
    ("status='Ativo'", {"status": "Ativo"}, True),
    ("TRUE", {}, True),
]

# ---------------------------------------------------------------- arrays
TAGS = {"Tags": ["a", "b"]}
ARRAYS = [
    ("{Tags}='a, b'", TAGS, True),
    ("{Tags}='a'", {"Tags": ["a"]}, True),
    ("{Tags}='a'", TAGS, False),
    ("{Tags}&''", TAGS, "a, b"),
    ("{Tags}&'|'&{Tags}", TAGS, "a, b|a, b"),
    ("FIND('b', {Tags})", TAGS, 4),
    ("FIND('z', {Tags})", TAGS, 0),
    ("FIND('Maria', ARRAYJOIN({Links}))", {"Links": ["João", "Maria"]}, 7),
    ("FIND('Maria', ARRAYJOIN({Links}))", {"Links": []}, 0),
    ("ARRAYJOIN({Tags}, '; ')", TAGS, "a; b"),
    ("ARRAYJOIN({Tags})", TAGS, "a, b"),
    ("ARRAYUNIQUE({L})", {"L": ["a", "b", "a"]}, ["a", "b"]),
    ("ARRAYCOMPACT({L})", {"L": [1, 2, "", None, False, " "]}, [1, 2, False, " "]),
    ("ARRAYFLATTEN({L})", {"L": [[1, 2, "", 3], [False]]}, [1, 2, "", 3, False]),
    ("{Empty}=''", {"Empty": []}, True),
    ("{Empty}=BLANK()", {"Empty": []}, True),
    ("{Empty}", {"Empty": []}, Truthy(False)),
    ("{Tags}", TAGS, Truthy(True)),
    ("COUNTA({L})", {"L": [1, "", None, "x"]}, 2),
    ("COUNTALL({L})", {"L": [1, "", None, "x"]}, 4),
    ("COUNT({L})", {"L": ["1", 2, 3.5, "x"]}, 2),
    ("SUM({Nums})", {"Nums": [1, 2, 3]}, 6),
    ("MAX({Nums})", {"Nums": [1, 2, 3]}, 3),
    ("MIN({Nums})", {"Nums": [1, 2, 3]}, 1),
    ("AVERAGE({Nums})", {"Nums": [1, 2, 3]}, 2.0),
    ("{Nums}+1", {"Nums": [5]}, 6),
    ("LEN({Tags})", TAGS, 4),
    ("AND({Tags})", TAGS, True),
    ("OR({Empty})", {"Empty": []}, False),
    ("FIND('f.pdf', {Att})", {"Att": ["f.pdf (https://x.test/f.pdf)"]}, 1),
    ("{Links}='João, Maria'", {"Links": ["João", "Maria"]}, True),
]

# ---------------------------------------------------------------- text functions
TEXT = [
    ("FIND('b', 'abcb')", {}, 2),
    ("FIND('b', 'abcb', 3)", {}, 4),
    ("FIND('B', 'abc')", {}, 0),
    ("FIND('', 'abc')", {}, 0),
    ("FIND('x', {B})", B, 0),
    ("SEARCH('B', 'abc')", {}, 2),
    ("SEARCH('z', 'abc')", {}, None),
    ("SEARCH('b', 'abcb', 3)", {}, 4),
    ("LOWER('ÁÉÍ')", {}, "áéí"),
    ("UPPER('ação')", {}, "AÇÃO"),
    ("LEN('ação')", {}, 4),
    ("TRIM('  a b  ')", {}, "a b"),
    ("LEFT('abcdef', 2)", {}, "ab"),
    ("RIGHT('abcdef', 2)", {}, "ef"),
    ("RIGHT('abc', 0)", {}, ""),
    ("LEFT('abc', 10)", {}, "abc"),
    ("MID('abcdef', 2, 3)", {}, "bcd"),
    ("SUBSTITUTE('a-b-c', '-', '+')", {}, "a+b+c"),
    ("SUBSTITUTE('a-b-c', '-', '+', 2)", {}, "a-b+c"),
    ("REPLACE('abcdef', 2, 3, 'X')", {}, "aXef"),
    ("REPT('ab', 3)", {}, "ababab"),
    ("CONCATENATE('a', 1, {B}, 'b')", B, "a1b"),
    ("T('x')", {}, "x"),
    ("T(1)", {}, ""),
    ("ENCODE_URL_COMPONENT('a b&c/é')", {}, "a%20b%26c%2F%C3%A9"),
    ("VALUE('1,234.5')", {}, 1234.5),
    ("VALUE('$10')", {}, 10),
    ("VALUE('12')", {}, 12),
    ("VALUE('abc')", {}, ERR),
    ("REGEX_MATCH('abc123', '[0-9]+')", {}, True),
    ("REGEX_MATCH('abc', '^B')", {}, False),
    ("REGEX_EXTRACT('Hello World', 'W.*')", {}, "World"),
    ("REGEX_REPLACE('a1b2', '[0-9]', '#')", {}, "a#b#"),
    ("REGEX_REPLACE('John Smith', '(\\\\w+) (\\\\w+)', '$2, $1')", {}, "Smith, John"),
]

# ---------------------------------------------------------------- numeric functions
NUMERIC = [
    ("ROUND(2.5)", {}, 3),
    # Airtable's formula reference: ties round "half up toward positive infinity"
    ("ROUND(-2.5)", {}, -2),
    ("ROUND(-2.5, 0)", {}, -2),
    ("ROUND(-2.51, 0)", {}, -3),
    ("ROUND(-1.25, 1)", {}, -1.2),
    ("ROUND(-150, -2)", {}, -100),
    ("ROUNDUP(-2.1, 0)", {}, -3),
    ("ROUNDDOWN(-2.9, 0)", {}, -2),
    ("INT(-1.99)", {}, -2),
    ("EVEN(-1.5)", {}, -2),
    ("ODD(-1.5)", {}, -3),
    ("ROUND(1.005, 2)", {}, 1.01),
    ("ROUND(1234.5678, -2)", {}, 1200),
    ("ROUND(3.14159, 3)", {}, 3.142),
    ("ROUNDUP(1.21, 1)", {}, 1.3),
    ("ROUNDUP(-1.21, 1)", {}, -1.3),
    ("ROUNDDOWN(1.29, 1)", {}, 1.2),
    ("ROUNDDOWN(-1.29, 1)", {}, -1.2),
    ("INT(-1.5)", {}, -2),
    ("INT(1.9)", {}, 1),
    ("ABS(-3)", {}, 3),
    ("CEILING(2.1)", {}, 3),
    ("CEILING(2.1, 0.5)", {}, 2.5),
    ("FLOOR(2.9)", {}, 2),
    ("FLOOR(7, 5)", {}, 5),
    ("MOD(7, 5)", {}, 2),
    ("MOD(-7, 5)", {}, -2),
    ("MOD(1, 0)", {}, ERR),
    ("POWER(2, 10)", {}, 1024),
    ("SQRT(16)", {}, 4),
    ("SQRT(-1)", {}, ERR),
    ("MIN(3, 1, 2)", {}, 1),
    ("MAX(3, {B}, 2)", B, 3),
    ("SUM(1, '2', {B})", B, 3),
    ("AVERAGE(1, 2)", {}, 1.5),
    ("COUNT(1, 'a', 2)", {}, 2),
    ("COUNTA(1, '', 'a')", {}, 2),
    ("COUNTALL(1, '', {B})", B, 3),
    ("EVEN(1.5)", {}, 2),
    ("ODD(2)", {}, 3),
    ("LOG(100)", {}, 2.0),
    ("EXP(0)", {}, 1.0),
]

# ---------------------------------------------------------------- logic, nesting
LOGIC = [
    ("AND(1, 1)", {}, True),
    ("AND(1, 0)", {}, False),
    ("AND(1, '')", {}, False),
    ("OR(0, 'x')", {}, True),
    ("OR(0, '')", {}, False),
    ("NOT(0)", {}, True),
    ("XOR(1, 1)", {}, False),
    ("XOR(1, 0, 0)", {}, True),
    ("XOR(1, 1, 1)", {}, True),
    ("IF(1>2, 'a', 'b')", {}, "b"),
    ("IF(0, 'a')", {}, None),
    ("IF({s}='Ativo', IF({n}>2, 'big', 'small'), 'off')", {"s": "Ativo", "n": 3}, "big"),
    ("IF({s}='Ativo', IF({n}>2, 'big', 'small'), 'off')", {"s": "Ativo", "n": 1}, "small"),
    ("IF({s}='Ativo', IF({n}>2, 'big', 'small'), 'off')", {"s": "x", "n": 3}, "off"),
    ("SWITCH({s}, 'Ativo', 1, 'Inativo', 2, 0)", {"s": "Ativo"}, 1),
    ("SWITCH({s}, 'Ativo', 1, 'Inativo', 2, 0)", {"s": "Inativo"}, 2),
    ("SWITCH({s}, 'Ativo', 1, 'Inativo', 2, 0)", {"s": "Outro"}, 0),
    ("SWITCH('x', 'a', 1)", {}, None),
    ("SWITCH({n}, 1, 'one', 2, SWITCH({s}, 'a', 'two-a', 'two'))", {"n": 2, "s": "b"}, "two"),
    ("IF(AND({n}>1, OR({s}='Ativo', {s}='Novo')), 'ok', 'no')", {"n": 2, "s": "Novo"}, "ok"),
    ("TRUE()", {}, True),
    ("FALSE()", {}, False),
]

# ---------------------------------------------------------------- errors and ISERROR
ERRORS = [
    ("ERROR()", {}, ERR),
    ("ISERROR(ERROR())", {}, True),
    ("ISERROR(1)", {}, False),
    ("ISERROR(1/0)", {}, True),
    ("ISERROR('a'+1)", {}, False),  # NaN is a number, not an error value
    ("ERROR()&'x'", {}, ERR),
    ("IF(ERROR(), 1, 2)", {}, ERR),
    ("IF(1, 2, ERROR())", {}, 2),
    ("AND(1, ERROR())", {}, ERR),
    ("OR(1, ERROR())", {}, ERR),
    ("LEN(ERROR())", {}, ERR),
    ("ERROR()=1", {}, ERR),
    ("NOT(ERROR())", {}, ERR),
    ("ISERROR(DATETIME_PARSE('not a date'))", {}, True),
    ("ISERROR(REGEX_EXTRACT('abc', 'z'))", {}, True),
    ("IF(ISERROR(1/{B}), 'div', 'ok')", B, "div"),
    ("REGEX_MATCH('a', '(')", {}, ERR),
]

# ---------------------------------------------------------------- truthiness table
TRUTHINESS = [
    ("0", {}, Truthy(False)),
    ("1", {}, Truthy(True)),
    ("-1", {}, Truthy(True)),
    ("0.0001", {}, Truthy(True)),
    ("''", {}, Truthy(False)),
    ("'0'", {}, Truthy(True)),
    ("' '", {}, Truthy(True)),
    ("FALSE()", {}, Truthy(False)),
    ("TRUE()", {}, Truthy(True)),
    ("BLANK()", {}, Truthy(False)),
    ("ERROR()", {}, Truthy(False)),
    ("1/0", {}, Truthy(False)),
    ("{nan}", {"nan": float("nan")}, Truthy(False)),
    ("{zero}", {"zero": 0.0}, Truthy(False)),
    ("{d}", {"d": D("2024-01-31")}, Truthy(True)),
    ("{Empty}", {"Empty": []}, Truthy(False)),
    ("{L}", {"L": ["x"]}, Truthy(True)),
    ("{s}", {"s": "texto"}, Truthy(True)),
]

# ---------------------------------------------------------------- dates and time zones
T12 = {"d": D("2024-01-31T12:00:00")}
T02 = {"d": D("2024-01-31T02:00:00")}
DATES = [
    ("TODAY()", {}, D("2024-03-15")),
    ("NOW()", {}, NOW),
    ("IS_AFTER({d}, DATETIME_PARSE('2024-01-31'))", {"d": D("2024-02-01")}, True),
    ("IS_BEFORE({d}, '2024-01-31')", {"d": D("2024-02-01")}, False),
    ("IS_AFTER({d}, DATEADD(NOW(), -7, 'days'))", {"d": D("2024-03-10")}, True),
    ("IS_AFTER({d}, DATEADD(NOW(), -7, 'days'))", {"d": D("2024-03-01")}, False),
    ("IS_SAME({d}, '2024-02-01', 'day')", {"d": D("2024-02-01T15:00")}, True),
    ("IS_SAME({d}, '2024-02-01')", {"d": D("2024-02-01T15:00")}, False),
    ("IS_SAME({d}, '2024-02-29', 'month')", {"d": D("2024-02-01")}, True),
    ("IS_SAME({d}, DATETIME_PARSE('2024-02-01'))", {"d": D("2024-02-01")}, True),
    ("IS_AFTER({B}, TODAY())", B, False),
    ("DATEADD('2024-01-31', 1, 'months')", {}, D("2024-02-29")),
    ("DATEADD('2023-01-31', 1, 'month')", {}, D("2023-02-28")),
    ("DATEADD('2024-03-31', -1, 'M')", {}, D("2024-02-29")),
    ("DATEADD('2024-02-29', 1, 'years')", {}, D("2025-02-28")),
    ("DATEADD('2024-01-31', 1, 'Q')", {}, D("2024-04-30")),
    ("DATEADD({d}, 90, 'minutes')", T12, D("2024-01-31T13:30")),
    ("DATEADD({d}, 90, 'm')", T12, D("2024-01-31T13:30")),
    ("DATEADD({d}, 1.5, 'h')", T12, D("2024-01-31T13:30")),
    ("DATEADD({d}, 2, 'w')", T12, D("2024-02-14T12:00")),
    ("DATEADD({d}, 36, 'hours')", T12, D("2024-02-02T00:00")),
    ("DATEADD({d}, -1, 'day')", T12, D("2024-01-30T12:00")),
    ("DATEADD({d}, 500, 'ms')", T12, D("2024-01-31T12:00:00.500")),
    ("DATEADD({d}, 1, 'fortnight')", T12, ERR),
    ("DATEADD({B}, 1, 'days')", B, ERR),
    ("DATETIME_DIFF('2024-03-15', '2024-03-01', 'days')", {}, 14),
    ("DATETIME_DIFF('2024-03-01', '2024-03-15', 'days')", {}, -14),
    ("DATETIME_DIFF('2024-03-15T12:00', '2024-03-14T13:00', 'days')", {}, 0),
    ("DATETIME_DIFF('2024-03-14T13:00', '2024-03-15T12:00', 'hours')", {}, -23),
    ("DATETIME_DIFF('2024-03-01', '2024-01-31', 'months')", {}, 1),
    ("DATETIME_DIFF('2024-02-28', '2024-01-31', 'months')", {}, 0),
    ("DATETIME_DIFF('2024-01-01', '2024-03-15', 'months')", {}, -2),
    ("DATETIME_DIFF('2025-03-15', '2024-03-16', 'years')", {}, 0),
    ("DATETIME_DIFF('2025-03-15', '2024-03-15', 'y')", {}, 1),
    ("DATETIME_DIFF('2024-07-01', '2024-01-01', 'quarters')", {}, 2),
    ("DATETIME_DIFF('2024-03-15', '2024-03-01', 'weeks')", {}, 2),
    ("DATETIME_DIFF('2024-01-01T00:01:00Z', '2024-01-01T00:00:00Z')", {}, 60),
    ("DATETIME_DIFF('2024-01-01T00:01:00Z', '2024-01-01T00:00:00Z', 'ms')", {}, 60000),
    ("DATETIME_DIFF('2024-01-01T00:01:00Z', '2024-01-01T00:00:00Z', 'lightyears')", {}, 60000),
    ("DATETIME_DIFF(NOW(), {d}, 'days')", {"d": D("2024-03-01")}, 14),
    ("TONOW({d})", {"d": D("2024-03-01")}, 14),
    ("FROMNOW({d})", {"d": D("2024-03-01")}, 14),
    ("TONOW({d})", {"d": D("2024-03-25")}, 9),
    ("FROMNOW({d})", {"d": D("2024-03-25")}, 9),
    ("TONOW({d})", {"d": None}, ERR),
    ("DATETIME_FORMAT(DATETIME_PARSE('2024-01-31T12:00:00.000Z'))", {}, "2024-01-31T12:00:00.000Z"),
    ("DATETIME_FORMAT({d}, 'DD/MM/YYYY')", T12, "31/01/2024"),
    ("DATETIME_FORMAT({d}, 'YYYY-MM-DD HH:mm:ss')", T12, "2024-01-31 12:00:00"),
    ("DATETIME_FORMAT(SET_TIMEZONE({d}, 'America/Sao_Paulo'), 'YYYY-MM-DD HH:mm')", T02, "2024-01-30 23:00"),
    ("DATETIME_FORMAT(SET_TIMEZONE({d}, 'America/Sao_Paulo'), 'Z')", T02, "-03:00"),
    ("DATETIME_FORMAT(SET_TIMEZONE({d}, 'America/Sao_Paulo'))", T02, "2024-01-30T23:00:00.000-03:00"),
    ("DATETIME_FORMAT({d}, 'MMMM Do, YYYY')", T12, "January 31st, 2024"),
    ("DATETIME_FORMAT({d}, 'ddd, MMM D')", T12, "Wed, Jan 31"),
    ("DATETIME_FORMAT({d}, 'dddd')", T12, "Wednesday"),
    ("DATETIME_FORMAT({d}, 'h:mm A')", T12, "12:00 PM"),
    ("DATETIME_FORMAT({d}, 'h:mm a')", {"d": D("2024-01-31T00:05")}, "12:05 am"),
    ("DATETIME_FORMAT({d}, 'X')", T12, "1706702400"),
    ("DATETIME_FORMAT({d}, 'x')", T12, "1706702400000"),
    ("DATETIME_FORMAT({d}, 'L')", T12, "01/31/2024"),
    ("DATETIME_FORMAT({d}, 'YY-M-D H:m:s.SSS')", {"d": D("2024-01-05T07:08:09.123")}, "24-1-5 7:8:9.123"),
    ("DATETIME_FORMAT({d}, '[Dia] DD')", T12, "Dia 31"),
    ("DATETIME_FORMAT({d}, 'ZZ')", T12, "+0000"),
    ("HOUR(SET_TIMEZONE({d}, 'America/Sao_Paulo'))", T02, 23),
    ("DAY(SET_TIMEZONE({d}, 'America/Sao_Paulo'))", T02, 30),
    ("IS_SAME(SET_TIMEZONE({d}, 'America/Sao_Paulo'), {d})", T02, True),
    ("ISERROR(SET_TIMEZONE({d}, 'Mars/Olympus'))", T02, True),
    ("DATETIME_FORMAT({B})", B, ERR),
    ("YEAR({d})", {"d": D("2024-01-31T12:34:56")}, 2024),
    ("MONTH({d})", {"d": D("2024-01-31T12:34:56")}, 1),
    ("DAY({d})", {"d": D("2024-01-31T12:34:56")}, 31),
    ("HOUR({d})", {"d": D("2024-01-31T12:34:56")}, 12),
    ("MINUTE({d})", {"d": D("2024-01-31T12:34:56")}, 34),
    ("SECOND({d})", {"d": D("2024-01-31T12:34:56")}, 56),
    ("WEEKDAY({d})", T12, 3),
    ("WEEKDAY({d}, 'Monday')", T12, 2),
    ("WEEKNUM('2024-01-31')", {}, 5),
    ("DATETIME_PARSE('2024-01-31')", {}, D("2024-01-31")),
    ("DATETIME_PARSE('31/01/2024', 'DD/MM/YYYY')", {}, D("2024-01-31")),
    ("DATETIME_PARSE('2024-01-31T12:00:00.000Z')", {}, D("2024-01-31T12:00")),
    ("DATETIME_PARSE('2024-01-31T12:00:00-03:00')", {}, D("2024-01-31T15:00")),
    ("DATETIME_PARSE('4 Mar 2017 23:00', 'D MMM YYYY HH:mm')", {}, D("2017-03-04T23:00")),
    ("DATETIME_PARSE('1/2/2024')", {}, D("2024-01-02")),
    ("DATETIME_PARSE('03/15 10:00', 'MM/DD HH:mm')", {}, D("2024-03-15T10:00")),
    ("{d}='2024-01-31'", {"d": D("2024-01-31")}, True),
    ("{d}>'2024-01-01'", {"d": D("2024-01-31")}, True),
    ("{d}>=DATETIME_PARSE('2024-01-31')", {"d": D("2024-01-31")}, True),
    ("{d}<DATETIME_PARSE('2024-01-31T12:00:00.000Z')", {"d": D("2024-01-31")}, True),
    ("{d}&''", {"d": D("2024-01-31")}, "2024-01-31T00:00:00.000Z"),
    ("CREATED_TIME()", {}, CREATED),
    ("IS_AFTER(CREATED_TIME(), '2023-12-31')", {}, True),
    ("RECORD_ID()", {}, "recABCDEFGHIJKLMN"),
    ("RECORD_ID()='recABCDEFGHIJKLMN'", {}, True),
]

# ---------------------------------------------------------------- escaping, names, accents
ESCAPING = [
    ("'it\\'s'", {}, "it's"),
    ('"say \\"hi\\""', {}, 'say "hi"'),
    ("'a\\\\b'", {}, "a\\b"),
    ("'line1\\nline2'", {}, "line1\nline2"),
    ('"it\'s"', {}, "it's"),
    ("'say \"hi\"'", {}, 'say "hi"'),
    ("{a\\}b}", {"a}b": 1}, 1),
    ("{Memória Contextual}", {"Memória Contextual": "lembrar"}, "lembrar"),
    ("{Situação}='Concluído'", {"Situação": "Concluído"}, True),
    ("{Situação}='Ação'", {"Situação": "Ação"}, True),
    ("{Situação}='Acao'", {"Situação": "Ação"}, False),
    ("{Field With Spaces} & '!'", {"Field With Spaces": "x"}, "x!"),
    ("{O'Brien's}", {"O'Brien's": 2}, 2),
    ("{Nome}='O\\'Brien'", {"Nome": "O'Brien"}, True),
    ('{Nome}="O\'Brien"', {"Nome": "O'Brien"}, True),
    ("{Nome}='O\\'Brien'", {"Nome": "OBrien"}, False),
    ("{a\\b}", {"a\\b": "backslash"}, "backslash"),
    ("FIND('ç', {Nome})", {"Nome": "Conceição"}, 7),
    ("{ leading}", {" leading": 5}, 5),
]

ALL_CASES = PRECEDENCE + BLANKS + SCALARS + ARRAYS + TEXT + NUMERIC + LOGIC + ERRORS + TRUTHINESS + DATES + ESCAPING


@pytest.mark.parametrize(("formula", "values", "expected"), ALL_CASES, ids=[c[0][:60] for c in ALL_CASES])
def test_formula_case(formula: str, values: dict[str, Any], expected: Any) -> None:
    check(formula, values, expected)


def test_case_count() -> None:
    assert len(ALL_CASES) >= 150


# ---------------------------------------------------------------- compile-time errors

BAD_FORMULAS = [
    ("(1", "parenthes"),
    ("IF(1, 2", "parenthes"),
    ("1)", "parenthes"),
    ("'abc", "Unterminated string"),
    ('"abc', "Unterminated string"),
    ("{status}='Ativo", "Unterminated string"),
    ("FOO(1)", "Unknown function names: FOO"),
    ("foo(1) & bar()", "Unknown function names: foo, bar"),
    ("FIND('a')", "FIND"),
    ("LEFT('a')", "LEFT"),
    ("IF(1)", "IF"),
    ("NOT(1, 2)", "NOT"),
    ("TODAY(1)", "TODAY"),
    ("AND()", "AND"),
    ("{nope}", "Unknown field names: nope"),
    ("{nope} & {nada} & {status} & nope", "Unknown field names: nope, nada"),
    ("", "empty"),
    ("   \n ", "empty"),
    ("‘a’", "quote"),
    ("{status}=“Ativo”", "quote"),
    ("{status", "field reference"),
    ("1 +", "end of formula"),
    ("1 2", "Unexpected"),
    (",", "Unexpected"),
    ("=1", "Unexpected"),
    ("1 # 2", "Invalid character"),
    ("LAST_MODIFIED_TIME(1)", "LAST_MODIFIED_TIME"),
]


@pytest.mark.parametrize(("formula", "fragment"), BAD_FORMULAS, ids=[b[0] or "<empty>" for b in BAD_FORMULAS])
def test_formula_errors(formula: str, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        compile_formula(formula, name_resolver(["status"]))
    assert fragment.lower() in info.value.message.lower()
    assert not info.value.message.startswith("The formula for filtering records is invalid")


def test_unknown_field_message_is_exact() -> None:
    with pytest.raises(FormulaError) as info:
        compile_formula("AND({nope}='x', {status}, {Situação}, nope2)", name_resolver(["status"]))
    assert info.value.message == "Unknown field names: nope, Situação, nope2"


def test_parse_errors_are_formula_errors() -> None:
    with pytest.raises(FormulaError):
        parse("(((")
    tree = parse("{a} = 'x'")
    assert tree.data == "compare"


# ---------------------------------------------------------------- resolver and context protocol


def test_field_ids_and_keys() -> None:
    resolve = name_resolver({"Status": "K1", "fldABCDEFGHIJKLMN": "K1", "Idade": "K2"})
    compiled = compile_formula("AND({fldABCDEFGHIJKLMN}='Ativo', {Idade} > 18)", resolve)
    assert compiled.field_keys == frozenset({"K1"}) | {"K2"}
    ctx = SimpleContext({"K1": "Ativo", "K2": 30})
    assert compiled.matches(ctx) is True
    assert compiled.matches(SimpleContext({"K1": "Ativo", "K2": 3})) is False


def test_resolver_receives_unescaped_names() -> None:
    seen: list[str] = []

    def resolve(name: str) -> str:
        seen.append(name)
        return name.upper()

    compiled = compile_formula("{a\\}b} & {Memória} & plain", resolve)
    assert seen == ["a}b", "Memória", "plain"]
    assert compiled.field_keys == frozenset({"A}B", "MEMÓRIA", "PLAIN"})


def test_last_modified_time() -> None:
    t1, t2 = D("2024-02-01T10:00"), D("2024-02-05T10:00")
    ctx = SimpleContext({"a": 1, "b": 2}, modified={"a": t1, "b": t2}, now=NOW)
    resolve = ctx.resolver()
    assert compile_formula("LAST_MODIFIED_TIME()", resolve).evaluate(ctx) == t2
    assert compile_formula("LAST_MODIFIED_TIME({a})", resolve).evaluate(ctx) == t1
    assert compile_formula("LAST_MODIFIED_TIME({a}, b)", resolve).evaluate(ctx) == t2
    assert compile_formula("IS_AFTER(LAST_MODIFIED_TIME({a}), '2024-01-31')", resolve).matches(ctx)
    assert compile_formula("LAST_MODIFIED_TIME({a})", resolve).field_keys == frozenset({"a"})


def test_last_modified_receives_key_list() -> None:
    calls: list[Any] = []

    class Ctx(SimpleContext):
        def last_modified(self, keys: list[Any] | None) -> datetime | None:
            calls.append(keys)
            return NOW

    ctx = Ctx({"a": 1, "b": 2})
    compile_formula("LAST_MODIFIED_TIME()", ctx.resolver()).evaluate(ctx)
    compile_formula("LAST_MODIFIED_TIME({a}, {b})", ctx.resolver()).evaluate(ctx)
    assert calls == [None, ["a", "b"]]


def test_now_comes_from_context_not_clock() -> None:
    compiled = compile_formula("DATETIME_FORMAT(NOW(), 'YYYY')", name_resolver([]))
    assert compiled.evaluate(SimpleContext(now=D("1999-06-01"))) == "1999"
    assert compiled.evaluate(SimpleContext(now=D("2031-06-01"))) == "2031"


def test_evaluate_never_raises_on_odd_values() -> None:
    odd_values: list[Any] = [object(), {"a": 1}, (1, 2), b"bytes", float("inf"), -0.0, 10**400, [None, [object()]]]
    formulas = ["{x}+1", "{x}&''", "{x}='a'", "LEN({x})", "DATEADD({x}, 1, 'days')", "SUM({x})", "IF({x}, 1, 0)"]
    for value in odd_values:
        ctx = SimpleContext({"x": value})
        for formula in formulas:
            compiled = compile_formula(formula, ctx.resolver())
            compiled.evaluate(ctx)
            assert compiled.matches(ctx) in (True, False)


def test_is_truthy_direct() -> None:
    assert [is_truthy(v) for v in (0, 0.0, False, "", float("nan"), [], None, FormulaValueError())] == [False] * 8
    assert [is_truthy(v) for v in (1, -2.5, True, "a", ["a"], D("2024-01-01"))] == [True] * 6


def test_formula_value_error_is_not_an_exception() -> None:
    value = evaluate("1/0")
    assert isinstance(value, FormulaValueError)
    assert not isinstance(value, BaseException)
    assert str(evaluate("ERROR()")) == "#ERROR!"


def test_now_dependent_subexpressions_follow_each_context() -> None:
    compiled = compile_formula("IS_AFTER({d}, DATEADD(NOW(), -7, 'days'))", name_resolver(["d"]))
    record = {"d": D("2024-03-10")}
    assert compiled.matches(SimpleContext(record, now=D("2024-03-15"))) is True
    assert compiled.matches(SimpleContext(record, now=D("2024-04-15"))) is False
    assert compiled.matches(SimpleContext(record, now=D("2024-03-15"))) is True
