"""The evaluator's API as the cache uses it, the schema cache, and write batching/partial failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.errors import BestStagError, PartialSuccess
from beststag_cli.gateway.api import Gateway
from beststag_cli.gateway.changes import Change
from beststag_cli.query.evaluate import Evaluator, NeedsLinkedRecords, apply_query, matches, needs_links, sort_key
from beststag_cli.query.schema_cache import SchemaCache
from beststag_cli.query.spec import QuerySpec
from beststag_cli.query.writes import Writer, to_records
from beststag_cli.sandbox import FaultConfig

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def rec(rid: str, **fields: Any) -> dict[str, Any]:
    return {"id": rid, "createdTime": "2024-04-01T00:00:00.000Z", "fields": fields}


def test_matches_and_sort_key_on_written_records(schema: Any) -> None:
    t = schema.table("Interações")
    spec = QuerySpec.parse(
        {
            "table": "Interações",
            "filters": {
                "timestamp": {"operator": "date_after", "days": -7},
                "resolvido": False,
                "canal": ["WhatsApp", "Email"],
            },
            "sort": ["-timestamp"],
        }
    )
    fresh = rec("rec00000000000001", timestamp="2024-04-30T10:00:00.000Z", canal="WhatsApp")
    old = rec("rec00000000000002", timestamp="2024-04-01T10:00:00.000Z", canal="WhatsApp")
    done = rec("rec00000000000003", timestamp="2024-04-30T10:00:00.000Z", canal="Email", resolvido=True)
    assert matches(spec, fresh, t, NOW) and not matches(spec, old, t, NOW) and not matches(spec, done, t, NOW)
    assert sort_key(spec, fresh, t, NOW) > sort_key(spec, old, t, NOW)
    assert sort_key(spec, rec("rec00000000000004"), t, NOW) < sort_key(spec, old, t, NOW)  # blanks first (asc)
    out = apply_query(spec.model_copy(update={"fields": ["canal"]}), [old, fresh, done], t, NOW)
    assert out == [{**fresh, "fields": {"canal": "WhatsApp"}}]


def test_link_fields_need_a_resolver(schema: Any) -> None:
    t = schema.table("Interações")
    users = schema.table("Usuários")
    spec = QuerySpec.parse({"table": "Interações", "filters": {"user": "Ana Souza"}})
    r = rec("rec00000000000001", user=["recUSER0000000001"])
    assert needs_links(spec.tree, spec.sort, t)
    with pytest.raises(NeedsLinkedRecords):
        matches(spec, r, t, NOW)
    names = {(users.id, "recUSER0000000001"): "Ana Souza"}
    assert matches(spec, r, t, NOW, links=lambda tid, rid: names.get((tid, rid)))
    assert not needs_links(QuerySpec.parse({"table": "Interações", "filters": {"canal": "Web"}}).tree, [], t)


def test_evaluator_text_number_and_empty_semantics(schema: Any) -> None:
    ev = Evaluator(schema.table("Usuários"), NOW)
    t = schema.table("Usuários")

    def m(filters: Any, **fields: Any) -> bool:
        from beststag_cli.query.validate import bind

        return ev.matches(
            bind(QuerySpec.parse({"table": "Usuários", "filters": filters}), t).tree, rec("rec00000000000001", **fields)
        )

    assert m({"Nome": {"contains": "BRI"}}, Nome="O'Brien") and not m({"Nome": {"contains": "x"}})
    assert m({"Nome": {"starts_with": "o'b"}}, Nome="O'Brien")
    assert m({"mensalidade": {"lt": 1}}) and m({"mensalidade": 0})  # empty counts as 0, as in Airtable
    assert m({"mensalidade": None}) and not m({"mensalidade": None}, mensalidade=0)
    assert m({"tags": "vip"}, tags=["beta", "vip"]) and not m({"tags": "vip"}, tags=["beta"])
    assert m({"tags": {"not_in": ["vip", "beta"]}}, tags=["indicação"])
    assert m({"ativo no WhatsApp": False}) and not m({"ativo no WhatsApp": False}, **{"ativo no WhatsApp": True})
    assert m({"data de cadastro": {"lte": "2024-04-30"}}, **{"data de cadastro": "2024-04-30"})
    assert m({"último acesso": {"eq": "2024-04-30"}}, **{"último acesso": "2024-04-30T23:59:00.000Z"})


def test_schema_cache_ttl_and_refetch_on_unknown(gateway: Any, requests_log: Any) -> None:
    cache = SchemaCache(gateway)
    cache.get()
    assert len(requests_log.routes("meta")) == 1
    SchemaCache(gateway).get()  # another process: the file answers
    assert len(requests_log.routes("meta")) == 1
    assert (cache.path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(Exception, match="did you mean"):
        cache.table("Usuarios")  # brand new copy: no refetch
    assert len(requests_log.routes("meta")) == 1
    clock.set_now(clock.now())
    clock.advance(120)
    with pytest.raises(Exception, match="did you mean"):
        cache.table("Usuarios")  # older than a minute: one refetch, then the error
    assert len(requests_log.routes("meta")) == 2
    clock.advance(4000)
    cache.get()
    assert len(requests_log.routes("meta")) == 3  # TTL expired


class Recorder:
    """A change sink that keeps what it is told (the cache is the real one; this one shows the flow)."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def apply(self, change: Change) -> None:
        self.changes.append(change)


