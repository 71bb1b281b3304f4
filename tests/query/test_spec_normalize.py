"""QuerySpec parsing, the filter grammar's forms, normalisation and cache_key."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.errors import BadInput, FilterError
from beststag_cli.query.filters import FALSE, TRUE, Cond
from beststag_cli.query.normalize import cache_key, normalize, normalize_tree
from beststag_cli.query.spec import QuerySpec, SortSpec
from beststag_cli.query.validate import bind


def spec(**kw: Any) -> QuerySpec:
    return QuerySpec.parse({"table": "Usuários", **kw})


def tree(filters: Any) -> Any:
    return normalize(spec(filters=filters))["filter"]


def test_equality_forms_are_one_condition() -> None:
    forms = [
        {"status": "Ativo"},
        {"status": {"operator": "eq", "value": "Ativo"}},
        {"status": {"eq": "Ativo"}},
        {"status": {"=": "Ativo"}},
        {"and": [{"status": "Ativo"}]},
        [{"status": "Ativo"}],
        {"status": ["Ativo"]},
        {"or": [{"status": "Ativo"}, {"status": "Ativo"}]},
        {"not": {"not": {"status": "Ativo"}}},
        {"status": {"operator": "in", "value": ["Ativo", "Ativo"]}},
    ]
    assert {json.dumps(tree(f)) for f in forms} == {'{"field": "status", "op": "eq", "value": "Ativo"}'}


def test_the_spec_date_form_and_its_variants() -> None:
    want = {"field": "timestamp", "op": "date_after", "value": {"days": -7}}
    assert tree({"timestamp": {"operator": "date_after", "days": -7}}) == want
    assert tree({"timestamp": {"date_after": {"days": -7.0}}}) == want
    assert tree({"t": {"operator": "date_before", "value": "2024-01-31T09:00:00-03:00"}})["value"] == {
        "value": "2024-01-31T12:00:00.000Z"
    }
    assert tree({"t": {"operator": "date_within", "from": "2024-01-01", "to": "2024-02-01"}})["value"] == {
        "from": "2024-01-01",
        "to": "2024-02-01",
    }
    assert tree({"t": {"operator": "date_within", "hours": 12}})["value"] == {"hours": 12}


def test_shorthands() -> None:
    assert tree({"email": None}) == {"field": "email", "op": "is_empty"}
    assert tree({"email": ""}) == {"field": "email", "op": "is_empty"}
    assert tree({"email": {"operator": "ne", "value": None}}) == {"field": "email", "op": "not_empty"}
    assert tree({"n": {"gte": 1, "lt": 5.0}}) == {
        "and": [{"field": "n", "op": "gte", "value": 1}, {"field": "n", "op": "lt", "value": 5}]
    }
    assert tree({"tags": {"operator": "in", "value": []}}) == {"const": False}
    assert tree({"tags": {"operator": "not_in", "value": []}}) == {"const": True}
    assert tree({"email": {"is_empty": True}, "and": [{"email": {"not_empty": True}}]}) == {"const": False}
    assert tree({"or": []}) == {"const": False}
    assert tree({}) == {"const": True} == tree(None)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": {"operator": "like", "value": "x"}}, "unknown operator 'like'"),
        ({"status": {"operator": "contians", "value": "x"}}, 'did you mean "contains"'),
        ({"status": {"operator": "contains", "value": ""}}, "non-empty text"),
        ({"status": {"operator": "eq", "value": [1]}}, "got a list"),
        ({"status": {"operator": "eq", "value": {"a": 1}}}, "got an object"),
        ({"t": {"operator": "date_after"}}, 'needs "days"'),
        ({"t": {"operator": "date_after", "days": 1.5}}, "whole number"),
        ({"t": {"operator": "date_after", "days": -7, "hours": 1}}, "one of days"),
        ({"t": {"operator": "date_after", "days": -7, "value": "2024-01-01"}}, "cannot be combined"),
        ({"t": {"operator": "date_within", "days": 0}}, "non-zero"),
        ({"t": {"operator": "date_within"}}, "needs"),
        ({"t": {"operator": "date_after", "value": "31/01/2024"}}, "not an ISO date"),
        ({"t": {"operator": "eq", "value": 1, "days": 2}}, 'takes only "value"'),
        ({"and": {"status": "Ativo"}}, "list of filters"),
        ({"n": float("nan")}, "finite"),
        ("status = Ativo", "expected an object"),
    ],
)
def test_bad_filters(filters: Any, message: str) -> None:
    with pytest.raises(FilterError) as e:
        spec(filters=filters)
    assert message in e.value.message
    assert "\n" not in e.value.message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"table": "Usuários", "maxRecord": 5}, 'did you mean "maxRecords"'),
        ({"table": "Usuários", "maxRecords": 0}, "maxRecords"),
        ({"table": "Usuários", "pageSize": 101}, "pageSize"),
        ({"table": "Usuários", "sort": [{"field": "Nome", "direction": "up"}]}, "sort"),
        ({"filters": {}}, "table"),
    ],
)
def test_bad_specs(data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as e:
        QuerySpec.parse(data)
    assert message in e.value.message


def test_sort_and_fields_forms() -> None:
    s = spec(
        sort=["-timestamp", "Nome", {"field": "x", "direction": "desc"}],
        fields="Nome, email,Nome",
    )
    assert [(x.field, x.direction) for x in s.sort] == [("timestamp", "desc"), ("Nome", "asc"), ("x", "desc")]
    assert s.needed_fields() == ["Nome", "email", "timestamp", "x"]
    assert spec(fields=[]).fields is None
    assert SortSpec.from_cli("-a").option() == "-a"
    assert QuerySpec.from_webhook({"operation": "get", "table": "T", "cacheTTL": 5, "recordId": None}).table == "T"
    rt = spec(filters={"status": "Ativo"}, maxRecords=5, sort=["-Nome"]).to_json()
    assert QuerySpec.parse(rt) == spec(filters={"status": "Ativo"}, maxRecords=5, sort=["-Nome"])


def test_cache_key_ignores_what_does_not_change_the_answer() -> None:
    a = spec(filters={"status": "Ativo", "plano": ["Pro", "Free"]}, fields=["email", "Nome"], pageSize=20)
    b = spec(
        filters={"and": [{"plano": {"operator": "in", "value": ["Free", "Pro", "Free"]}}, {"status": "Ativo"}]},
        fields=["Nome", "email", "email"],
    )
    assert cache_key(a) == cache_key(b)
    assert cache_key(a) != cache_key(spec(filters={"status": "Ativo"}, fields=["email", "Nome"]))
    assert cache_key(a) != cache_key(a.model_copy(update={"table": "Tarefas"}))
    assert cache_key(spec(sort=["Nome", "-email"])) != cache_key(spec(sort=["-email", "Nome"]))
    assert cache_key(spec(maxRecords=5)) != cache_key(spec())
    assert cache_key(a).startswith("q1:")


ATOMS = [
    {"status": "Ativo"},
    {"plano": ["Pro", "Free"]},
    {"n": {"gt": 3}},
    {"email": None},
    {"t": {"operator": "date_after", "days": -7}},
    {"tags": {"operator": "contains", "value": "vip"}},
]


@st.composite
def nested(draw: Any, depth: int = 3) -> Any:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(ATOMS))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return {"not": draw(nested(depth - 1))}
    return {op: draw(st.lists(nested(depth - 1), min_size=1, max_size=3))}


def _shuffle_dupe(f: Any, rnd: Any) -> Any:
    """An equivalent filter: and/or children reversed/duplicated, double negations, extra wrappers."""
    if isinstance(f, dict) and set(f) == {"not"}:
        return {"not": _shuffle_dupe(f["not"], rnd)}
    if isinstance(f, dict) and set(f) <= {"and", "or"} and len(f) == 1:
        ((op, kids),) = f.items()
        kids = [_shuffle_dupe(k, rnd) for k in kids]
        rnd.shuffle(kids)
        kids = kids + kids[:1]
        return {"and": [{op: kids}]} if rnd.random() < 0.5 else {op: kids}
    return {"not": {"not": f}} if rnd.random() < 0.3 else f


@settings(max_examples=200, deadline=None)
@given(f=nested(), seed=st.integers(0, 10**6))
def test_cache_key_is_invariant_under_reordering_and_duplicates(f: Any, seed: int) -> None:
    import random

    g = _shuffle_dupe(f, random.Random(seed))
    assert cache_key(spec(filters=f)) == cache_key(spec(filters=g))


@settings(max_examples=100, deadline=None)
@given(f=nested())
def test_normalisation_is_idempotent(f: Any) -> None:
    once = normalize_tree(spec(filters=f).tree)
    assert normalize_tree(once) == once


def test_type_aware_contradictions(schema: Any) -> None:
    users = schema.table("Usuários")

    def folded(filters: Any) -> bool:
        return bind(spec(filters=filters), users).tree == FALSE

    assert folded({"and": [{"status": "Ativo"}, {"status": "Inativo"}]})
    assert folded({"status": "Ativo", "and": [{"status": {"ne": "Ativo"}}]})
    assert folded({"plano": ["Pro", "Free"], "and": [{"plano": ["Enterprise"]}]})
    assert folded({"mensalidade": {"gt": 100, "lt": 50}})
    assert folded({"mensalidade": {"gte": 10, "lt": 10}})
    assert folded({"ativo no WhatsApp": True, "and": [{"ativo no WhatsApp": False}]})
    assert folded({"Nome": "Ana", "and": [{"Nome": None}]})
    assert not folded({"tags": "vip", "and": [{"tags": "beta"}]})  # multi-value: both can hold
    assert not folded({"mensalidade": {"gte": 10, "lte": 10}})
    assert not folded({"mensalidade": None, "and": [{"mensalidade": 0}]})  # an empty number counts as 0
    assert bind(spec(filters={"or": [{"status": "Ativo"}, {"mensalidade": {"gt": 5, "lt": 1}}]}), users).tree == Cond(
        "status", "eq", "Ativo"
    )
    assert bind(spec(filters=None), users).tree == TRUE


def test_spec_normalize_and_evaluate_do_not_import_pyairtable() -> None:
    code = (
        "import sys; import beststag_cli.query.spec, beststag_cli.query.normalize, beststag_cli.query.evaluate, "
        "beststag_cli.query.formula, beststag_cli.gateway.changes; "
        "bad = [m for m in ('pyairtable', 'requests', 'lark', 'beststag_cli.gateway.api') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
