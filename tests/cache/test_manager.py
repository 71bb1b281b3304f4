"""Cache behaviour against the sandbox, counting upstream requests."""

from __future__ import annotations

import pytest

from beststag_cli import clock
from beststag_cli.errors import UnknownTable, UpstreamUnavailable
from beststag_cli.query.spec import QuerySpec
from beststag_cli.sandbox import FaultConfig


def spec(**kw):  # type: ignore[no-untyped-def]
    return QuerySpec.parse(kw)


def direct(sandbox, s: QuerySpec) -> list[str]:  # type: ignore[no-untyped-def]
    """The ids Airtable (the sandbox) answers right now, without any cache."""
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.query.explain import request_options
    from beststag_cli.query.service import QueryService

    gw = Gateway(load_config(), sandbox=sandbox, journal=None)
    gw._journal = None
    bound = QueryService(gw).bind(s)
    opts = request_options(bound)
    recs = (
        sandbox.api()
        .table("appBestStagSandbx", bound.table.name)
        .all(**{k: v for k, v in opts.items() if k != "page_size"})
    )
    return [r["id"] for r in recs][: s.max_records or None]


def test_miss_then_hit_then_expiry(cache, upstream) -> None:
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Usuários", filters={"status": "Ativo"})
    first = cache.get(s)
    assert first.status == "miss" and first.records
    reads = upstream.reads()
    second = cache.get(s)
    assert second.status == "hit" and second.records == first.records
    assert upstream.reads() == reads
    equivalent = spec(
        table="Usuários", filters={"and": [{"status": "Ativo"}, {"status": {"operator": "eq", "value": "Ativo"}}]}
    )
    assert cache.get(equivalent).status == "hit"
    clock.advance(601)  # Usuários TTL is 600 s in the shipped config
    third = cache.get(s)  # expired: one listing of the table's changes (and ids) revalidates it
    assert third.status == "hit" and third.extra.get("revalidated")

    def plain(records: list) -> list:  # type: ignore[type-arg]  # attachment URLs are re-signed on every read
        return [(r["id"], {k: v for k, v in r["fields"].items() if k != "avatar"}) for r in records]

    assert plain(third.records) == plain(first.records)
    assert upstream.reads() == reads + 1  # one listing of changes (ids are listed at most hourly)


def test_expiry_refetches_when_revalidation_is_off(cache, settings, upstream) -> None:
    settings.cache.revalidate = False
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Usuários", filters={"status": "Ativo"})
    cache.get(s)
    clock.advance(601)
    assert cache.get(s).status == "miss"


def test_revalidation_sees_other_clients_changes(cache, settings, api, sandbox, upstream) -> None:
    settings.cache.deletion_check_s = 0  # list the ids at every revalidation
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Tarefas", filters={"status": "A fazer"}, fields=["Título", "status"], sort=["Título"])
    before = cache.get(s).records
    other = api.table("appBestStagSandbx", "Tarefas")  # another Airtable client: the cache cannot see it
    clock.advance(10)
    moved = other.update(before[0]["id"], {"status": "Concluída"})
    added = other.create({"Título": "AAA nova lá fora", "status": "A fazer"})
    other.delete(before[1]["id"])
    assert cache.get(s).records == before  # still fresh: invisible until it expires, as documented
    clock.advance(301)
    reads = upstream.reads()
    after = cache.get(s)
    assert after.extra.get("revalidated") and upstream.reads() - reads <= 5
    ids = [r["id"] for r in after.records]
    assert moved["id"] not in ids and before[1]["id"] not in ids and added["id"] in ids
    assert ids == direct(sandbox, s)


def test_other_clients_deletions_show_within_the_deletion_check_interval(cache, settings, api, sandbox) -> None:
    settings.cache.deletion_check_s = 3600
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Tarefas", filters={"status": "A fazer"}, fields=["Título"])
    before = cache.get(s).records
    api.table("appBestStagSandbx", "Tarefas").delete(before[0]["id"])
    clock.advance(301)
    assert before[0]["id"] in [r["id"] for r in cache.get(s).records]  # revalidated; the deletion not yet seen
    clock.advance(3600)
    assert [r["id"] for r in cache.get(s).records] == direct(sandbox, s)


