"""Incremental backups from the change feed (issue 19, point 3).

With the feed continuous since the parent, an incremental asks Airtable only for the records the
payloads named (by `RECORD_ID()` batches) and takes deletions from `destroyedRecordIds`: no id
listing. Otherwise it falls back to the listing and says why in the manifest. Both paths run against
the *same history* (two data dirs on one sandbox base: one with the feed, one without), and are proven
by end state: each chain's point-in-time state equals the live base, record for record, and each
restores into an empty base holding exactly the live records (fields, links remapped, files by sha256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beststag_cli.backup.chain import backup_index, table_state
from beststag_cli.backup.layout import find_backup
from beststag_cli.backup.restore import execute_restore, known_mappings, plan_restore
from beststag_cli.backup.runner import run_backup
from beststag_cli.feed import service, since, state
from beststag_cli.gateway.api import Gateway
from beststag_cli.query.schema import BaseSchema
from beststag_cli.sandbox.sample import SAMPLE_BASE_ID

from .conftest import assert_same_state, empty_target, snapshot

TABLES = ["Usuários", "Eventos"]


def _volatile_free(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between two reads of the same state: signed attachment URLs, and the
    sha256 a backup adds to each attachment (the files themselves are compared by the restore checks)."""
    fields = {}
    for k, v in rec["fields"].items():
        if isinstance(v, list) and v and isinstance(v[0], dict) and "filename" in v[0]:
            v = [{x: y for x, y in a.items() if x not in ("url", "thumbnails", "sha256")} for a in v]
        fields[k] = v
    return {"id": rec["id"], "createdTime": rec.get("createdTime"), "fields": fields}


def _state_at(settings: Any, backup_id: str, table: str) -> dict[str, dict[str, Any]]:
    root = settings.paths.backups
    info = find_backup(root, backup_id)
    return {k: _volatile_free(v) for k, v in table_state(info, table, backup_index(root)).items()}


def _live(gw: Gateway, table: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: _volatile_free(r) for r in gw.all(table)}


