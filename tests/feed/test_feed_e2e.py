"""The change feed against the sandbox's webhooks API (issue 19, point 2): outside writes reach the cache
through the change sink with no time passing, `enable` is idempotent, and each gap is named.

The outside writer is pyairtable straight to the sandbox (what n8n or a person in Airtable's UI is to
beststag); the truth is a second gateway with no cache. Counts are end state: the cache's answer equals
Airtable's after each pull.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.feed import service
from beststag_cli.query.service import QueryService
from beststag_cli.query.spec import QuerySpec
from beststag_cli.sandbox.sample import SAMPLE_BASE_ID

SPECS = [
    {"table": "Eventos", "filters": {"tipo": "Reunião"}, "fields": ["Nome", "tipo"]},
    {"table": "Eventos", "sort": [{"field": "Nome", "direction": "asc"}], "maxRecords": 5},
    {"table": "Eventos"},
]


def _unsigned(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without attachment URLs: they are signed with an expiry from the moment of each answer."""
    out = []
    for r in records:
        fields = {
            k: [{x: y for x, y in a.items() if x not in ("url", "thumbnails")} for a in v]
            if isinstance(v, list) and v and isinstance(v[0], dict) and "filename" in v[0]
            else v
            for k, v in r["fields"].items()
        }
        out.append({**r, "fields": fields})
    return out


@pytest.fixture
def feed(settings: Any, sandbox: Any) -> Any:
    from beststag_cli.cache import connect
    from beststag_cli.gateway.api import Gateway

    gw, cache = connect(settings, sandbox=sandbox)
    truth = QueryService(Gateway(settings, sandbox=sandbox))
    other = sandbox.api(retry_strategy=None).table(SAMPLE_BASE_ID, "Eventos")

    class Feed:
        def __init__(self) -> None:
            self.gw, self.cache, self.truth, self.other = gw, cache, truth, other
            self.journal = gw.journal

        def enable(self) -> service.Status:
            return service.enable(gw, self.journal, ["Eventos", "Usuários"])

        def pull(self, **kw: Any) -> service.PullResult:
            return service.pull(gw, self.journal, cache.schema(), **kw)

        def assert_exact(self) -> None:
            for raw in SPECS:
                spec = QuerySpec.parse(raw)
                got, want = _unsigned(cache.get(spec).records), _unsigned(truth.run(spec).records)
                assert got == want, (raw, [r["id"] for r in got], [r["id"] for r in want])

    yield Feed()
    cache.close()
    gw.close()


def test_enable_is_idempotent_and_pull_keeps_the_cache_exact_without_time_passing(feed: Any, sandbox: Any) -> None:
    first = feed.enable()
    again = feed.enable()
    assert first.webhook_id == again.webhook_id and again.whole
    hooks = sandbox.api().base(SAMPLE_BASE_ID).webhooks()
    assert [h.id for h in hooks] == [first.webhook_id]  # one webhook, however many enables
    feed.assert_exact()  # every answer cached now
    ids = [r["id"] for r in feed.other.all()]
    created = feed.other.create({"Nome": "fora do beststag", "tipo": "Reunião"})
    feed.other.update(ids[0], {"tipo": "Reunião", "Nome": "aaa primeiro"})
    feed.other.delete(ids[1])
    res = feed.pull()
    assert res.gaps == {} and res.payloads >= 3 and res.records >= 3
    feed.assert_exact()  # no TTL passed: only the feed can have told the cache
    got = feed.cache.get(QuerySpec.parse(SPECS[2])).records
    assert created["id"] in {r["id"] for r in got} and ids[1] not in {r["id"] for r in got}
    # a second pull with nothing new costs one request and changes nothing
    again_res = feed.pull()
    assert (again_res.pages, again_res.payloads, again_res.gaps) == (1, 0, {})


def test_a_deleted_webhook_is_a_gap_for_every_table_and_enable_mends_it(feed: Any, sandbox: Any) -> None:
    st = feed.enable()
    sandbox.api().base(SAMPLE_BASE_ID).webhook(st.webhook_id).delete()  # gone at Airtable's end
    res = feed.pull()
    assert set(res.gaps) == {"Eventos", "Usuários"}
    status = service.status(feed.journal, SAMPLE_BASE_ID)
    assert not status.whole and status.broken_reason and {g.table for g in status.gaps} == {"Eventos", "Usuários"}
    mended = feed.enable()
    assert mended.webhook_id != st.webhook_id
    healed = feed.pull()
    assert healed.gaps == {} and healed.healed
    assert service.status(feed.journal, SAMPLE_BASE_ID).whole


