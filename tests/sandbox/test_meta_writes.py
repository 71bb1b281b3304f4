"""Metadata writes (create base/table/field, update table/field) and base info, through pyairtable's own
methods against the sandbox — in-process and over a real socket (`sandbox serve`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyairtable import Api, Base
from pyairtable.models.schema import BaseCollaborators

from beststag_cli.sandbox import SANDBOX_BASE_ID, SANDBOX_ENDPOINT, Sandbox
from beststag_cli.sandbox.schema_doc import NOT_CREATABLE_TYPES
from beststag_cli.sandbox.server import serve_in_thread

WSP = "wspSandboxWrkspc0"
AUTH = {"Authorization": "Bearer sandbox"}


def expect(fn, status: int, type_: str) -> requests.HTTPError:  # type: ignore[no-untyped-def]
    with pytest.raises(requests.HTTPError) as e:
        fn()
    assert e.value.response.status_code == status, e.value.response.text
    err = e.value.response.json()["error"]
    assert (err if isinstance(err, str) else err["type"]) == type_, e.value.response.text
    return e.value


@pytest.fixture
def blank(api: Api) -> Base:
    return api.create_base(WSP, "Blank", [{"name": "One", "fields": [{"type": "singleLineText", "name": "Label"}]}])


def test_create_base_answers_id_and_tables(api: Api, sandbox: Sandbox) -> None:
    r = api.session.post(
        f"{SANDBOX_ENDPOINT}/v0/meta/bases",
        json={
            "name": "Made",
            "workspaceId": WSP,
            "tables": [
                {
                    "name": "People",
                    "description": "who",
                    "fields": [
                        {"name": "Name", "type": "singleLineText"},
                        {"name": "Age", "type": "number", "options": {"precision": 0}},
                    ],
                }
            ],
        },
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "tables"} and body["id"].startswith("app") and len(body["id"]) == 17
    (t,) = body["tables"]
    assert t["name"] == "People" and t["description"] == "who"
    assert [f["name"] for f in t["fields"]] == ["Name", "Age"] and t["primaryFieldId"] == t["fields"][0]["id"]
    assert t["views"] == [{"id": t["views"][0]["id"], "name": "Grid view", "type": "grid"}]
    # the base exists, is listed, and answers its schema
    assert body["id"] in {b.id for b in api.bases(force=True)}
    assert api.base(body["id"]).schema().tables[0].id == t["id"]
    assert api.base(body["id"], validate=True, force=True).name == "Made"


def test_pyairtable_create_table_field_update(blank: Base) -> None:
    table = blank.create_table("Two", [{"type": "singleLineText", "name": "Name"}], description="d")
    assert table.schema().field("Name").type == "singleLineText"
    assert table.schema().description == "d"
    fld = blank.tables()[0].create_field(
        "Status", field_type="singleSelect", options={"choices": [{"name": "Todo"}, {"name": "Done"}]}
    )
    assert [c.name for c in fld.options.choices] == ["Todo", "Done"]  # type: ignore[union-attr]
    assert all(c.id.startswith("sel") for c in fld.options.choices)  # type: ignore[union-attr]
    # table rename and description, as pyairtable's TableSchema.save sends them
    schema = blank.schema().tables[0]
    schema.name = "Renamed"
    schema.save()
    assert blank.schema(force=True).tables[0].name == "Renamed"
    schema.description = "Now described"
    schema.save()
    assert blank.schema(force=True).tables[0].description == "Now described"
    # field rename and description (FieldSchema.save)
    field = blank.schema(force=True).tables[0].fields[0]
    field.name = "Label 2"
    field.save()
    field.description = "the label"
    field.save()
    again = blank.schema(force=True).tables[0].fields[0]
    assert (again.name, again.description) == ("Label 2", "the label")
    # records can be written to the new fields at once
    rec = blank.table("Renamed").create({"Label 2": "x", "Status": "Done"})
    assert rec["fields"] == {"Label 2": "x", "Status": "Done"}


@pytest.mark.parametrize("ftype", sorted(NOT_CREATABLE_TYPES))
def test_computed_types_are_not_creatable(blank: Base, ftype: str) -> None:
    e = expect(lambda: blank.tables()[0].create_field("C", ftype), 422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE")
    assert e.response.json()["error"]["message"] == (
        f"Invalid options for One.C: Creating {ftype} fields is not supported at this time"
    )
    expect(
        lambda: blank.create_table("T", [{"name": "N", "type": "singleLineText"}, {"name": "C", "type": ftype}]),
        422,
        "UNSUPPORTED_FIELD_TYPE_FOR_CREATE",
    )
    assert [t.name for t in blank.schema(force=True).tables] == ["One"]  # nothing half-made


def test_validation_errors(blank: Base, api: Api) -> None:
    t = blank.tables()[0]
    expect(lambda: t.create_field("label", "singleLineText"), 422, "DUPLICATE_OR_EMPTY_FIELD_NAME")
    expect(lambda: t.create_field("  ", "singleLineText"), 422, "DUPLICATE_OR_EMPTY_FIELD_NAME")
    expect(lambda: t.create_field("N", "number"), 422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE")
    expect(lambda: t.create_field("N", "checkbox"), 422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE")
    expect(
        lambda: t.create_field("N", "singleLineText", options={"x": 1}), 422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"
    )
    expect(lambda: t.create_field("N", "notAType"), 422, "INVALID_REQUEST_UNKNOWN")
    expect(lambda: blank.create_table("one", [{"name": "N", "type": "singleLineText"}]), 422, "DUPLICATE_TABLE_NAME")
    expect(lambda: blank.create_table("Empty", []), 422, "INVALID_REQUEST_UNKNOWN")
    for primary in ({"name": "F", "type": "multipleAttachments"}, {"name": "C", "type": "checkbox",
                    "options": {"icon": "check", "color": "greenBright"}}):  # fmt: skip
        expect(lambda: blank.create_table("P", [primary]), 422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE")  # noqa: B023
    expect(
        lambda: blank.create_table("D", [{"name": "N", "type": "singleLineText"}, {"name": "n", "type": "email"}]),
        422,
        "DUPLICATE_OR_EMPTY_FIELD_NAME",
    )
    expect(lambda: api.create_base(WSP, "B", []), 422, "INVALID_REQUEST_UNKNOWN")
    expect(lambda: api.create_base("nope", "B", [{"name": "T", "fields": [{"name": "N", "type": "email"}]}]), 403,
           "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")  # fmt: skip
    # renaming onto a taken name
    blank.create_table("Two", [{"type": "singleLineText", "name": "Name"}])
    url = f"{SANDBOX_ENDPOINT}/v0/meta/bases/{blank.id}/tables/{blank.tables()[0].id}"
    expect(lambda: api.patch(url, json={"name": "TWO"}), 422, "DUPLICATE_TABLE_NAME")
    expect(lambda: api.patch(url, json={"nope": 1}), 422, "INVALID_REQUEST_UNKNOWN")
    fid = blank.tables()[1].schema().fields[0].id
    furl = f"{SANDBOX_ENDPOINT}/v0/meta/bases/{blank.id}/tables/{blank.tables()[1].id}/fields/{fid}"
    expect(lambda: api.patch(furl, json={"name": ""}), 422, "DUPLICATE_OR_EMPTY_FIELD_NAME")
    expect(lambda: api.patch(furl + "x", json={"name": "Q"}), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")


def test_link_field_gets_inverse_unless_self_link(blank: Base) -> None:
    two = blank.create_table("Two", [{"type": "singleLineText", "name": "Name"}])
    one = blank.tables()[0]
    link = one.create_field("Twos", "multipleRecordLinks", options={"linkedTableId": two.id})
    schema = blank.schema(force=True)
    inv_id = link.options.inverse_link_field_id  # type: ignore[union-attr]
    inv = schema.table("Two").field(inv_id)
    assert inv.type == "multipleRecordLinks" and inv.name == "One"
    assert inv.options.linked_table_id == schema.table("One").id  # type: ignore[union-attr]
    assert inv.options.inverse_link_field_id == link.id  # type: ignore[union-attr]
    # writing one side shows on the other
    r2 = two.create({"Name": "b"})
    r1 = one.create({"Label": "a", "Twos": [r2["id"]]})
    assert two.get(r2["id"])["fields"]["One"] == [r1["id"]]
    # the linked table is named by id (not by name, not one of another base)
    for bad in ("Two", "tblNOPE0000000000"):
        expect(
            lambda: one.create_field("L", "multipleRecordLinks", options={"linkedTableId": bad}),  # noqa: B023
            422,
            "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
        )
    # a link to its own table has no inverse field
    n = len(one.schema(force=True).fields)
    me = one.create_field("Parent", "multipleRecordLinks", options={"linkedTableId": one.id})
    assert me.options.inverse_link_field_id is None  # type: ignore[union-attr]
    assert len(one.schema(force=True).fields) == n + 1


def test_base_info_and_collaborators(blank: Base, api: Api) -> None:
    info = blank.collaborators()
    assert isinstance(info, BaseCollaborators)
    assert info.id == blank.id and info.name == "Blank" and info.workspace_id == WSP
    assert info.permission_level == "create"
    (me,) = info.individual_collaborators.via_workspace
    assert me.user_id == api.whoami()["id"]
    # the sample base (not made through the API) answers too
    assert api.base(SANDBOX_BASE_ID).collaborators().id == SANDBOX_BASE_ID
    expect(lambda: api.base("appNOPE0000000000").collaborators(), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")


def test_unknown_routes_are_404_not_403(api: Api) -> None:
    paths = (f"/v0/bases/{SANDBOX_BASE_ID}/nothing", "/v0/bases/x", "/v0/nothing/here", "/v0/meta/workspaces/wspX")
    for path in paths:
        r = api.session.get(SANDBOX_ENDPOINT + path, headers=AUTH)
        assert (r.status_code, r.json()) == (404, {"error": "NOT_FOUND"}), path


NAMES = st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=6))
def test_created_fields_come_back_in_the_schema(blank: Base, names: list[str]) -> None:
    """Whatever fields are created (distinct names or not), the schema lists exactly the accepted ones."""
    table = blank.tables()[0]
    before = [f.name for f in table.schema(force=True).fields]
    accepted = []
    for name in names:
        taken = {n.lower() for n in before + accepted}
        if name.strip().lower() in taken:
            expect(lambda: table.create_field(name, "multilineText"), 422, "DUPLICATE_OR_EMPTY_FIELD_NAME")  # noqa: B023
        else:
            assert table.create_field(name, "multilineText").name == name.strip()
            accepted.append(name.strip())
    assert [f.name for f in table.schema(force=True).fields] == before + accepted


@pytest.fixture
def live_api(sandbox: Sandbox) -> Iterator[Api]:
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)
    try:
        yield Api("sandbox", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", retry_strategy=None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_over_a_socket(live_api: Api) -> None:
    base = live_api.create_base(WSP, "Served", [{"name": "One", "fields": [{"type": "singleLineText", "name": "L"}]}])
    t = base.tables()[0]
    t.create_field("When", "date", options={"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}})
    assert t.create({"L": "a", "When": "2024-05-01"})["fields"] == {"L": "a", "When": "2024-05-01"}
    assert base.collaborators().name == "Served"
    expect(lambda: t.create_field("F", "formula"), 422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE")


def test_a_schema_change_is_seen_by_another_process_on_the_file(sandbox: Sandbox, api: Api) -> None:
    """Two Sandbox objects on one file (a server and a cron job): a field created through one is in the
    other's schema and takes records there at once."""
    other = Sandbox(sandbox.path)
    try:
        other_api = other.api(retry_strategy=None)
        table = other_api.table(SANDBOX_BASE_ID, "Métricas")
        assert "Note" not in [f.name for f in table.schema(force=True).fields]
        api.table(SANDBOX_BASE_ID, "Métricas").create_field("Note", "multilineText")
        assert "Note" in [f.name for f in table.schema(force=True).fields]
        first = table.first()
        assert first is not None
        assert table.update(first["id"], {"Note": "seen"})["fields"]["Note"] == "seen"
    finally:
        other.close()