def test_per_call_ttl_and_per_table_ttl(cache) -> None:
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Interações", maxRecords=5)
    assert cache.get(s).ttl_s == 120  # the table's override of the 300 s default
    assert cache.get(spec(table="Tarefas", maxRecords=5)).ttl_s == 300
    r = cache.get(spec(table="Eventos", maxRecords=5), ttl=5)
    assert r.ttl_s == 5
    clock.advance(6)
    again = cache.get(spec(table="Eventos", maxRecords=5))
    assert again.status == "hit" and again.extra.get("revalidated")  # expired after 5 s, then revalidated


def test_invalidate_table_record_and_all(cache, upstream, api) -> None:
    s = spec(table="Usuários", filters={"status": "Ativo"}, fields=["Nome"])
    rows = cache.get(s).records
    cache.invalidate("Usuários")
    assert cache.get(s).status == "miss"
    rid = rows[0]["id"]
    rec = cache.get_record("Usuários", rid)
    assert rec.status == "miss" and cache.get_record("Usuários", rid).status == "hit"
    out = cache.invalidate("Usuários", rid)
    assert out["entries"] == 2  # the record and the answer that holds it
    assert cache.get_record("Usuários", rid).status == "miss"
    assert cache.get(s).status == "miss"
    cache.invalidate()
    assert cache.get(s).status == "miss"
    with pytest.raises(UnknownTable) as e:
        cache.invalidate("Usuarios")
    assert "did you mean" in e.value.message


def test_own_writes_move_records_in_and_out_of_a_cached_filter(cache, upstream, writer, sandbox) -> None:
    s = spec(table="Usuários", filters={"status": "Ativo"}, fields=["Nome", "status"], sort=["Nome"])
    before = cache.get(s).records
    inactive = cache.get(spec(table="Usuários", filters={"status": "Inativo"}, fields=["Nome"])).records
    reads = upstream.reads()
    moving_in = inactive[0]["id"]
    moving_out = before[0]["id"]
    writer(
        "update",
        "Usuários",
        [{"id": moving_in, "fields": {"status": "Ativo"}}, {"id": moving_out, "fields": {"status": "Inativo"}}],
    )
    created = writer("create", "Usuários", [{"Nome": "Aaron Primeiro", "status": "Ativo"}])
    after = cache.get(s)
    assert after.status == "hit" and upstream.reads() == reads  # no re-fetch
    ids = [r["id"] for r in after.records]
    assert moving_in in ids and moving_out not in ids and created[0]["id"] in ids
    assert ids == direct(sandbox, s)  # exactly what Airtable now answers, in order
    assert all(set(r["fields"]) <= {"Nome", "status"} for r in after.records)
    writer("delete", "Usuários", [created[0]["id"]])
    assert [r["id"] for r in cache.get(s).records] == direct(sandbox, s)


def test_sort_order_kept_and_max_records_window(cache, upstream, writer, sandbox) -> None:
    s = spec(table="Tarefas", sort=["-estimativa (h)"], maxRecords=10, fields=["Título", "estimativa (h)"])
    top = cache.get(s).records
    reads = upstream.reads()
    writer("create", "Tarefas", [{"Título": "enorme", "estimativa (h)": 10_000}])
    got = cache.get(s)
    assert got.status == "hit" and upstream.reads() == reads
    assert [r["id"] for r in got.records] == direct(sandbox, s)
    assert got.records[0]["fields"]["Título"] == "enorme" and len(got.records) == 10
    # a member leaving a full window cannot be patched (the 11th is unknown): that entry is dropped
    writer("update", "Tarefas", [{"id": top[0]["id"], "fields": {"estimativa (h)": 0}}])
    again = cache.get(s)
    assert again.status == "miss"
    assert [r["id"] for r in again.records] == direct(sandbox, s)


