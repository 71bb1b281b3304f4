"""Property-based tests for the formula engine (hypothesis, bounded to run in a few seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import lark
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox.formula import (
    FUNCTIONS,
    FormulaError,
    SimpleContext,
    compile_formula,
    is_truthy,
    name_resolver,
    parse,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2024, 3, 15, 13, 30, tzinfo=UTC)
FIELDS = ["status", "Nome", "Situação", "Data", "Tags", "Qtd", "Feito", "Vazio", "a}b", "O'Brien"]


def quoted(s: str) -> str:
    """pyairtable.formulas.quoted()."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def field_name(name: str) -> str:
    """pyairtable.formulas.field_name()."""
    return "{" + name.replace("}", r"\}") + "}"


# ---------------------------------------------------------------- strategies

aware_datetimes = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
cell_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    aware_datetimes,
    st.lists(st.text(max_size=6), max_size=3),
    st.lists(st.integers(-5, 5), max_size=3),
)
records = st.fixed_dictionaries({name: cell_values for name in FIELDS})

number_literals = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.sampled_from([".5", "0", "1", "3.5", "1e3"]),
)
string_literals = st.one_of(
    st.text(max_size=8).map(quoted),
    st.sampled_from(
        [
            "'days'",
            "'months'",
            "'M'",
            "'h'",
            "'YYYY-MM-DD'",
            "'2024-01-31'",
            "'America/Sao_Paulo'",
            "'[0-9]+'",
            "'Ativo'",
            '"x"',
            "''",
        ]
    ),
)
field_refs = st.one_of(
    st.sampled_from(FIELDS).map(field_name),
    st.sampled_from(["status", "Nome", "Qtd"]),
    st.just("{unknown field}"),
)
leaves = st.one_of(
    number_literals,
    string_literals,
    field_refs,
    st.sampled_from(
        [
            "TRUE()",
            "FALSE()",
            "BLANK()",
            "NOW()",
            "TODAY()",
            "ERROR()",
            "RECORD_ID()",
            "CREATED_TIME()",
            "LAST_MODIFIED_TIME()",
        ]
    ),
)
function_names = st.sampled_from([*sorted(FUNCTIONS), "NOPE", "lower", "If"])
binary_ops = st.sampled_from(["+", "-", "*", "/", "&", "=", "!=", "<", ">", "<=", ">="])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, binary_ops, children).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"-{c}"),
        st.tuples(function_names, st.lists(children, max_size=4)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


expressions = st.recursive(leaves, _extend, max_leaves=12)


def _ctx(values: dict[str, Any]) -> SimpleContext:
    return SimpleContext(
        values,
        record_id="recABCDEFGHIJKLMN",
        created_time=NOW - timedelta(days=30),
        now=NOW,
        modified={"status": NOW - timedelta(days=1)},
    )


# ---------------------------------------------------------------- (a) robustness


@SETTINGS
@given(expressions, records)
def test_random_expressions_never_crash(formula: str, values: dict[str, Any]) -> None:
    ctx = _ctx(values)
    try:
        compiled = compile_formula(formula, name_resolver(FIELDS))
    except FormulaError as exc:
        assert exc.message
        return
    # the internal closure itself must not leak exceptions (evaluate() also guards, but a leak is a bug)
    compiled._fn(ctx)
    compiled.evaluate(ctx)
    assert compiled.matches(ctx) in (True, False)


@SETTINGS
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_formula_error(text: str) -> None:
    try:
        compiled = compile_formula(text, name_resolver(FIELDS))
    except FormulaError as exc:
        assert isinstance(exc.message, str) and exc.message
        return
    compiled.evaluate(_ctx(dict.fromkeys(FIELDS)))


# ---------------------------------------------------------------- (b) commutativity of AND / OR

booleanish = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "''",
            "'x'",
            "TRUE()",
            "FALSE()",
            "BLANK()",
            "ERROR()",
            "1/0",
            "{Vazio}",
            "{Tags}",
            "{Feito}",
            "{Qtd}",
            "{status}",
            "{Data}",
        ]
    ),
    st.tuples(
        st.sampled_from(FIELDS).map(field_name),
        st.sampled_from(["=", "!=", ">", "<"]),
        st.one_of(number_literals, string_literals),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.tuples(st.sampled_from(["NOT", "ISERROR"]), st.sampled_from(FIELDS).map(field_name)).map(
        lambda t: f"{t[0]}({t[1]})"
    ),
)