CHOICE = st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=8)
FIELD_SPECS = st.one_of(
    st.sampled_from(["singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "barcode"]).map(
        lambda t: {"type": t}
    ),
    st.builds(
        lambda t, p: {"type": t, "options": {"precision": p}}, st.sampled_from(["number", "percent"]), st.integers(0, 8)
    ),
    st.builds(lambda p: {"type": "currency", "options": {"precision": p, "symbol": "€"}}, st.integers(0, 7)),
    st.just({"type": "checkbox", "options": {"icon": "check", "color": "greenBright"}}),
    st.just({"type": "rating", "options": {"icon": "star", "max": 5, "color": "yellowBright"}}),
    st.just({"type": "duration", "options": {"durationFormat": "h:mm"}}),
    st.just({"type": "date", "options": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}}}),
    st.builds(
        lambda t, names: {"type": t, "options": {"choices": [{"name": n} for n in names]}},
        st.sampled_from(["singleSelect", "multipleSelects"]),
        st.lists(CHOICE, max_size=4, unique=True),
    ),
    st.just({"type": "multipleAttachments"}),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(FIELD_SPECS, max_size=8))
def test_create_table_answer_is_what_the_schema_then_shows(blank: Base, specs: list[dict]) -> None:  # type: ignore[type-arg]
    """Any table of creatable fields: the create answer is the table model the schema lists afterwards, with
    the names, types and choice names asked for."""
    fields = [{"name": "Name", "type": "singleLineText"}] + [{**s, "name": f"F{i}"} for i, s in enumerate(specs)]
    name = f"T {uuid.uuid4().hex}"  # the base outlives the examples: a fresh table name each time
    r = blank.api.post(blank.urls.tables, json={"name": name, "fields": fields})
    assert [(f["name"], f["type"]) for f in r["fields"]] == [(f["name"], f["type"]) for f in fields]
    for asked, got in zip(fields, r["fields"], strict=True):
        if "choices" in asked.get("options", {}):
            assert [c["name"] for c in got["options"]["choices"]] == [c["name"] for c in asked["options"]["choices"]]
    listed = blank.api.get(blank.urls.tables)["tables"]
    assert next(t for t in listed if t["id"] == r["id"]) == r
