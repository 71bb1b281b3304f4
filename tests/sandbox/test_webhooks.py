"""The sandbox's webhooks API, driven by pyairtable 3.5.1's real Base/Webhook/WebhookNotification.

Every payload goes through pyairtable's pydantic models (`Webhook.payloads()` parses each one), which
is the fidelity check the issue asks for; raw requests check statuses and error bodies.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from pyairtable import Api, Base
from pyairtable.models import WebhookNotification, WebhookPayload

from beststag_cli import clock
from beststag_cli.sandbox import Sandbox

BASE_ID = "appWebhookTests01"
SPEC_DATA = {"options": {"filters": {"dataTypes": ["tableData"]}}}
SPEC = {
    "name": "Hooks",
    "tables": [
        {
            "name": "Items",
            "fields": [
                {"name": "Name", "type": "singleLineText"},
                {"name": "Count", "type": "number", "options": {"precision": 0}},
                {"name": "Done", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
                {"name": "Tags", "type": "multipleSelects", "options": {"choices": [{"name": "a"}, {"name": "b"}]}},
                {"name": "Owner", "type": "multipleRecordLinks", "options": {"linkedTable": "People"}},
                {"name": "Files", "type": "multipleAttachments"},
            ],
        },
        {"name": "People", "fields": [{"name": "Name", "type": "singleLineText"}]},
    ],
}


@pytest.fixture
def hsb(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path / "hooks" / "base.sqlite")
    sb.store.create_base(SPEC, BASE_ID, seed=7)
    sb.store.webhooks.ping_backoff_s = 0.01  # retries in milliseconds, not seconds
    yield sb
    sb.close()


@pytest.fixture
def hapi(hsb: Sandbox) -> Api:
    return hsb.api(retry_strategy=None)


@pytest.fixture
def base(hapi: Api) -> Base:
    return hapi.base(BASE_ID)


def _ids(base: Base) -> dict[str, str]:
    """'Items.Name' → field id, 'Items' → table id."""
    out = {}
    for t in base.schema(force=True).tables:
        out[t.name] = t.id
        for f in t.fields:
            out[f"{t.name}.{f.name}"] = f.id
    return out


def _raw(hapi: Api, method: str, path: str, **kw: Any) -> requests.Response:
    return hapi.session.request(method, f"{hapi.endpoint_url}/v0/bases/{BASE_ID}/{path}", **kw)


def _hook(base: Base, spec: dict[str, Any] = SPEC_DATA, url: str = "https://example.com/") -> Any:
    made = base.add_webhook(url, spec)
    hook = base.webhook(made.id)
    return made, hook


# ---------------------------------------------------------------- pyairtable's integration test, here


def test_pyairtable_integration_flow(base: Base) -> None:
    """tests/integration/test_integration_webhooks.py of pyairtable, against the sandbox."""
    ids = _ids(base)
    table = base.table("Items")
    _, webhook = _hook(base)
    webhook.disable_notifications()
    created = table.create({"Name": "Hey there!"})
    payloads = list(webhook.payloads())
    assert len(payloads) == 1
    record_created = payloads[0].changed_tables_by_id[ids["Items"]].created_records_by_id[created["id"]]
    assert record_created.cell_values_by_field_id == {ids["Items.Name"]: "Hey there!"}
    for index in range(20):
        table.update(created["id"], {"Name": str(index)})
    later = list(webhook.payloads(cursor=payloads[0].cursor + 1))
    assert [
        int(
            p.changed_tables_by_id[ids["Items"]]
            .changed_records_by_id[created["id"]]
            .current.cell_values_by_field_id[ids["Items.Name"]]
        )
        for p in later
    ] == list(range(20))
    assert [p.base_transaction_number for p in later] == sorted({p.base_transaction_number for p in later})


def test_create_answer_and_list_shape(base: Base, hapi: Api) -> None:
    clock.set_now("2026-03-01T10:00:00Z")
    made, hook = _hook(base)
    assert made.id.startswith("ach") and len(made.id) == 17
    assert len(__import__("base64").b64decode(made.mac_secret_base64)) == 32
    assert made.expiration_time.isoformat() == "2026-03-08T10:00:00+00:00"
    assert hook.is_hook_enabled and hook.are_notifications_enabled and hook.cursor_for_next_payload == 1
    assert hook.notification_url == "https://example.com/"
    raw = _raw(hapi, "GET", "webhooks").json()["webhooks"][0]
    assert set(raw) == {
        "id",
        "areNotificationsEnabled",
        "cursorForNextPayload",
        "isHookEnabled",
        "lastSuccessfulNotificationTime",
        "notificationUrl",
        "lastNotificationResult",
        "expirationTime",
        "specification",
    }
    assert raw["specification"] == SPEC_DATA
    # notificationUrl is optional
    r = _raw(hapi, "POST", "webhooks", json={"specification": SPEC_DATA})
    assert r.status_code == 200 and set(r.json()) == {"id", "macSecretBase64", "expirationTime"}


def test_cursor_pages_of_50(base: Base, hapi: Api) -> None:
    made, hook = _hook(base)
    table = base.table("Items")
    recs = table.batch_create([{"Name": f"r{i}"} for i in range(10)])
    for i in range(60):
        table.update(recs[i % 10]["id"], {"Count": i})
    page = _raw(hapi, "GET", f"webhooks/{made.id}/payloads").json()
    assert (len(page["payloads"]), page["cursor"], page["mightHaveMore"], page["payloadFormat"]) == (50, 51, True, "v0")
    rest = _raw(hapi, "GET", f"webhooks/{made.id}/payloads", params={"cursor": 51}).json()
    assert (len(rest["payloads"]), rest["cursor"], rest["mightHaveMore"]) == (11, 62, False)
    empty = _raw(hapi, "GET", f"webhooks/{made.id}/payloads", params={"cursor": 62, "limit": 5}).json()
    assert (empty["payloads"], empty["cursor"], empty["mightHaveMore"]) == ([], 62, False)
    every = list(hook.payloads())
    assert [p.cursor for p in every] == list(range(1, 62))
    assert list(hook.payloads(cursor=40, limit=3))[-1].cursor == 42
    assert base.webhook(made.id).cursor_for_next_payload == 62
    for bad in ({"limit": 51}, {"limit": 0}, {"cursor": 0}, {"cursor": "x"}, {"other": 1}):
        r = _raw(hapi, "GET", f"webhooks/{made.id}/payloads", params=bad)
        assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN", bad


def test_delete_enable_disable_and_unknown_webhook(base: Base, hapi: Api) -> None:
    made, hook = _hook(base)
    hook.disable_notifications()
    assert base.webhook(made.id).are_notifications_enabled is False
    hook.enable_notifications()
    assert base.webhook(made.id).are_notifications_enabled is True
    r = _raw(hapi, "POST", f"webhooks/{made.id}/enableNotifications", json={"enable": "yes"})
    assert r.status_code == 422
    hook.delete()
    assert base.webhooks() == []
    for method, path in (
        ("GET", f"webhooks/{made.id}/payloads"),
        ("POST", f"webhooks/{made.id}/refresh"),
        ("DELETE", f"webhooks/{made.id}"),
        ("POST", "webhooks/achNoSuchHook00000/enableNotifications"),
    ):
        r = _raw(hapi, method, path, json={"enable": True})
        assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"}), path
    r = hapi.session.get(f"{hapi.endpoint_url}/v0/bases/appNoSuchBase0000/webhooks")
    assert r.status_code == 403 and r.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_at_most_ten_webhooks_a_base(base: Base, hapi: Api) -> None:
    for _ in range(10):
        base.add_webhook("https://example.com/", SPEC_DATA)
    r = _raw(hapi, "POST", "webhooks", json={"specification": SPEC_DATA})
    assert r.status_code == 422 and r.json()["error"]["type"] == "TOO_MANY_WEBHOOKS"
    base.webhooks()[0].delete()
    assert _raw(hapi, "POST", "webhooks", json={"specification": SPEC_DATA}).status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"options": {}},
        {"options": {"filters": {}}},
        {"options": {"filters": {"dataTypes": []}}},
        {"options": {"filters": {"dataTypes": ["records"]}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblNoSuchTable000"}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "watchDataInFieldIds": ["fldNoSuchField000"]}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "fromSources": ["telepathy"]}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "colour": 1}}},
        {"options": {"filters": {"dataTypes": ["tableData"]}, "includes": {"includePreviousCellValues": 1}}},
    ],
)
def test_invalid_specification_is_422(hapi: Api, spec: dict[str, Any]) -> None:
    r = _raw(hapi, "POST", "webhooks", json={"notificationUrl": "https://example.com/", "specification": spec})
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


# ---------------------------------------------------------------- filters and includes


def test_filters_scope_fields_sources_and_change_types(base: Base) -> None:
    ids = _ids(base)
    items, people = base.table("Items"), base.table("People")
    _, scoped = _hook(base, {"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": ids["People"]}}})
    _, watched = _hook(
        base, {"options": {"filters": {"dataTypes": ["tableData"], "watchDataInFieldIds": [ids["Items.Count"]]}}}
    )
    _, client_only = _hook(base, {"options": {"filters": {"dataTypes": ["tableData"], "fromSources": ["client"]}}})
    _, adds = _hook(base, {"options": {"filters": {"dataTypes": ["tableData"], "changeTypes": ["add"]}}})
    rec = items.create({"Name": "x"})
    items.update(rec["id"], {"Name": "y"})  # not a watched field
    items.update(rec["id"], {"Count": 2})
    person = people.create({"Name": "p"})
    items.delete(rec["id"])

    def tables(hook: Any) -> list[list[str]]:
        return [sorted(p.changed_tables_by_id) for p in hook.payloads()]

    assert tables(scoped) == [[ids["People"]]]
    assert tables(client_only) == []  # every sandbox write is source publicApi
    w = list(watched.payloads())
    changed = [
        p.changed_tables_by_id[ids["Items"]].changed_records_by_id for p in w if ids["Items"] in p.changed_tables_by_id
    ]
    assert [list(c[rec["id"]].current.cell_values_by_field_id) for c in changed if c] == [[ids["Items.Count"]]]
    a = list(adds.payloads())
    assert [sorted(p.changed_tables_by_id[t].created_records_by_id) for p in a for t in p.changed_tables_by_id] == [
        [rec["id"]],
        [person["id"]],
    ]


def test_previous_and_unchanged_only_when_included(base: Base) -> None:
    ids = _ids(base)
    items = base.table("Items")
    _, plain = _hook(base)
    _, rich = _hook(
        base,
        {
            "options": {
                "filters": {"dataTypes": ["tableData"]},
                "includes": {"includePreviousCellValues": True, "includeCellValuesInFieldIds": [ids["Items.Name"]]},
            }
        },
    )
    rec = items.create({"Name": "n", "Count": 1, "Tags": ["a"]})
    items.update(rec["id"], {"Count": 5, "Tags": []})
    p = list(plain.payloads())[-1].changed_tables_by_id[ids["Items"]].changed_records_by_id[rec["id"]]
    assert p.previous is None and p.unchanged is None
    # a cleared cell is null in current ("Cell value V2 or null by fieldId")
    assert p.current.cell_values_by_field_id == {ids["Items.Count"]: 5, ids["Items.Tags"]: None}
    r = list(rich.payloads())[-1].changed_tables_by_id[ids["Items"]].changed_records_by_id[rec["id"]]
    assert r.previous is not None
    prev = r.previous.cell_values_by_field_id
    # selects in payloads use the v2 cell format: {id, name, color} (reference §4.3)
    assert prev[ids["Items.Count"]] == 1 and [c["name"] for c in prev[ids["Items.Tags"]]] == ["a"]
    assert set(prev[ids["Items.Tags"]][0]) == {"id", "name", "color"} and prev[ids["Items.Tags"]][0]["id"].startswith(
        "sel"
    )
    assert r.unchanged is not None and r.unchanged.cell_values_by_field_id == {ids["Items.Name"]: "n"}
    # an update that changes nothing produces no payload
    before = base.webhook(plain.id).cursor_for_next_payload
    items.update(rec["id"], {"Count": 5})
    assert base.webhook(plain.id).cursor_for_next_payload == before


def test_typecast_choice_is_a_field_change_and_links_change_both_tables(base: Base) -> None:
    ids = _ids(base)
    items, people = base.table("Items"), base.table("People")
    _, fields_hook = _hook(
        base,
        {
            "options": {
                "filters": {"dataTypes": ["tableFields"]},
                "includes": {"includePreviousFieldDefinitions": True},
            }
        },
    )
    _, data_hook = _hook(base)
    person = people.create({"Name": "Ana"})
    rec = items.create({"Name": "x", "Tags": ["brand new"], "Owner": [person["id"]]}, typecast=True)
    (fp,) = list(fields_hook.payloads())
    changed = fp.changed_tables_by_id[ids["Items"]].changed_fields_by_id[ids["Items.Tags"]]
    assert changed.previous is not None
    last = list(data_hook.payloads())[-1]
    assert sorted(last.changed_tables_by_id) == sorted([ids["Items"], ids["People"]])
    inverse = last.changed_tables_by_id[ids["People"]].changed_records_by_id[person["id"]]
    # links in payloads use the v2 cell format: [{id, name}] with the primary value as name
    assert list(inverse.current.cell_values_by_field_id.values()) == [[{"id": rec["id"], "name": "x"}]]
    created = last.changed_tables_by_id[ids["Items"]].created_records_by_id[rec["id"]].cell_values_by_field_id
    assert created[ids["Items.Owner"]] == [{"id": person["id"], "name": "Ana"}]


def test_field_options_change_is_in_the_raw_payload(base: Base, hapi: Api) -> None:
    ids = _ids(base)
    made, _ = _hook(base, {"options": {"filters": {"dataTypes": ["tableFields"]}}})
    base.table("Items").create({"Tags": ["c"]}, typecast=True)
    raw = _raw(hapi, "GET", f"webhooks/{made.id}/payloads").json()["payloads"][0]
    cur = raw["changedTablesById"][ids["Items"]]["changedFieldsById"][ids["Items.Tags"]]["current"]
    assert [c["name"] for c in cur["options"]["choices"]] == ["a", "b", "c"]
    WebhookPayload.model_validate(raw)


def test_upload_attachment_produces_a_payload(base: Base) -> None:
    ids = _ids(base)
    _, hook = _hook(base)
    rec = base.table("Items").create({"Name": "f"})
    base.table("Items").upload_attachment(rec["id"], "Files", "a.txt", content=b"hello", content_type="text/plain")
    last = list(hook.payloads())[-1]
    cells = last.changed_tables_by_id[ids["Items"]].changed_records_by_id[rec["id"]].current.cell_values_by_field_id
    (att,) = cells[ids["Items.Files"]]
    assert (att["filename"], att["size"], att["type"]) == ("a.txt", 5, "text/plain")


def test_writes_of_another_connection_are_recorded(base: Base, hsb: Sandbox) -> None:
    """Another client of the same data file (another process in real use) produces payloads too."""
    ids = _ids(base)
    _, hook = _hook(base)
    other = Sandbox(hsb.path)
    try:
        rec = other.api().base(BASE_ID).table("Items").create({"Name": "outside"})
    finally:
        other.close()
    (p,) = list(hook.payloads())
    assert rec["id"] in p.changed_tables_by_id[ids["Items"]].created_records_by_id


# ---------------------------------------------------------------- expiry, refresh, retention (sandbox clock)


def test_expiry_refresh_and_retention_on_the_sandbox_clock(base: Base, hapi: Api) -> None:
    clock.set_now("2026-03-01T00:00:00Z")
    items = base.table("Items")
    made, hook = _hook(base)
    items.create({"Name": "day0"})
    clock.advance(timedelta(days=6).total_seconds())
    hook.extend_expiration()
    assert base.webhook(made.id).expiration_time.isoformat() == "2026-03-14T00:00:00+00:00"
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    # day 7: the day-0 payload is past retention; the cursor is not reset
    assert list(hook.payloads()) == []  # listing payloads also extends the life: now day 7 + 7
    assert base.webhook(made.id).cursor_for_next_payload == 2
    assert base.webhook(made.id).expiration_time.isoformat() == "2026-03-15T00:00:01+00:00"
    items.create({"Name": "day7"})
    clock.advance(timedelta(days=3).total_seconds())
    items.create({"Name": "day10"})
    clock.advance(timedelta(days=4, seconds=1).total_seconds())
    # day 14 + 2 s: expired, so disabled, no new payloads, still listed with its past payloads (the
    # day-7 one is past retention, the day-10 one is not)
    items.create({"Name": "too late"})
    w = base.webhook(made.id)
    assert w.is_hook_enabled is False and w.cursor_for_next_payload == 4
    r = _raw(hapi, "POST", f"webhooks/{made.id}/refresh")
    assert r.status_code == 422
    # (pyairtable numbers payloads from the cursor it asked for, so tell them by transaction number)
    assert [p.base_transaction_number for p in hook.payloads()] == [3]
    assert base.webhook(made.id).is_hook_enabled is False  # listing does not revive an expired hook
    clock.advance(timedelta(days=7).total_seconds())
    assert base.webhooks() == []  # gone after the extra 7 days


# ---------------------------------------------------------------- the ping


class _Receiver:
    """A loopback HTTP server that records pings and answers with the next scripted status."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.got: queue.Queue[tuple[str, str]] = queue.Queue()
        self.statuses = list(statuses or [])
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                status = rec.statuses.pop(0) if rec.statuses else 204
                rec.got.put((body, self.headers.get("X-Airtable-Content-MAC", "")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping"

    def next(self) -> tuple[str, str]:
        return self.got.get(timeout=10)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_ping_is_signed_and_parses_with_pyairtable(base: Base, hsb: Sandbox, receiver: _Receiver) -> None:
    made = base.add_webhook(receiver.url, SPEC_DATA)
    body, header = receiver.next()  # "a ping shortly after" creation
    note = WebhookNotification.from_request(body, header, made.mac_secret_base64)
    assert (note.base.id, note.webhook.id) == (BASE_ID, made.id)
    base.table("Items").create({"Name": "ping me"})
    body, header = receiver.next()
    assert WebhookNotification.from_request(body, header, made.mac_secret_base64).webhook.id == made.id
    with pytest.raises(ValueError):
        WebhookNotification.from_request(body, header, "d3Jvbmcgc2VjcmV0")
    assert set(json.loads(body)) == {"base", "webhook", "timestamp"}
    assert hsb.store.webhooks.drain()
    w = base.webhook(made.id)
    assert w.last_notification_result is not None and w.last_notification_result.success


def test_ping_retried_when_the_receiver_answers_500_then_200(base: Base, hsb: Sandbox) -> None:
    rcv = _Receiver([500, 200])
    try:
        made = base.add_webhook(rcv.url, SPEC_DATA)
        first, second = rcv.next(), rcv.next()
        assert json.loads(first[0])["webhook"] == json.loads(second[0])["webhook"] == {"id": made.id}
        for body, header in (first, second):
            WebhookNotification.from_request(body, header, made.mac_secret_base64)
        assert hsb.store.webhooks.drain()  # the result is saved right after the answer is read
        res = base.webhook(made.id).last_notification_result
        assert res is not None and res.success and res.retry_number == 1
        assert rcv.got.empty()
    finally:
        rcv.close()


def test_no_ping_when_notifications_are_disabled(base: Base, hsb: Sandbox, receiver: _Receiver) -> None:
    quiet = base.add_webhook(receiver.url, SPEC_DATA)
    receiver.next()  # its creation ping
    base.webhook(quiet.id).disable_notifications()
    loud = base.add_webhook(receiver.url, SPEC_DATA)
    receiver.next()
    base.table("Items").create({"Name": "x"})
    # one ping thread delivers in webhook order: had `quiet` been queued, its ping would come first
    body, _ = receiver.next()
    assert json.loads(body)["webhook"]["id"] == loud.id
    assert hsb.store.webhooks.drain() and receiver.got.empty()


def test_non_loopback_urls_are_not_contacted(base: Base, hsb: Sandbox) -> None:
    made = base.add_webhook("https://example.com/hook", SPEC_DATA)
    assert hsb.store.webhooks.drain()
    res = base.webhook(made.id).last_notification_result
    assert res is not None and not res.success and res.will_be_retried is False
    assert res.error is not None and "loopback" in res.error.message


def test_served_over_a_loopback_socket(hsb: Sandbox, receiver: _Receiver) -> None:
    """`sandbox serve`: the same routes on a real socket, the ping from the server's process."""
    from beststag_cli.sandbox.server import serve_in_thread

    server, thread = serve_in_thread(hsb.app, "127.0.0.1", 0)
    try:
        api = Api("sandbox", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", retry_strategy=None)
        api.session.trust_env = False
        base = api.base(BASE_ID)
        made = base.add_webhook(receiver.url, SPEC_DATA)
        receiver.next()
        rec = base.table("Items").create({"Name": "over http"})
        body, header = receiver.next()
        assert WebhookNotification.from_request(body, header, made.mac_secret_base64).webhook.id == made.id
        (p,) = list(base.webhook(made.id).payloads())
        assert rec["id"] in next(iter(p.changed_tables_by_id.values())).created_records_by_id
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _schema_write(hsb: Sandbox, change: Any) -> None:
    """A schema change the way the store's metadata writes make one: edit the BaseDef, save it, commit."""
    store = hsb.store

    def op() -> None:
        b = store._base(BASE_ID)
        change(b)
        store._save_schema(b)
        store._commit({t.id for t in b.tables}, BASE_ID)

    store._write(op)


def test_schema_changes_become_table_and_field_payloads(base: Base, hsb: Sandbox) -> None:
    from beststag_cli.sandbox.schema import FieldDef, TableDef

    ids = _ids(base)
    spec = {
        "options": {
            "filters": {"dataTypes": ["tableFields", "tableMetadata"]},
            "includes": {"includePreviousFieldDefinitions": True},
        }
    }
    _, hook = _hook(base, spec)
    _, data_only = _hook(base)

    def edit(b: Any) -> None:
        items = b.table_by_id(ids["Items"])
        items.name, items.description = "Things", "renamed"
        items.field_by_id(ids["Items.Count"]).name = "Qty"
        items.fields = [f for f in items.fields if f.id != ids["Items.Done"]]
        items.fields.append(FieldDef("fldNewField000001", "Notes", "multilineText"))
        items.reindex()
        b.tables = [t for t in b.tables if t.id != ids["People"]]
        b.tables.append(
            TableDef(
                "tblNewTable000001",
                "Fresh",
                "fldNewField000002",
                [FieldDef("fldNewField000002", "Name", "singleLineText")],
                [],
            )
        )

    _schema_write(hsb, edit)
    (p,) = list(hook.payloads())
    tc = p.changed_tables_by_id[ids["Items"]]
    assert tc.changed_metadata is not None
    assert (tc.changed_metadata.current.name, tc.changed_metadata.previous.name) == ("Things", "Items")
    assert tc.created_fields_by_id["fldNewField000001"].type == "multilineText"
    renamed = tc.changed_fields_by_id[ids["Items.Count"]]
    assert (renamed.current.name, renamed.previous and renamed.previous.name) == ("Qty", "Count")
    assert tc.destroyed_field_ids == [ids["Items.Done"]]
    assert p.destroyed_table_ids == [ids["People"]]
    fresh = p.created_tables_by_id["tblNewTable000001"]
    assert fresh.metadata is not None and fresh.metadata.name == "Fresh"
    assert list(fresh.fields_by_id) == ["fldNewField000002"]
    assert list(data_only.payloads()) == []  # tableData only: schema changes are not its business
    _, tables_only = _hook(base, {"options": {"filters": {"dataTypes": ["tableMetadata"]}}})
    _schema_write(hsb, lambda b: b.tables.pop())
    raw = hsb.store.webhooks.payloads(BASE_ID, tables_only.id, 1, 50)["payloads"]
    assert [set(p) - {"timestamp", "baseTransactionNumber", "actionMetadata", "payloadFormat"} for p in raw] == [
        {"destroyedTableIds"}
    ]


def test_record_schema_change_for_writers_that_bypass_the_schema_row(base: Base, hsb: Sandbox) -> None:
    from beststag_cli.sandbox import webhooks

    ids = _ids(base)
    _, hook = _hook(base, {"options": {"filters": {"dataTypes": ["tableMetadata"]}}})
    store = hsb.store
    old = store.base_def(BASE_ID).to_json()
    new = json.loads(json.dumps(old))
    new["tables"][0]["name"] = "Elsewhere"

    def op() -> None:
        webhooks.record_schema_change(store, BASE_ID, old, new)
        store._commit(set())

    store._write(op)
    (p,) = list(hook.payloads())
    md = p.changed_tables_by_id[ids["Items"]].changed_metadata
    assert md is not None and (md.previous.name, md.current.name) == ("Items", "Elsewhere")


def test_webhooks_go_with_a_dropped_base(base: Base, hsb: Sandbox) -> None:
    _hook(base)
    base.table("Items").create({"Name": "x"})
    hsb.store.drop_base(BASE_ID)
    hsb.store.create_base(SPEC, BASE_ID, seed=7)
    assert base.webhooks() == []
    assert hsb.store._db.execute("SELECT COUNT(*) FROM wh_payloads").fetchone()[0] == 0


def test_metadata_writes_through_the_api_become_schema_payloads(base: Base) -> None:
    """Once the sandbox serves metadata writes (sandbox/meta.py, issue 18), pyairtable's create_field
    and create_table reach webhooks through the same capture, with no hook of their own."""
    pytest.importorskip("beststag_cli.sandbox.meta")
    ids = _ids(base)
    _, hook = _hook(base, {"options": {"filters": {"dataTypes": ["tableFields", "tableMetadata"]}}})
    field = base.table("Items").create_field("Notes", "multilineText")
    table = base.create_table("Fresh", [{"name": "N", "type": "singleLineText"}])
    first, second = list(hook.payloads())
    assert first.changed_tables_by_id[ids["Items"]].created_fields_by_id[field.id].name == "Notes"
    created = second.created_tables_by_id[table.id]
    assert created.metadata is not None and created.metadata.name == "Fresh"


def test_ping_retries_are_bounded(base: Base, hsb: Sandbox) -> None:
    hsb.store.webhooks.ping_attempts = 3
    rcv = _Receiver([500, 503, 502, 500, 500])
    try:
        made = base.add_webhook(rcv.url, SPEC_DATA)
        assert hsb.store.webhooks.drain()
        assert rcv.got.qsize() == 3
        res = base.webhook(made.id).last_notification_result
        assert res is not None and not res.success and res.retry_number == 2 and res.will_be_retried is False
        assert res.error is not None and "502" in res.error.message
        assert base.webhook(made.id).last_successful_notification_time is None
    finally:
        rcv.close()