class Twins:
    """One base, two installations: `feed` (change feed on) and `plain` (no feed), same backups' history."""

    def __init__(self, settings: Any, sandbox: Any, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.feed_settings = settings
        self.plain_settings = settings.model_copy(update={"data_dir": tmp_path / "plain-data"})
        self.feed = Gateway(self.feed_settings, sandbox=sandbox, source="test")
        self.plain = Gateway(self.plain_settings, sandbox=sandbox, source="test")
        self.journal = self.feed.journal
        api = sandbox.api(retry_strategy=None)
        self.other = {t: api.table(SAMPLE_BASE_ID, t) for t in TABLES}  # the outside writer

    def enable(self) -> service.Status:
        return service.enable(self.feed, self.journal, TABLES)

    def backup(self, which: str, backup_type: str) -> tuple[Any, int]:
        """Run a backup; returns its manifest and the requests it sent to the sandbox."""
        gw, settings = (self.feed, self.feed_settings) if which == "feed" else (self.plain, self.plain_settings)
        before = self.sandbox.app.stats.requests
        res = run_backup(settings, gw, backup_type, TABLES)
        assert res.status == "ok", res.failed
        return res.manifest, self.sandbox.app.stats.requests - before

    def outside_changes(self, tag: str) -> None:
        """Creates, updates (links and plain fields) and deletes in both tables, by another client."""
        users, events = self.other["Usuários"], self.other["Eventos"]
        u = users.all(max_records=6)
        e = events.all(max_records=8)
        new_user = users.create({"Nome": f"novo {tag}", "plano": u[0]["fields"].get("plano")})
        users.update(u[1]["id"], {"Nome": f"renomeado {tag}"})
        users.delete(u[2]["id"])
        events.create({"Nome": f"evento {tag}", "participantes": [new_user["id"], u[3]["id"]]})
        events.update(e[0]["id"], {"local": f"sala {tag}", "participantes": [u[4]["id"]]})
        events.batch_delete([e[1]["id"], e[2]["id"]])
        made = events.create({"Nome": f"efêmero {tag}"})
        events.delete(made["id"])  # created and destroyed between two backups

    def close(self) -> None:
        self.feed.close()
        self.plain.close()


@pytest.fixture
def twins(settings: Any, sandbox: Any, tmp_path: Path) -> Any:
    t = Twins(settings, sandbox, tmp_path)
    yield t
    t.close()


def _assert_restores_exactly(twins: Twins, settings: Any, backup_id: str, target: str, seed: int) -> None:
    """Restore `backup_id` into an empty base: it then holds exactly the live records of TABLES."""
    gw = twins.feed if settings is twins.feed_settings else twins.plain
    target_gw = empty_target(twins.sandbox, gw, target, seed=seed)
    plan = plan_restore(settings, gw, backup_id, tables=TABLES, target_base=target)
    execute_restore(settings, gw, plan)
    live = snapshot(gw, TABLES)
    assert_same_state(live, snapshot(target_gw, TABLES), known_mappings(gw.journal, target))


def test_the_feed_and_the_listing_give_the_same_state_and_restore_identically(twins: Twins) -> None:
    twins.enable()
    feed_parent, _ = twins.backup("feed", "complete")
    plain_parent, _ = twins.backup("plain", "complete")
    for t in TABLES:
        assert feed_parent.tables[t].feed_webhook and feed_parent.tables[t].feed_cursor >= 1
        assert plain_parent.tables[t].feed_webhook is None  # that installation has no feed
    twins.outside_changes("1")

    feed_inc, feed_requests = twins.backup("feed", "incremental")
    plain_inc, plain_requests = twins.backup("plain", "incremental")
    for t in TABLES:
        fe, pe = feed_inc.tables[t], plain_inc.tables[t]
        assert (fe.mode, fe.changes, fe.fallback) == ("incremental", "feed", None)
        assert (pe.mode, pe.changes, pe.fallback) == ("incremental", "listing", "the change feed is off")
        assert fe.ids == pe.ids == len(_live(twins.feed, t))
    # the feed's run: the schema, one page of payloads, one RECORD_ID() batch a table — no id listing
    assert feed_requests <= 1 + 1 + len(TABLES), feed_requests
    assert plain_requests > feed_requests

    for t in TABLES:
        live = _live(twins.feed, t)
        assert _state_at(twins.feed_settings, feed_inc.id, t) == live
        assert _state_at(twins.plain_settings, plain_inc.id, t) == live
    _assert_restores_exactly(twins, twins.feed_settings, feed_inc.id, "appRestoreFeedA01", seed=11)
    _assert_restores_exactly(twins, twins.plain_settings, plain_inc.id, "appRestorePlainA1", seed=12)


def test_a_chain_of_feed_incrementals_stays_exact_and_prunes_its_log(twins: Twins) -> None:
    twins.enable()
    twins.backup("feed", "complete")
    ids = []
    for round_ in range(3):
        twins.outside_changes(str(round_))
        m, _ = twins.backup("feed", "incremental")
        assert all(m.tables[t].changes == "feed" for t in TABLES), {t: m.tables[t].fallback for t in TABLES}
        ids.append(m.id)
        for t in TABLES:
            assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)
    # each run pruned the rows its parent's point no longer needs, leaving a mark
    first = find_backup(twins.feed_settings.paths.backups, ids[-1]).manifest
    assert first is not None
    for t in TABLES:
        parent_cursor = find_backup(twins.feed_settings.paths.backups, str(first.tables[t].parent)).manifest
        assert parent_cursor is not None
        rows = twins.journal.query(
            "SELECT record_id, payload FROM feed_records WHERE base = ? AND table_id = ?",
            (SAMPLE_BASE_ID, first.tables[t].table_id),
        )
        pruned = [r["payload"] for r in rows if r["record_id"] == state.PRUNED]
        assert pruned == [parent_cursor.tables[t].feed_cursor]
        assert all(r["payload"] >= pruned[0] for r in rows)
    _assert_restores_exactly(twins, twins.feed_settings, ids[-1], "appRestoreChain01", seed=13)


def _fallbacks(twins: Twins) -> dict[str, str | None]:
    m, _ = twins.backup("feed", "incremental")
    return {t: (m.tables[t].fallback if m.tables[t].changes == "listing" else None) for t in TABLES}


def test_a_parent_taken_before_the_feed_falls_back_then_the_next_one_uses_the_feed(twins: Twins) -> None:
    twins.backup("feed", "complete")  # feed off
    twins.enable()
    twins.outside_changes("a")
    why = _fallbacks(twins)
    assert all(w and "taken without the change feed" in w for w in why.values()), why
    twins.outside_changes("b")
    assert _fallbacks(twins) == dict.fromkeys(TABLES)  # on top of the fallback one: the feed again
    m = twins.backup("feed", "incremental")[0]
    for t in TABLES:
        assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)


