"""`cache warm`'s plan (cache/warmplan.py): configured queries, then the journal's busiest, each cache key once."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from beststag_cli.cache.warmplan import plan_warm, warm_queries
from beststag_cli.query.normalize import cache_key
from beststag_cli.query.spec import QuerySpec

RECENT = {"timestamp": {"operator": "date_after", "days": -7}}
#: the shipped config's second hot query (config/beststag.yaml cache.warm)
CONFIGURED = {
    "table": "Interações",
    "filters": RECENT,
    "fields": ["user", "message", "timestamp"],
    "sort": [{"field": "timestamp", "direction": "desc"}],
    "maxRecords": 50,
}


def _spec(**kw: Any) -> QuerySpec:
    return QuerySpec.parse(kw)


def test_queries_written_differently_for_one_cache_entry_are_planned_once() -> None:
    a = _spec(**CONFIGURED)
    b = _spec(**{**CONFIGURED, "fields": ["timestamp", "message", "user"]})  # same answer, fields reordered
    c = _spec(table="Usuários", filters={"AND": [{"status": "Ativo"}, {"plano": "Pro"}]})
    d = _spec(table="Usuários", filters={"AND": [{"plano": "Pro"}, {"status": "Ativo"}]})  # children swapped
    assert a.to_json() != b.to_json() and cache_key(a) == cache_key(b)  # what the old check compared vs the key
    plan = plan_warm([a, c, a], [b, d, _spec(table="Eventos")])
    assert plan.specs == (a, c, _spec(table="Eventos"))  # the configured query keeps its place
    assert (plan.configured, plan.from_journal, plan.duplicates) == (2, 1, 3)


_pool = [
    _spec(table="Usuários"),
    _spec(table="Usuários", fields=["Nome", "email"]),
    _spec(table="Usuários", fields=["email", "Nome"]),
    _spec(table="Usuários", maxRecords=5),
    _spec(**CONFIGURED),
    _spec(table="Eventos", sort=[{"field": "Nome", "direction": "desc"}]),
]


@given(st.lists(st.sampled_from(_pool), max_size=8), st.lists(st.sampled_from(_pool), max_size=8))
def test_the_plan_holds_each_key_once_in_first_seen_order(
    configured: list[QuerySpec], journal: list[QuerySpec]
) -> None:
    plan = plan_warm(configured, journal)
    keys = [cache_key(s) for s in plan.specs]
    everything = [cache_key(s) for s in [*configured, *journal]]
    assert keys == list(dict.fromkeys(everything))
    assert plan.configured + plan.from_journal == len(plan.specs)
    assert plan.duplicates == len(everything) - len(plan.specs)


def test_warm_loads_each_planned_query_once_from_airtable(cache: Any, settings: Any, upstream: Any) -> None:
    settings.cache.warm = [CONFIGURED, {**CONFIGURED, "fields": ["timestamp", "user", "message"]}]
    warmed = warm_queries(cache)
    assert [(w.table, w.records > 0, w.key) for w in warmed] == [("Interações", True, cache_key(_spec(**CONFIGURED)))]
    assert upstream.reads() == 1


def test_warm_of_some_tables_plans_only_theirs(cache: Any) -> None:
    assert {w.table for w in warm_queries(cache, ["Usuários"])} == {"Usuários"}


def test_cli_warm_from_the_journal_skips_a_configured_query_asked_in_other_words(cli: Any) -> None:
    """The CLI compared queries by their JSON: the journal's `--fields timestamp,user,message` (the
    configured query with its fields in another order, the same cache entry) was warmed twice."""
    r = cli(
        "--json",
        "cache",
        "get",
        "Interações",
        "--filter",
        '{"timestamp": {"operator": "date_after", "days": -7}}',
        "--fields",
        "timestamp,user,message",
        "--sort",
        "-timestamp",
        "--max",
        "50",
    )
    assert r.exit_code == 0, r
    w = cli("--json", "cache", "warm", "--from-journal").json()["warmed"]
    assert sorted(x["table"] for x in w) == ["Interações", "Usuários"], w
    assert len({x["key"] for x in w}) == len(w)