def test_payloads_the_server_no_longer_keeps_are_a_gap(feed: Any) -> None:
    feed.enable()
    feed.other.create({"Nome": "antigo", "tipo": "Reunião"})
    clock.advance(6 * 86400)
    service.refresh(feed.gw, feed.journal)  # the webhook lives on
    clock.advance(2 * 86400)  # the first payload is now 8 days old: Airtable keeps 7
    feed.other.create({"Nome": "novo", "tipo": "Reunião"})
    try:
        res = feed.pull()
    finally:
        clock.reset()
    assert set(res.gaps) == {"Eventos", "Usuários"}
    assert all("no longer kept" in why for why in res.gaps.values())
    feed.assert_exact()  # the gap made the cache forget the tables: still exact


def test_a_backlog_longer_than_max_pages_is_a_gap_until_the_next_pull(feed: Any) -> None:
    feed.enable()
    feed.assert_exact()  # answers cached: after the cut pull they must have been forgotten, not kept stale
    for i in range(55):  # one payload a request: 55 payloads, more than a page of 50
        feed.other.create({"Nome": f"lote {i}", "tipo": "Reunião"})
    cut = feed.pull(max_pages=1)
    assert cut.pages == 1 and set(cut.gaps) == {"Eventos", "Usuários"}
    feed.assert_exact()
    rest = feed.pull()
    assert rest.gaps == {} and rest.healed
    feed.assert_exact()


def test_a_pull_while_another_runs_does_nothing_and_the_cursor_never_goes_back(feed: Any) -> None:
    from filelock import FileLock

    feed.enable()
    feed.other.create({"Nome": "durante", "tipo": "Reunião"})
    lock = FileLock(str(feed.gw.settings.paths.locks / f"feed-{SAMPLE_BASE_ID}.lock"), timeout=0)
    with lock:  # another process (cron's `feed pull`, serve's loop) is pulling
        busy = feed.pull()
    assert busy.skipped and (busy.pages, busy.payloads) == (0, 0)
    assert service.status(feed.journal, SAMPLE_BASE_ID).cursor == 1  # untouched
    done = feed.pull()
    assert not done.skipped and done.payloads == 1 and done.cursor == 2


def test_a_covered_table_needs_no_revalidation_listing_while_the_feed_is_fresh(feed: Any, sandbox: Any) -> None:
    calls: list[str] = []
    sandbox.app.observers.append(lambda m, route, status: calls.append(route))
    feed.enable()
    feed.assert_exact()  # answers cached
    ttl = feed.gw.settings.cache.dynamic_ttl.max_s + 1  # past every TTL, within max_stale_s (kept for revalidation)
    try:
        feed.other.create({"Nome": "de fora", "tipo": "Reunião"})
        clock.advance(ttl)  # every answer expired
        feed.pull()  # the feed is fresh: it was just pulled
        calls.clear()
        feed.cache.get(QuerySpec.parse(SPECS[0]))
        # no listing: the feed told the cache everything (answers that read fields computed from other
        # tables, like SPECS[2]'s lookup, are still refetched: their changes are in no payload of this table)
        assert "list" not in calls, calls
        feed.assert_exact()
        # a feed that was not pulled for a while covers nothing: the old revalidation lists
        feed.other.create({"Nome": "de fora 2", "tipo": "Reunião"})
        clock.advance(ttl)
        calls.clear()
        feed.cache.get(QuerySpec.parse(SPECS[0]))
        assert "list" in calls
        feed.assert_exact()
    finally:
        clock.reset()


@pytest.mark.parametrize("cursor", [0, "7", None, True, 1.5])
def test_an_answer_outside_the_cursor_model_is_a_gap_not_a_crash(feed: Any, cursor: Any) -> None:
    """Airtable's cursor only grows and is an integer; any other answer (a proxy's, a future format)
    is a gap for every table, and the stored cursor stays where it was."""
    import requests
    from requests.adapters import BaseAdapter

    from beststag_cli.sandbox import SANDBOX_ENDPOINT

    feed.enable()
    real = feed.gw.api.session.get_adapter(SANDBOX_ENDPOINT + "/")

    class OddCursor(BaseAdapter):
        def send(self, request: Any, **kw: Any) -> Any:
            if "/payloads" not in request.url:
                return real.send(request, **kw)
            r = requests.Response()
            r.status_code, r.url, r.request = 200, request.url, request
            r.headers["Content-Type"] = "application/json"
            r._content = json.dumps({"payloads": [], "cursor": cursor, "mightHaveMore": False}).encode()
            return r

        def close(self) -> None:
            return None

    feed.gw.api.session.mount(SANDBOX_ENDPOINT + "/", OddCursor())
    start = service.status(feed.journal, SAMPLE_BASE_ID).cursor
    res = feed.pull()
    assert set(res.gaps) == {"Eventos", "Usuários"} and "unusable cursor" in next(iter(res.gaps.values()))
    assert service.status(feed.journal, SAMPLE_BASE_ID).cursor == start