def test_partial_write_failure_keeps_the_written_batches(settings: Any, sandbox: Any) -> None:
    sink = Recorder()
    gateway = Gateway(settings, sandbox=sandbox, source="test", sink=sink)
    writer = Writer(gateway)
    writer.schema.get()
    gateway.sleep = lambda s: None
    before = sandbox.store.count("appBestStagSandbx", "Tarefas")
    sandbox.app.set_faults(FaultConfig(seed=3, rate_500=0.5))
    try:
        with pytest.raises(PartialSuccess) as e:
            writer.write("create", "Tarefas", to_records("create", [{"Título": f"t{i}"} for i in range(60)]))
    finally:
        sandbox.app.set_faults(FaultConfig())
    written = sum(len(c.created) for c in sink.changes)
    # every batch was reported: its records, or that the table may have changed (its answer is unknown)
    assert len(sink.changes) == 6 and all(bool(c.created) != c.unknown for c in sink.changes)
    assert 0 < written < 60
    assert f"{written} of 60 records written" in e.value.message and e.value.exit_code == 3
    assert sandbox.store.count("appBestStagSandbx", "Tarefas") == before + written


def test_every_write_tells_the_sink_what_airtable_answered(settings: Any, sandbox: Any) -> None:
    sink = Recorder()
    gateway = Gateway(settings, sandbox=sandbox, source="test", sink=sink)
    writer = Writer(gateway)
    created = writer.write("create", "Tarefas", to_records("create", [{"Título": f"t{i}"} for i in range(25)]))
    assert sorted(len(c.created) for c in sink.changes) == [5, 10, 10]
    assert all(
        c.base == "appBestStagSandbx"
        and c.table == "Tarefas"
        and c.source == "beststag"
        and c.created[0]["fields"]["Título"].startswith("t")
        for c in sink.changes
    )
    ids = [r["id"] for r in created.records]
    sink.changes.clear()
    writer.write(
        "update", "Tarefas", to_records("update", [{"id": i, "fields": {"prioridade": "Baixa"}} for i in ids[:12]])
    )
    assert sorted(len(c.updated) for c in sink.changes) == [2, 10]
    assert all(r["fields"]["prioridade"] == "Baixa" for c in sink.changes for r in c.updated)
    sink.changes.clear()
    writer.write(
        "upsert",
        "Tarefas",
        to_records("upsert", [{"Título": "t0", "prioridade": "Alta"}, {"Título": "brand new"}]),
        merge_on=["Título"],
    )
    [c] = sink.changes
    assert [r["fields"]["Título"] for r in c.created] == ["brand new"]
    assert [r["id"] for r in c.updated] == [ids[0]]
    sink.changes.clear()
    writer.write("delete", "Tarefas", ids)
    assert sorted(i for c in sink.changes for i in c.deleted) == sorted(ids)


def test_a_failing_sink_never_fails_a_write_and_the_other_sinks_still_hear(settings: Any, sandbox: Any) -> None:
    from beststag_cli.gateway.changes import FanOut

    class Broken:
        def apply(self, change: Change) -> None:
            raise RuntimeError("cache bug")

    after = Recorder()
    gateway = Gateway(settings, sandbox=sandbox, source="test", sink=FanOut([Broken(), after]))
    [rec_] = gateway.create("Tarefas", [{"Título": "ok"}])
    assert gateway.get("Tarefas", rec_["id"])["fields"]["Título"] == "ok"
    assert [c.created[0]["id"] for c in after.changes] == [rec_["id"]]
    with pytest.raises(BestStagError):
        gateway.create("Tarefas", [{"No such field": 1}])
    # a failed write: the table may have changed (a retried attempt may have been applied)
    assert after.changes[-1].unknown and after.changes[-1].table == "Tarefas"