def test_related_tables_follow_link_changes(cache, writer) -> None:
    users = spec(table="Usuários", maxRecords=3)
    u = cache.get(users).records[0]
    writer("create", "Interações", [{"Resumo": "nova", "user": [u["id"]]}])
    # Usuários' inverse link field "Interações" changed: its cached answers cannot be trusted
    assert cache.get(users).status == "miss"


def test_mirror_mode_answers_locally(settings, cache, upstream, writer, sandbox) -> None:
    settings.tables["Eventos"].cache_mode = "mirror"
    a = cache.get(spec(table="Eventos", filters={"tipo": "Reunião"}, sort=["Nome"]))
    pages = upstream.reads()
    assert a.source == "mirror" and pages == -(-sandbox.store.count("appBestStagSandbx", "Eventos") // 100)
    b = cache.get(spec(table="Eventos", filters={"tipo": "Viagem"}, fields=["Nome"]))
    assert b.status == "hit" and upstream.reads() == pages  # any query on the table: no request
    writer("create", "Eventos", [{"Nome": "Viagem a Salvador", "tipo": "Viagem"}])
    c = cache.get(spec(table="Eventos", filters={"tipo": "Viagem"}, fields=["Nome"]))
    assert "Viagem a Salvador" in [r["fields"]["Nome"] for r in c.records]
    assert [r["id"] for r in c.records] == direct(sandbox, spec(table="Eventos", filters={"tipo": "Viagem"}))


def test_stale_if_error(cache, sandbox, settings) -> None:
    clock.set_now("2026-11-20T12:00:00Z")
    settings.airtable.max_retries = 1
    settings.airtable.backoff.base_s = 0.001
    s = spec(table="Tarefas", maxRecords=3)
    fresh = cache.get(s)
    clock.advance(301)
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    stale = cache.get(s)
    assert stale.status == "stale" and stale.records == fresh.records and stale.age_s >= 301
    clock.advance(settings.cache.max_stale_s)
    with pytest.raises(UpstreamUnavailable):
        cache.get(s)


def test_dynamic_ttl_stretches_and_shrinks(cache, settings, writer, api) -> None:
    settings.cache.dynamic_ttl.enabled = True
    settings.cache.dynamic_ttl.min_s = 10
    settings.cache.dynamic_ttl.max_s = 10_000
    clock.set_now("2026-11-20T12:00:00Z")
    s = spec(table="Tarefas", maxRecords=5, fields=["Título"])
    cache.get(s)
    clock.advance(301)
    cache.get(s)  # refreshed, unchanged
    st = cache.ttl_state("Tarefas")
    assert st.ttl_s == 450 and "unchanged" in st.reason
    clock.advance(451)
    first = cache.get(s).records[0]["id"]
    api.table("appBestStagSandbx", "Tarefas").update(first, {"Título": "mudou lá fora"})  # another client
    clock.advance(700)
    cache.get(s)
    st = cache.ttl_state("Tarefas")
    assert st.ttl_s < 675 and "outside change" in st.reason


def test_prune_removes_expired_entries(cache) -> None:
    clock.set_now("2026-11-20T12:00:00Z")
    cache.get(spec(table="Tarefas", maxRecords=2), ttl=1)
    n_before = len(cache.store)
    clock.reset()  # real time is later than the pinned instant? prune uses diskcache's own clock
    assert cache.prune()["removed"] >= 0
    assert len(cache.store) <= n_before


def test_set_stores_given_data(cache, upstream) -> None:
    s = spec(table="Tarefas", filters={"status": "A fazer"}, maxRecords=2)
    data = [{"id": "rec00000000000001", "createdTime": "2026-01-01T00:00:00.000Z", "fields": {"Título": "x"}}]
    cache.set(s, data, ttl=60)
    got = cache.get(s)
    assert got.status == "hit" and got.records == data and upstream.reads() == 0


def test_contradiction_answers_empty_without_request(cache, upstream) -> None:
    r = cache.get(spec(table="Usuários", filters={"and": [{"status": "Ativo"}, {"status": "Inativo"}]}))
    assert r.records == [] and upstream.reads() == 0