def test_an_echo_is_skipped_but_a_later_return_to_the_same_state_is_not(feed: Any) -> None:
    """Own write S, someone else's T, then back to S: the feed skips only the echo of S (the state the cache
    applied); T and the return to S are applied, so the cache ends exact without time passing."""
    from beststag_cli.query.writes import Writer, to_records

    feed.enable()
    feed.assert_exact()
    rid = feed.other.all(max_records=1)[0]["id"]
    mine = {"id": rid, "fields": {"tipo": "Reunião", "Nome": "estado S"}}
    Writer(feed.gw).write("update", "Eventos", to_records("update", [mine]))  # S, applied at once
    feed.other.update(rid, {"tipo": "Consulta", "Nome": "estado T"})  # T: only the feed tells
    feed.other.update(rid, {"tipo": "Reunião", "Nome": "estado S"})  # back to S
    res = feed.pull()
    assert res.gaps == {}
    feed.assert_exact()
    got = [r for r in feed.cache.get(QuerySpec.parse(SPECS[0])).records if r["id"] == rid]
    assert got and got[0]["fields"]["Nome"] == "estado S"


def test_a_table_with_computed_fields_is_forgotten_not_patched_and_stays_exact(feed: Any, sandbox: Any) -> None:
    """Tarefas has a lookup and a last-modified time, whose cells the payloads leave out: its record changes
    cannot replace cached records (they would lose those values), so the feed makes the cache forget the
    table — exact, not a gap."""
    tarefas = [
        {"table": "Tarefas", "filters": {"status": "A fazer"}, "fields": ["Título", "status"]},
        {"table": "Tarefas"},
    ]
    feed.enable()
    for raw in tarefas:
        feed.cache.get(QuerySpec.parse(raw))
    t = sandbox.api(retry_strategy=None).table(SAMPLE_BASE_ID, "Tarefas")
    rid = t.all(max_records=1)[0]["id"]
    t.update(rid, {"status": "A fazer", "Título": "mudou lá fora"})
    res = feed.pull()
    assert res.gaps == {}
    for raw in tarefas:
        spec = QuerySpec.parse(raw)
        assert _unsigned(feed.cache.get(spec).records) == _unsigned(feed.truth.run(spec).records), raw


def test_an_expired_webhook_is_a_gap_though_its_old_payloads_still_list(feed: Any) -> None:
    """Airtable keeps an expired webhook's past payloads listable for 7 more days but records nothing new:
    an empty page must not read as "nothing changed"."""
    feed.enable()
    feed.assert_exact()
    try:
        clock.advance(7 * 86400 + 60)  # no refresh, no pull: the webhook expired a minute ago
        feed.other.create({"Nome": "depois do fim", "tipo": "Reunião"})
        res = feed.pull()
        status = service.status(feed.journal, SAMPLE_BASE_ID)
    finally:
        clock.reset()
    assert set(res.gaps) == {"Eventos", "Usuários"} and all("expired" in w for w in res.gaps.values()), res.gaps
    assert status.broken_reason and "expired" in status.broken_reason
    feed.assert_exact()  # forgotten, so read again: the new record is there


def test_pulls_keep_the_webhook_alive_and_the_expiry_check_learns_it(feed: Any, sandbox: Any) -> None:
    """Listing payloads extends an active webhook's life at Airtable; near the expiry beststag stored, a
    pull asks (one request) and stores the later one instead of calling the feed broken."""
    first = feed.enable().expiration
    try:
        clock.advance(3 * 86400)
        assert feed.pull().gaps == {}  # extends the webhook's life at Airtable's end to day 10
        clock.advance(int(3.5 * 86400))  # day 6.5: within a day of the stored expiry (day 7)
        feed.other.create({"Nome": "ainda vivo", "tipo": "Reunião"})
        res = feed.pull()
        later = service.status(feed.journal, SAMPLE_BASE_ID).expiration
    finally:
        clock.reset()
    assert res.gaps == {} and res.payloads == 1
    assert later is not None and first is not None and later > first


def test_an_outside_update_entering_a_filtered_answer_is_patched_in_with_the_creation_time_known(
    feed: Any, sandbox: Any
) -> None:
    """A payload's changed record has no `createdTime`: the cache takes it from another cached answer
    holding the record, so the record enters the filtered answer in Airtable's place — the answer is
    patched, not dropped and fetched again (before: one refetch per answer the record entered)."""
    feed.enable()
    feed.assert_exact()  # SPECS[2] (every Eventos record, with createdTime) cached too
    outside = next(r for r in feed.other.all() if r["fields"].get("tipo") != "Reunião")
    feed.other.update(outside["id"], {"tipo": "Reunião"})
    assert feed.pull().gaps == {}
    calls: list[str] = []
    sandbox.app.observers.append(lambda m, route, status: calls.append(route))
    spec = QuerySpec.parse(SPECS[0])
    got = feed.cache.get(spec)
    assert got.status == "hit" and calls == []  # patched by the pull: no listing, no refetch
    assert outside["id"] in {r["id"] for r in got.records}
    assert _unsigned(got.records) == _unsigned(feed.truth.run(spec).records)
