"""Record comments against the sandbox, driven by pyairtable 3.5's own comment API and plain requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule
from pyairtable import Api
from pyairtable.api.table import Table
from pyairtable.models import Comment

from beststag_cli import clock
from beststag_cli.sandbox import SANDBOX_BASE_ID, SANDBOX_ENDPOINT, Sandbox
from beststag_cli.sandbox import comments as comments_mod
from beststag_cli.sandbox.server import serve_in_thread

BASE = SANDBOX_BASE_ID
USERS = "Usuários"
ME = "usrSandboxUser000"  # GET /v0/meta/whoami
OTHER_USER = "usrSomeoneElse0000"
AUTH = {"Authorization": "Bearer sandbox"}


def _url(table: str, *rest: str, endpoint: str = SANDBOX_ENDPOINT) -> str:
    from urllib.parse import quote

    return "/".join([endpoint, "v0", BASE, quote(table, safe=""), *rest])


@pytest.fixture
def http(sandbox: Sandbox) -> requests.Session:
    """Plain requests, in-process: status codes and bodies exactly as the sandbox answers them."""
    s = requests.Session()
    sandbox.mount(s)
    s.headers.update(AUTH)
    return s


@pytest.fixture
def users(api: Api) -> Table:
    return api.table(BASE, USERS)


@pytest.fixture
def rec_id(users: Table) -> str:
    return str(users.create({"Nome": "commented"})["id"])


def _whoami(api: Api) -> str:
    return str(api.whoami()["id"])


def _comment_flow(api: Api) -> None:
    """pyairtable's own integration test of comments (tests/integration/test_integration_api.py), as is."""
    table = api.table(BASE, USERS)
    record = table.create({"Nome": "x"})
    whoami = _whoami(api)
    table.add_comment(record["id"], f"A comment from @[{whoami}]")
    comments = table.comments(record["id"])
    assert len(comments) == 1
    assert whoami in comments[0].text
    assert comments[0].author.id == whoami
    assert comments[0].mentioned[whoami].id == whoami
    comments[0].text = "Never mind!"
    comments[0].save()
    assert whoami not in comments[0].text
    assert not comments[0].mentioned
    comments[0].delete()
    assert table.comments(record["id"]) == []


def test_pyairtable_comment_flow_in_process(api: Api) -> None:
    _comment_flow(api)