@SETTINGS
@given(booleanish, booleanish, records)
def test_and_or_are_commutative(a: str, b: str, values: dict[str, Any]) -> None:
    ctx = _ctx(values)
    resolve = name_resolver(FIELDS)
    for fn in ("AND", "OR", "XOR"):
        left = compile_formula(f"{fn}({a}, {b})", resolve).matches(ctx)
        right = compile_formula(f"{fn}({b}, {a})", resolve).matches(ctx)
        assert left == right, (fn, a, b)
    both = compile_formula(f"AND({a}, {b})", resolve).matches(ctx)
    separately = is_truthy(compile_formula(a, resolve).evaluate(ctx)) and is_truthy(
        compile_formula(b, resolve).evaluate(ctx)
    )
    assert both == separately


# ---------------------------------------------------------------- (c) quoting round trips


@SETTINGS
@given(st.text())
def test_quoted_string_round_trip(s: str) -> None:
    compiled = compile_formula(quoted(s), name_resolver([]))
    assert compiled.evaluate(SimpleContext(now=NOW)) == s


@SETTINGS
@given(st.text())
def test_double_quoted_string_round_trip(s: str) -> None:
    formula = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert compile_formula(formula, name_resolver([])).evaluate(SimpleContext()) == s


@SETTINGS
@given(st.text())
def test_quoted_value_comparison_matches_exactly(s: str) -> None:
    ctx = SimpleContext({"a": s})
    assert compile_formula("{a} = " + quoted(s), ctx.resolver()).evaluate(ctx) is True
    assert compile_formula("{a} != " + quoted(s), ctx.resolver()).evaluate(ctx) is False


field_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=30
).filter(lambda n: not n.endswith("\\"))


@SETTINGS
@given(field_names)
def test_field_name_round_trip(name: str) -> None:
    seen: list[str] = []

    def resolve(n: str) -> str:
        seen.append(n)
        return "KEY"

    compiled = compile_formula(field_name(name) + " & ''", resolve)
    assert seen == [name]
    assert compiled.evaluate(SimpleContext({"KEY": "v"})) == "v"


# ---------------------------------------------------------------- (d) structural injection


def shape(tree: Any) -> Any:
    if isinstance(tree, lark.Tree):
        return (tree.data, tuple(shape(c) for c in tree.children))
    if isinstance(tree, lark.Token):
        return tree.type
    return None


REFERENCE_SHAPE = shape(parse("{a} = 'x'"))


@SETTINGS
@given(st.text())
def test_quoted_value_cannot_change_tree_shape(s: str) -> None:
    assert shape(parse("{a} = " + quoted(s))) == REFERENCE_SHAPE


@SETTINGS
@given(field_names)
def test_field_name_cannot_change_tree_shape(name: str) -> None:
    assert shape(parse(field_name(name) + " = 'x'")) == REFERENCE_SHAPE


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=20)), min_size=1, max_size=4))
def test_match_style_formulas_keep_their_structure(pairs: list[tuple[str, str]]) -> None:
    """pyairtable's match({...}) output: the structure only depends on the number of pairs."""

    def build(items: list[tuple[str, str]]) -> str:
        parts = [f"{field_name(k)}={quoted(v)}" for k, v in items]
        return parts[0] if len(parts) == 1 else "AND(" + ", ".join(parts) + ")"

    neutral = [(k, "x") for k, _ in pairs]
    assert shape(parse(build(pairs))) == shape(parse(build(neutral)))


# ---------------------------------------------------------------- ROUND ties toward +infinity


@SETTINGS
@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=0, max_value=3))
def test_round_ties_go_toward_positive_infinity(n: int, places: int) -> None:
    # n + 0.5 units of the last place is an exact tie; Airtable's reference: "ties broken by
    # rounding half up toward positive infinity", so the answer is always the upper neighbour.
    from decimal import Decimal

    tie = (Decimal(n) + Decimal("0.5")).scaleb(-places)
    expected = Decimal(n + 1).scaleb(-places)
    got = compile_formula(f"ROUND({tie}, {places})", name_resolver([])).evaluate(SimpleContext(now=NOW))
    assert Decimal(repr(got)) == expected


@SETTINGS
@given(aware_datetimes)
def test_tonow_and_fromnow_agree_and_count_whole_days(d: datetime) -> None:
    ctx = SimpleContext({"d": d}, now=NOW)
    to_now = compile_formula("TONOW({d})", name_resolver(["d"])).evaluate(ctx)
    from_now = compile_formula("FROMNOW({d})", name_resolver(["d"])).evaluate(ctx)
    # whole days, truncated, the same in both directions
    assert to_now == from_now == abs(NOW - d).days