def test_lost_payloads_are_a_gap_and_the_incremental_says_so(twins: Twins) -> None:
    from beststag_cli import clock

    twins.enable()
    twins.backup("feed", "complete")
    try:
        twins.outside_changes("velho")
        clock.advance(6 * 86400)
        service.refresh(twins.feed, twins.journal)
        clock.advance(2 * 86400)  # those payloads are 8 days old: Airtable keeps 7
        twins.outside_changes("novo")
        why = _fallbacks(twins)
        twins.outside_changes("depois")
        m = twins.backup("feed", "incremental")[0]  # the fallback's point is after the gap
    finally:
        clock.reset()  # (before it: a backup dated in the future is refused as a parent)
    assert all(w and "gap" in w and "no longer kept" in w for w in why.values()), why
    assert all(m.tables[t].changes == "feed" for t in TABLES), {t: m.tables[t].fallback for t in TABLES}
    for t in TABLES:
        assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)


def test_a_replaced_webhook_and_a_changed_field_each_fall_back(twins: Twins) -> None:
    st = twins.enable()
    twins.backup("feed", "complete")
    twins.sandbox.api().base(SAMPLE_BASE_ID).webhook(st.webhook_id).delete()  # gone at Airtable's end
    twins.outside_changes("x")
    why = _fallbacks(twins)  # the catch-up pull finds the webhook gone
    assert all(w and "gap" in w for w in why.values()), why
    twins.enable()  # a new webhook: other payload numbers
    twins.outside_changes("y")
    why = _fallbacks(twins)
    assert all(w and "another webhook" in w for w in why.values()), why

    twins.sandbox.api().base(SAMPLE_BASE_ID).table("Eventos").create_field("sala nova", "singleLineText")
    twins.outside_changes("z")
    why = _fallbacks(twins)
    assert why["Usuários"] is None and why["Eventos"] and "fields" in why["Eventos"], why
    m = twins.backup("feed", "incremental")[0]
    for t in TABLES:
        assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)


def test_a_record_deleted_after_the_feed_was_read_is_not_in_the_backup(
    twins: Twins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race between the catch-up pull and the fetch: a named record is gone when it is fetched."""
    twins.enable()
    twins.backup("feed", "complete")
    victim = twins.other["Usuários"].create({"Nome": "vai sumir"})
    real = since.catch_up

    def then_delete(*a: Any, **kw: Any) -> Any:
        out = real(*a, **kw)
        twins.other["Usuários"].delete(victim["id"])
        return out

    monkeypatch.setattr(since, "catch_up", then_delete)
    m, _ = twins.backup("feed", "incremental")
    assert m.tables["Usuários"].changes == "feed"
    state_u = _state_at(twins.feed_settings, m.id, "Usuários")
    assert victim["id"] not in state_u and state_u == _live(twins.feed, "Usuários")


def test_a_tampered_parent_id_list_fails_the_table_instead_of_making_a_wrong_backup(twins: Twins) -> None:
    import gzip

    twins.enable()
    twins.backup("feed", "complete")
    twins.outside_changes("1")
    first, _ = twins.backup("feed", "incremental")
    info = find_backup(twins.feed_settings.paths.backups, first.id)
    ids_file = info.path / str(first.tables["Eventos"].ids_file)
    lines = gzip.decompress(ids_file.read_bytes()).decode().splitlines()
    ids_file.write_bytes(gzip.compress(("\n".join(lines[1:]) + "\n").encode()))  # one id dropped
    twins.outside_changes("2")
    res = run_backup(twins.feed_settings, twins.feed, "incremental", TABLES)
    assert res.failed.keys() == {"Eventos"} and "does not match its manifest" in res.failed["Eventos"]
    assert res.manifest.tables["Usuários"].changes == "feed"


def test_the_record_log_keeps_the_last_word_on_each_record(tmp_path: Path) -> None:
    """changes_since against a model: the last payload naming a record decides, marks fall back."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from beststag_cli.journal import Journal

    recs = [f"rec{c * 14}" for c in "ABCDE"]
    event = st.tuples(st.sampled_from(recs), st.sampled_from(["upsert", "destroy"]))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.lists(event, max_size=4), max_size=8), st.integers(1, 9), st.integers(0, 9))
    def check(pages: list[list[tuple[str, str]]], parent: int, gap_at: int) -> None:
        state.save_new(j, "appX", "achAAAAAAAAAAAAAA", "s", None, ["T"])  # a new webhook: no earlier log
        model: dict[str, str] = {}
        for n, page in enumerate(pages, start=1):
            rows: list[state.LogRow] = [("tblT", r, n, k, None) for r, k in page]
            if gap_at == n:
                rows.append((state.ALL_TABLES, state.GAP, n, "gap", "lost"))
            state.advance(j, "appX", n + 1, [], rows)
            if n >= parent:
                for r, k in page:
                    model[r] = k
        now = since.Point("achAAAAAAAAAAAAAA", len(pages) + 1)
        got = since.changes_since(j, "appX", "tblT", since.Point("achAAAAAAAAAAAAAA", parent), now)
        if parent > now.cursor:
            assert isinstance(got, str)
        elif parent <= gap_at <= len(pages):
            assert isinstance(got, str) and "gap" in got
        else:
            assert isinstance(got, since.RecordChanges)
            assert got.upserted == {r for r, k in model.items() if k == "upsert"}
            assert got.destroyed == {r for r, k in model.items() if k == "destroy"}

    j = Journal(tmp_path / "j.sqlite")
    try:
        check()
    finally:
        j.close()


