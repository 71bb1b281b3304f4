"""Adversarial review (issue 18/19): hostile payloads and pings never crash the feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.feed.payloads import translate
from beststag_cli.query.schema import BaseSchema
from beststag_cli.sandbox import Sandbox
from beststag_cli.sandbox.sample import SAMPLE_BASE_ID

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=12,
)
KEYS = (
    "changedTablesById",
    "createdTablesById",
    "destroyedTableIds",
    "actionMetadata",
    "baseTransactionNumber",
    "timestamp",
    "error",
    "code",
)
TABLE_KEYS = ("createdRecordsById", "changedRecordsById", "destroyedRecordIds", "changedFieldsById")


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sb = Sandbox(Path(tmp_path_factory.mktemp("feedrv")) / "base.sqlite")
    sb.ensure_sample(scale=0.02, seed=1)
    s = BaseSchema.from_json(SAMPLE_BASE_ID, sb.store.base_schema(SAMPLE_BASE_ID))
    yield s
    sb.close()


@st.composite
def odd_payloads(draw: st.DrawFn, table_ids: list[str], field_ids: list[str]) -> dict[str, Any]:
    payload: dict[str, Any] = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4))
    if draw(st.booleans()):
        body: dict[str, Any] = draw(st.dictionaries(st.sampled_from(TABLE_KEYS), json_values, max_size=3))
        rec = {
            "cellValuesByFieldId": draw(st.dictionaries(st.sampled_from(field_ids), json_values, max_size=3)),
            "createdTime": "2026-01-01T00:00:00.000Z",
        }
        body["createdRecordsById"] = {"rec00000000000001": rec}
        body["changedRecordsById"] = {"rec00000000000002": {"current": rec, "unchanged": rec}}
        payload["changedTablesById"] = {draw(st.sampled_from(table_ids)): body}
    return payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_translate_never_raises_on_odd_shapes(schema: BaseSchema, data: st.DataObject) -> None:
    """A payload of odd shape (lists for dicts, missing keys, odd cells) is a gap, never an exception:
    an exception would stop every later pull at the same cursor (a poison payload)."""
    table_ids = [t.id for t in schema.tables]
    field_ids = [f.id for t in schema.tables for f in t.fields]
    payload = data.draw(odd_payloads(table_ids, field_ids))
    t = translate(payload, schema)
    assert isinstance(t.unknown_tables, set)


def test_a_ping_during_another_processs_pull_is_not_lost(settings: Any, sandbox: Any) -> None:
    """`serve`'s pull after a ping returned at once (skipped) when cron's `feed pull` held the base's pull
    lock, and that cron pull may have read its page before the pinged payload existed: the change waited
    for the next ping or cron run. The ping's pull now waits for the lock, then reads from the cursor."""
    from filelock import FileLock

    from beststag_cli.cache import connect
    from beststag_cli.feed import service
    from beststag_cli.server.app import _feed_puller

    gw, cache = connect(settings, sandbox=sandbox)
    try:
        service.enable(gw, gw.journal, ["Tarefas"])
        before = service.status(gw.journal, gw.base_id).cursor
        puller = _feed_puller(settings, gw, cache)
        lock = FileLock(str(settings.paths.locks / f"feed-{gw.base_id}.lock"), timeout=0, thread_local=False)
        lock.acquire()  # cron's pull, which has already read its (empty) page
        try:
            sandbox.api(retry_strategy=None).table(SAMPLE_BASE_ID, "Tarefas").create({"Título": "pinged"})
            puller.request()  # Airtable's ping for that change
            puller.wait_idle(5)  # not an assertion: gives a skipping pull the time to give up
        finally:
            lock.release()
        assert puller.wait_idle(60), "the pinged pull never ended"
        assert puller.last_error is None
        assert service.status(gw.journal, gw.base_id).cursor > before
    finally:
        cache.close()
        gw.close()