def test_pyairtable_comment_flow_over_sandbox_serve(sandbox: Sandbox) -> None:
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)
    try:
        api = Api("sandbox", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", retry_strategy=None)
        _comment_flow(api)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_created_comment_has_airtables_shape(api: Api, users: Table, rec_id: str, http: requests.Session) -> None:
    clock.set_now(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    c = users.add_comment(rec_id, "Hello, world!")
    assert isinstance(c, Comment)
    assert c.id.startswith("com") and len(c.id) == 17
    assert c.author.id == ME and c.author.email and c.author.name
    assert c.created_time == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert c.last_updated_time is None and c.mentioned == {} and c.parent_comment_id is None
    raw = http.get(_url(USERS, rec_id, "comments")).json()
    # Airtable's create-comment example: exactly these keys; `mentioned` only when someone is mentioned
    assert set(raw["comments"][0]) == {"id", "author", "createdTime", "lastUpdatedTime", "text"}
    assert raw["comments"][0]["createdTime"] == "2026-03-01T09:00:00.000Z"
    assert raw["comments"][0]["lastUpdatedTime"] is None
    assert raw["offset"] is None  # the key is there on the last page, null
    clock.set_now(datetime(2026, 3, 1, 9, 5, tzinfo=UTC))
    c.text = "edited"
    c.save()
    assert c.last_updated_time == datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    assert c.created_time == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert [x.text for x in users.comments(rec_id)] == ["edited"]


def test_threaded_reply_names_its_parent(users: Table, rec_id: str, http: requests.Session) -> None:
    parent = users.add_comment(rec_id, "question")
    reply = users.add_comment(rec_id, "answer", parent_comment_id=parent.id)
    assert reply.parent_comment_id == parent.id
    assert [c.parent_comment_id for c in users.comments(rec_id)] == [parent.id, None]
    r = http.post(_url(USERS, rec_id, "comments"), json={"text": "x", "parentCommentId": "comNoSuchComment00"})
    assert r.status_code == 404 and r.json() == {"error": "NOT_FOUND"}


@pytest.mark.parametrize("page_size", [1, 3, 100])
def test_list_is_newest_first_in_pages(users: Table, rec_id: str, http: requests.Session, page_size: int) -> None:
    clock.set_now(datetime(2026, 3, 1, tzinfo=UTC))  # equal createdTimes: the order still holds
    made = [users.add_comment(rec_id, f"n{i}").id for i in range(7)]
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"pageSize": page_size}
    while True:
        body = http.get(_url(USERS, rec_id, "comments"), params=params).json()
        assert len(body["comments"]) <= page_size
        seen += [c["id"] for c in body["comments"]]
        pages += 1
        if body["offset"] is None:
            break
        params["offset"] = body["offset"]
    assert seen == made[::-1]
    assert pages == -(-7 // page_size)
    assert [c.id for c in users.comments(rec_id)] == made[::-1]  # pyairtable follows the offsets


@pytest.mark.parametrize(
    "query",
    [{"pageSize": "0"}, {"pageSize": "101"}, {"pageSize": "x"}, {"sort": "asc"}],
    ids=["pageSize 0", "pageSize 101", "pageSize text", "unknown parameter"],
)
def test_list_parameters_are_validated(http: requests.Session, rec_id: str, query: dict[str, str]) -> None:
    r = http.get(_url(USERS, rec_id, "comments"), params=query)
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_a_bad_offset_is_invalid_offset_value(http: requests.Session, rec_id: str) -> None:
    r = http.get(_url(USERS, rec_id, "comments"), params={"offset": "itrNope"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_OFFSET_VALUE"


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": 3}, {"text": "x", "extra": 1}, {"text": "x", "parentCommentId": 5}, ["text"]],
    ids=["no text", "empty text", "text not a string", "unknown key", "parent not a string", "not an object"],
)
def test_create_body_is_validated(http: requests.Session, rec_id: str, body: Any) -> None:
    r = http.post(_url(USERS, rec_id, "comments"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    assert http.get(_url(USERS, rec_id, "comments")).json()["comments"] == []


def test_unknown_record_comment_or_table(http: requests.Session, rec_id: str, users: Table) -> None:
    missing = "recNoSuchRecord000"
    for method, path, body in [
        ("GET", _url(USERS, missing, "comments"), None),
        ("POST", _url(USERS, missing, "comments"), {"text": "x"}),
        ("PATCH", _url(USERS, rec_id, "comments", "comNoSuchComment00"), {"text": "x"}),
        ("DELETE", _url(USERS, rec_id, "comments", "comNoSuchComment00"), None),
    ]:
        r = http.request(method, path, json=body)
        assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"}), (method, path)
    r = http.get(_url("No such table", rec_id, "comments"))
    assert r.status_code == 403 and r.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    # a comment is addressed through its own record: another record's path does not find it
    c = users.add_comment(rec_id, "mine")
    other = users.create({"Nome": "other"})["id"]
    r = http.patch(_url(USERS, other, "comments", c.id), json={"text": "moved?"})
    assert r.status_code == 404
    assert [x.text for x in users.comments(rec_id)] == ["mine"]


def test_a_record_of_another_table_has_no_comments_path_there(api: Api, http: requests.Session, rec_id: str) -> None:
    r = http.post(_url("Interações", rec_id, "comments"), json={"text": "x"})
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})


def test_another_users_comment_cannot_be_edited_or_deleted(
    sandbox: Sandbox, users: Table, rec_id: str, http: requests.Session
) -> None:
    theirs = comments_mod.create_comment(sandbox.store, BASE, USERS, rec_id, {"text": "theirs"}, author=OTHER_USER)
    for method, body in [("PATCH", {"text": "mine now"}), ("DELETE", None)]:
        r = http.request(method, _url(USERS, rec_id, "comments", theirs["id"]), json=body)
        assert r.status_code == 403, r.text
        assert r.json() == {
            "error": {"type": "INVALID_PERMISSIONS", "message": "You are not permitted to perform this operation"}
        }
    listed = users.comments(rec_id)
    assert [(c.id, c.text, c.author.id) for c in listed] == [(theirs["id"], "theirs", OTHER_USER)]


def test_comment_count_follows_the_comments(users: Table, rec_id: str, http: requests.Session) -> None:
    def count() -> int:
        rows = users.all(formula=f"RECORD_ID() = '{rec_id}'", count_comments=True)
        by_post = http.post(
            _url(USERS, "listRecords"),
            json={"filterByFormula": f"RECORD_ID() = '{rec_id}'", "recordMetadata": ["commentCount"]},
        ).json()["records"]
        assert rows[0]["commentCount"] == by_post[0]["commentCount"]
        return int(rows[0]["commentCount"])

    assert count() == 0
    a = users.add_comment(rec_id, "a")
    users.add_comment(rec_id, "b")
    assert count() == 2
    a.delete()
    assert count() == 1
    assert "commentCount" not in users.all(formula=f"RECORD_ID() = '{rec_id}'")[0]  # only when asked


def test_deleting_the_record_deletes_its_comments(
    sandbox: Sandbox, users: Table, rec_id: str, http: requests.Session
) -> None:
    keep = users.create({"Nome": "keeps its comment"})["id"]
    users.add_comment(keep, "stays")
    for i in range(3):
        users.add_comment(rec_id, f"c{i}")
    users.delete(rec_id)
    rows = sandbox.store._db.execute("SELECT record_id FROM comments").fetchall()
    assert [r[0] for r in rows] == [keep]
    assert http.get(_url(USERS, rec_id, "comments")).status_code == 404
    assert [c.text for c in users.comments(keep)] == ["stays"]


def test_comments_are_seen_by_another_process_on_the_same_file(sandbox: Sandbox, users: Table, rec_id: str) -> None:
    users.add_comment(rec_id, "from the first")
    second = Sandbox(sandbox.path)
    try:
        t2 = second.api(retry_strategy=None).table(BASE, USERS)
        assert [c.text for c in t2.comments(rec_id)] == ["from the first"]
        t2.add_comment(rec_id, "from the second")
    finally:
        second.close()
    assert [c.text for c in users.comments(rec_id)] == ["from the second", "from the first"]


# ---------------------------------------------------------------------------- stateful


class CommentsMachine(RuleBasedStateMachine):
    """Random creates, edits and deletes of comments and records; the list and the count stay in step."""

    comments = Bundle("comments")

    def __init__(self) -> None:
        super().__init__()
        self.table = _STATE["table"]
        self.records: list[str] = [self.table.create({"Nome": f"sm{i}"})["id"] for i in range(2)]
        #: record id → comments newest first, as (id, text)
        self.model: dict[str, list[tuple[str, str]]] = {r: [] for r in self.records}

    @rule(target=comments, which=st.integers(0, 1), text=st.text(min_size=1, max_size=20))
    def add(self, which: int, text: str) -> tuple[str, str]:
        rid = self.records[which]
        c = self.table.add_comment(rid, text)
        assert c.text == text
        self.model[rid].insert(0, (c.id, text))
        return (rid, c.id)

    @rule(ref=comments, text=st.text(min_size=1, max_size=20))
    def edit(self, ref: tuple[str, str], text: str) -> None:
        rid, cid = ref
        if rid not in self.model or cid not in [c for c, _ in self.model[rid]]:
            return  # deleted with its record
        c = next(x for x in self.table.comments(rid) if x.id == cid)
        c.text = text
        c.save()
        self.model[rid] = [(i, text if i == cid else t) for i, t in self.model[rid]]

    @rule(ref=consumes(comments))
    def delete(self, ref: tuple[str, str]) -> None:
        rid, cid = ref
        if rid not in self.model:
            return
        self.table.api.request("DELETE", self.table.urls.record(rid) / "comments" / cid)
        self.model[rid] = [(i, t) for i, t in self.model[rid] if i != cid]

    @rule(which=st.integers(0, 1))
    def replace_record(self, which: int) -> None:
        old = self.records[which]
        self.table.delete(old)
        del self.model[old]
        new = self.table.create({"Nome": "sm-new"})["id"]
        self.records[which] = new
        self.model[new] = []

    @invariant()
    def list_and_count_agree_with_the_model(self) -> None:
        for rid in self.records:
            listed = [(c.id, c.text) for c in self.table.comments(rid)]
            assert listed == self.model[rid]
        formula = "OR(" + ",".join(f"RECORD_ID() = '{r}'" for r in self.records) + ")"
        counts = {r["id"]: r["commentCount"] for r in self.table.all(formula=formula, count_comments=True)}
        assert counts == {r: len(self.model[r]) for r in self.records}


_STATE: dict[str, Any] = {}


def test_comments_state_machine(users: Table) -> None:
    _STATE["table"] = users
    try:
        CommentsMachine.TestCase.settings = settings(
            max_examples=25, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
        )
        CommentsMachine.TestCase().runTest()
    finally:
        _STATE.clear()


# ---------------------------------------------------------------------------- a record through another table


def test_get_through_another_table_of_the_base_answers_the_record(api: Api, users: Table, rec_id: str) -> None:
    # Airtable does not check the table of GET /v0/{base}/{table}/{record} (record ids are unique in a base):
    # airtable.js#117, pyairtable#375 ("a behavior of the Airtable API instead of the library")
    other = api.table(BASE, "Interações")
    assert other.get(rec_id) == users.get(rec_id)
    assert other.get(rec_id, use_field_ids=True) == users.get(rec_id, use_field_ids=True)


def test_get_of_a_record_of_another_base_or_nowhere_is_not_found(
    sandbox: Sandbox, http: requests.Session, rec_id: str
) -> None:
    r = http.get(_url("Interações", "recNoSuchRecord000"))
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})
    spec = {"name": "Elsewhere", "tables": [{"name": "T", "fields": [{"name": "Name", "type": "singleLineText"}]}]}
    other_base = sandbox.store.create_base(spec).id
    r = http.get(f"{SANDBOX_ENDPOINT}/v0/{other_base}/T/{rec_id}")
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})


def test_writes_through_another_table_stay_bound_to_the_table(
    http: requests.Session, users: Table, rec_id: str
) -> None:
    # no evidence that Airtable applies a PATCH or DELETE to a record of another table: the sandbox refuses
    # them, so a client that relies on it fails here rather than against production
    r = http.patch(_url("Interações", rec_id), json={"fields": {}})
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})
    r = http.delete(_url("Interações", rec_id))
    assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"})
    assert users.get(rec_id)["fields"]["Nome"] == "commented"