def test_a_backlog_longer_than_max_pages_falls_back(twins: Twins) -> None:
    twins.enable()
    twins.backup("feed", "complete")
    twins.feed_settings.feed.max_pages = 1
    for i in range(8):  # 8 payloads a round: more than one page of 50
        twins.outside_changes(f"lote {i}")
    why = _fallbacks(twins)
    assert all(w and "backlog longer than 1 pages" in w for w in why.values()), why
    m = twins.backup("feed", "incremental")[0]
    for t in TABLES:
        assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)


def test_an_error_payload_is_a_gap_for_the_cache_and_for_the_next_incremental(twins: Twins) -> None:
    """Airtable's `{"error": true, "code": …}` payload says the webhook lost changes: the pull names a gap in
    every table, the cursor moves past it, and the incremental built across it lists instead."""
    import json

    import requests
    from requests.adapters import BaseAdapter

    from beststag_cli.sandbox import SANDBOX_ENDPOINT

    twins.enable()
    twins.backup("feed", "complete")
    twins.outside_changes("antes")
    session = twins.feed.api.session
    real = session.get_adapter(SANDBOX_ENDPOINT + "/")

    class OneErrorPayload(BaseAdapter):  # what Airtable answered: the real page with an error payload added
        done = False

        def send(self, request: Any, **kw: Any) -> Any:
            resp = real.send(request, **kw)
            if "/payloads" not in request.url or OneErrorPayload.done:
                return resp
            OneErrorPayload.done = True
            page = resp.json()
            page["payloads"].append(
                {
                    "timestamp": "2026-01-01T00:00:00.000Z",
                    "baseTransactionNumber": 0,
                    "payloadFormat": "v0",
                    "error": True,
                    "code": "INVALID_FILTERS",
                }
            )
            page["cursor"] += 1
            r = requests.Response()
            r.status_code, r.url, r.request = 200, request.url, request
            r.headers["Content-Type"] = "application/json"
            r._content = json.dumps(page).encode()
            return r

        def close(self) -> None:
            return None

    session.mount(SANDBOX_ENDPOINT + "/", OneErrorPayload())
    res = service.pull(twins.feed, twins.journal, BaseSchema.from_json(SAMPLE_BASE_ID, twins.feed.schema()))
    session.mount(SANDBOX_ENDPOINT + "/", real)
    assert set(res.gaps) >= set(TABLES) and all("INVALID_FILTERS" in w for w in res.gaps.values())
    why = _fallbacks(twins)
    assert all(w and "gap" in w and "lost changes" in w for w in why.values()), why
    m = twins.backup("feed", "incremental")[0]
    assert all(m.tables[t].changes == "feed" for t in TABLES)
    for t in TABLES:
        assert _state_at(twins.feed_settings, m.id, t) == _live(twins.feed, t)


def test_a_planted_link_at_the_feed_lock_lets_the_backup_list_and_touches_nothing(twins: Twins, tmp_path: Path) -> None:
    twins.enable()
    twins.backup("feed", "complete")
    outside = tmp_path / "not-ours.txt"
    outside.write_text("keep me")
    locks = twins.feed_settings.paths.locks
    (locks / f"feed-{SAMPLE_BASE_ID}.lock").unlink(missing_ok=True)
    (locks / f"feed-{SAMPLE_BASE_ID}.lock").symlink_to(outside)
    twins.outside_changes("1")
    why = _fallbacks(twins)
    assert all(w and "could not be read" in w for w in why.values()), why
    assert outside.read_text() == "keep me"
