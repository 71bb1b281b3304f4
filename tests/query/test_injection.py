"""Escaping is the security boundary: no value and no field name changes the formula's structure.

Each formula is parsed with the sandbox's grammar; its tree with leaf contents erased (token
types kept, texts dropped) must equal the tree built from a harmless value / name.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Token, Tree

from beststag_cli.errors import FilterError
from beststag_cli.query.filters import Cond
from beststag_cli.query.formula import compile_tree, field_ref, quoted
from beststag_cli.query.normalize import normalize_tree
from beststag_cli.query.schema import FieldInfo, TableInfo
from beststag_cli.query.spec import QuerySpec
from beststag_cli.query.validate import MEMBER_SEP, bind
from beststag_cli.sandbox.formula import parse
from beststag_cli.sandbox.formula.parser import unescape_field, unescape_string

_PIECES = [*"'\"\\{}()&,=<>!/*- \n\t\rabcAÉ😀", "\\'", "'}", ")&(", "*/", "/*", "TRUE()"]
HOSTILE = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12).map("".join) | st.text(min_size=1, max_size=25)


def shape(tree: Any) -> Any:
    """The tree with leaf texts erased (token types stay)."""
    if isinstance(tree, Tree):
        return (tree.data, tuple(shape(c) for c in tree.children))
    if isinstance(tree, Token):
        return tree.type
    return type(tree).__name__


def leaves(tree: Any, kind: str) -> list[str]:
    if isinstance(tree, Tree):
        return [x for c in tree.children for x in leaves(c, kind)]
    return [str(tree)] if isinstance(tree, Token) and tree.type == kind else []


def _table(name: str = "Nome") -> TableInfo:
    return TableInfo(
        "tblX",
        "T",
        "fld1",
        (
            FieldInfo("fld1", name, "singleLineText"),
            FieldInfo("fld2", "tags", "multipleRecordLinks", {"linkedTableId": "tblY"}),
            FieldInfo("fld3", "n", "number"),
        ),
    )


TEXT_OPS = ("eq", "ne", "contains", "starts_with")


def _formula(field: str, op: str, value: Any, table: TableInfo | None = None) -> str:
    return compile_tree(normalize_tree(Cond(field, op, value)), table or _table())


@pytest.mark.parametrize("op", TEXT_OPS)
@settings(max_examples=150, deadline=None)
@given(value=HOSTILE)
def test_text_values_cannot_change_the_tree(op: str, value: str) -> None:
    ref = shape(parse(_formula("Nome", op, "x")))
    text = _formula("Nome", op, value)
    tree = parse(text)
    assert shape(tree) == ref
    strings = [unescape_string(s) for s in leaves(tree, "STRING")]
    assert (value.lower() if op in ("contains", "starts_with") else value) in strings


@settings(max_examples=150, deadline=None)
@given(values=st.lists(HOSTILE.filter(lambda v: MEMBER_SEP not in v), min_size=2, max_size=4, unique=True))
def test_lists_and_link_membership_keep_their_shape(values: list[str]) -> None:
    neutral = [f"x{i}" for i in range(len(values))]
    for field, op in (("Nome", "in"), ("Nome", "not_in"), ("tags", "in"), ("tags", "not_in")):
        got = parse(_formula(field, op, tuple(sorted(values))))
        assert shape(got) == shape(parse(_formula(field, op, tuple(neutral))))


@settings(max_examples=200, deadline=None)
@given(name=HOSTILE.filter(lambda n: not n.endswith("\\")))
def test_field_names_cannot_change_the_tree(name: str) -> None:
    ref = shape(parse(_formula("Nome", "contains", "x")))
    tree = parse(_formula(name, "contains", "x", _table(name)))
    assert shape(tree) == ref
    assert [unescape_field(f) for f in leaves(tree, "FIELD")] == [name]


def test_quoting_is_pyairtables() -> None:
    """Byte-for-byte what pyairtable.formulas.quoted()/field_name() produce."""
    from pyairtable.formulas import field_name
    from pyairtable.formulas import quoted as pq

    for s in ["a", "O'Brien", "back\\slash", "\\'", "{x}", "a}b", "😀\n", "'); DELETE"]:
        assert quoted(s) == pq(s)
        assert field_ref(s) == field_name(s)


def test_a_name_ending_in_a_backslash_is_refused() -> None:
    with pytest.raises(FilterError):
        field_ref("evil\\")


def test_hostile_values_reach_the_sandbox_intact(service: Any, api: Any) -> None:
    """The sample holds names with quotes, backslashes, braces and emojis: equality finds each."""
    names = [r["fields"]["Nome"] for r in api.table("appBestStagSandbx", "Usuários").all(fields=["Nome"])]
    tricky = [*[n for n in names if set(n) & set("'\"\\{}")][:5], "') , TRUE(), ('", "}\\'"]
    for n in tricky:
        spec = QuerySpec.parse({"table": "Usuários", "filters": {"Nome": n}, "fields": ["Nome"]})
        got = [r["fields"]["Nome"] for r in service.run(spec).records]
        assert got == [x for x in names if x == n]


def test_bind_keeps_the_shape_for_a_real_schema(schema: Any) -> None:
    spec = QuerySpec.parse({"table": "Usuários", "filters": {"Nome": {"contains": "') OR TRUE() OR ('"}}})
    text = compile_tree(bind(spec, schema.table("Usuários")).tree, schema.table("Usuários"))
    assert shape(parse(text)) == shape(parse(_formula("Nome", "contains", "x")))
