"""Computed and people fields through pyairtable 3.5: formula, rollup, count, createdBy,
lastModifiedBy, collaborators, barcode, button, and the options real schemas carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyairtable import Api
from pyairtable.api.types import (
    BarcodeDict,
    ButtonDict,
    CollaboratorDict,
    RecordDict,
    assert_typed_dict,
    assert_typed_dicts,
    is_airtable_error,
)
from pyairtable.models import schema as S

from beststag_cli.sandbox import SANDBOX_ENDPOINT, Sandbox
from beststag_cli.sandbox.users import DEFAULT_USER, USERS

BASE = "appComputedTest01"

SPEC: dict[str, Any] = {
    "name": "Computed",
    "tables": [
        {
            "name": "Orders",
            "fields": [
                {"name": "Name", "type": "singleLineText"},
                {"name": "Price", "type": "number", "options": {"precision": 2}},
                {"name": "Qty", "type": "number"},
                {
                    "name": "Total",
                    "type": "formula",
                    "options": {
                        "formula": "{Price} * {Qty}",
                        "result": {"type": "number", "options": {"precision": 2}},
                    },
                },
                {
                    "name": "Label",
                    "type": "formula",
                    "options": {"formula": "UPPER({Name}) & ' x' & {Qty}"},
                },
                {
                    "name": "Double total",
                    "type": "formula",
                    "options": {"formula": "{Total} * 2", "result": {"type": "number"}},
                },
                {"name": "Loop A", "type": "formula", "options": {"formula": "{Loop B} + 1"}},
                {"name": "Loop B", "type": "formula", "options": {"formula": "{Loop A} + 1"}},
                {"name": "Broken", "type": "formula", "options": {"formula": "{No such field}"}},
                {"name": "Divide", "type": "formula", "options": {"formula": "1 / {Qty}"}},
                {"name": "Due", "type": "formula", "options": {"formula": "DATEADD('2024-01-31', {Qty}, 'days')",
                                                               "result": {"type": "date"}}},
                {"name": "Owner", "type": "singleCollaborator"},
                {"name": "Watchers", "type": "multipleCollaborators"},
                {"name": "Code", "type": "barcode"},
                {"name": "Open", "type": "button",
                 "options": {"label": "Open", "url": "'https://example.test/o/' & {Name}"}},
                {"name": "Created by", "type": "createdBy"},
                {"name": "Modified by", "type": "lastModifiedBy"},
                {"name": "Time", "type": "duration", "options": {"durationFormat": "h:mm:ss"}},
                {"name": "Stars", "type": "rating", "options": {"max": 10, "icon": "heart", "color": "redBright"}},
                {"name": "Parent", "type": "multipleRecordLinks", "options": {"linkedTable": "Orders"}},
            ],
        },
        {
            "name": "Customers",
            "fields": [
                {"name": "Name", "type": "singleLineText"},
                {"name": "Orders", "type": "multipleRecordLinks",
                 "options": {"linkedTable": "Orders", "inverseField": "Customer"}},
                {"name": "Spent", "type": "rollup",
                 "options": {"recordLinkField": "Orders", "fieldInLinkedTable": "Total", "formula": "SUM(values)"}},
                {"name": "Order names", "type": "rollup",
                 "options": {"recordLinkField": "Orders", "fieldInLinkedTable": "Name",
                             "formula": "ARRAYJOIN(values, '; ')"}},
                {"name": "Order count", "type": "count", "options": {"recordLinkField": "Orders"}},
                {"name": "Big spender", "type": "formula", "options": {"formula": "{Spent} > 100"}},
                {"name": "Totals", "type": "multipleLookupValues",
                 "options": {"recordLinkField": "Orders", "fieldInLinkedTable": "Total"}},
            ],
        },
    ],
}  # fmt: skip


@pytest.fixture
def sb(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Sandbox(tmp_path / "sb" / "base.sqlite")
    s.store.create_base(SPEC, BASE, seed=7)
    yield s
    s.close()


@pytest.fixture
def api(sb: Sandbox) -> Api:
    return sb.api(retry_strategy=None)


def _field(schema: S.BaseSchema, table: str, name: str) -> Any:
    return schema.table(table).field(name)


def test_schema_parses_with_pyairtable_models_and_has_airtable_options(api: Api) -> None:
    schema = api.base(BASE).schema()
    total = _field(schema, "Orders", "Total")
    assert isinstance(total, S.FormulaFieldSchema)
    price, qty = _field(schema, "Orders", "Price"), _field(schema, "Orders", "Qty")
    assert total.options.formula == f"{{{price.id}}} * {{{qty.id}}}"
    assert total.options.is_valid and total.options.referenced_field_ids == [price.id, qty.id]
    assert total.options.result is not None and total.options.result.type == "number"
    assert not _field(schema, "Orders", "Loop A").options.is_valid
    assert not _field(schema, "Orders", "Loop B").options.is_valid
    assert not _field(schema, "Orders", "Broken").options.is_valid
    assert _field(schema, "Orders", "Double total").options.is_valid
    due = _field(schema, "Orders", "Due")
    assert isinstance(due.options.result, S.DateFieldConfig)
    assert isinstance(_field(schema, "Orders", "Owner"), S.SingleCollaboratorFieldSchema)
    assert isinstance(_field(schema, "Orders", "Watchers"), S.MultipleCollaboratorsFieldSchema)
    assert isinstance(_field(schema, "Orders", "Code"), S.BarcodeFieldSchema)
    assert isinstance(_field(schema, "Orders", "Open"), S.ButtonFieldSchema)
    assert isinstance(_field(schema, "Orders", "Created by"), S.CreatedByFieldSchema)
    assert isinstance(_field(schema, "Orders", "Modified by"), S.LastModifiedByFieldSchema)
    assert _field(schema, "Orders", "Time").options.duration_format == "h:mm:ss"
    stars = _field(schema, "Orders", "Stars").options
    assert (stars.max, stars.icon, stars.color) == (10, "heart", "redBright")
    parent = _field(schema, "Orders", "Parent")
    assert parent.options.linked_table_id == schema.table("Orders").id
    assert parent.options.inverse_link_field_id is None
    assert [f.name for f in schema.table("Orders").fields].count("Orders (Parent)") == 0
    spent = _field(schema, "Customers", "Spent")
    assert isinstance(spent, S.RollupFieldSchema)
    assert spent.options.record_link_field_id == _field(schema, "Customers", "Orders").id
    assert spent.options.field_id_in_linked_table == total.id
    assert spent.options.result is not None and spent.options.result.type == "number"
    totals = _field(schema, "Customers", "Totals")
    assert isinstance(totals, S.MultipleLookupValuesFieldSchema)
    assert isinstance(totals.options.result, S.FormulaFieldConfig)
    count = _field(schema, "Customers", "Order count")
    assert isinstance(count, S.CountFieldSchema) and count.options.is_valid


def test_raw_schema_hides_button_options(sb: Sandbox) -> None:
    fields = {f["name"]: f for f in sb.store.base_schema(BASE)["tables"][0]["fields"]}
    assert "options" not in fields["Open"]
    assert "options" not in fields["Owner"]


def test_every_type_reads_back_through_table_all(api: Api) -> None:
    orders = api.table(BASE, "Orders")
    alice = USERS[1]
    rec = orders.create(
        {
            "Name": "Desk",
            "Price": 12.5,
            "Qty": 4,
            "Owner": {"email": alice["email"]},
            "Watchers": [{"id": alice["id"]}, {"email": DEFAULT_USER["email"].upper()}],
            "Code": {"text": "0123456", "type": "upce"},
            "Time": 3600.5,
            "Stars": 3,
        }
    )
    row = next(r for r in orders.all() if r["id"] == rec["id"])
    assert_typed_dict(RecordDict, row)
    f = row["fields"]
    assert_typed_dict(CollaboratorDict, f["Owner"])
    assert_typed_dicts(CollaboratorDict, f["Watchers"])
    assert_typed_dict(CollaboratorDict, f["Created by"])
    assert_typed_dict(BarcodeDict, f["Code"])
    assert_typed_dict(ButtonDict, f["Open"])
    assert f["Total"] == 50
    assert f["Double total"] == 100
    assert f["Label"] == "DESK x4"
    assert f["Divide"] == 0.25
    assert f["Due"] == "2024-02-04T00:00:00.000Z"
    assert f["Owner"] == alice
    assert f["Watchers"] == [alice, DEFAULT_USER]
    assert f["Code"] == {"text": "0123456", "type": "upce"}
    assert f["Open"] == {"label": "Open", "url": "https://example.test/o/Desk"}
    assert f["Created by"] == DEFAULT_USER
    assert f["Modified by"] == DEFAULT_USER
    assert "Loop A" not in f and "Broken" not in f
    zero = orders.create({"Name": "Free", "Qty": 0})
    divide = orders.get(zero["id"])["fields"]["Divide"]
    assert is_airtable_error(divide) and divide == {"error": "#DIV/0!"}


def test_formula_fields_filter_sort_select_and_string_format(api: Api) -> None:
    orders = api.table(BASE, "Orders")
    orders.batch_create([{"Name": n, "Price": p, "Qty": q} for n, p, q in [("a", 5, 3), ("b", 100, 1), ("c", 2, 2)]])
    big = orders.all(formula="{Total} >= 15", fields=["Name", "Total"])
    assert sorted(r["fields"]["Name"] for r in big) == ["a", "b"]
    assert all(set(r["fields"]) <= {"Name", "Total"} for r in big)
    ordered = orders.all(sort=["-Total"], fields=["Name"])
    assert [r["fields"]["Name"] for r in ordered] == ["b", "a", "c"]
    text = orders.all(cell_format="string", time_zone="UTC", user_locale="en-us", fields=["Total", "Due"])
    # the result's precision (2) decides the text, as Airtable's display does
    assert sorted(r["fields"]["Total"] for r in text) == ["100.00", "15.00", "4.00"]
    # a date result, in the dateFormat its schema shows (iso when the spec gave none)
    assert sorted(r["fields"]["Due"] for r in text) == ["2024-02-01", "2024-02-02", "2024-02-03"]


def test_computed_and_people_fields_refuse_bad_writes(api: Api) -> None:
    orders = api.table(BASE, "Orders")
    for name, value in [("Total", 1), ("Created by", {"id": DEFAULT_USER["id"]}), ("Open", {"label": "x"})]:
        with pytest.raises(requests.HTTPError) as e:
            orders.create({"Name": "x", name: value})
        assert e.value.response.status_code == 422
        assert e.value.response.json()["error"] == {
            "type": "INVALID_VALUE_FOR_COLUMN",
            "message": f'Field "{name}" cannot accept a value because the field is computed',
        }
    for name, value in [("Owner", {"email": "nobody@example.test"}), ("Watchers", [{"id": "usrNoSuchUser0000"}])]:
        with pytest.raises(requests.HTTPError) as e:
            orders.create({"Name": "x", name: value})
        assert e.value.response.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"
    with pytest.raises(requests.HTTPError):
        orders.create({"Code": "no type"})
    assert orders.create({"Code": "typecast"}, typecast=True)["fields"]["Code"] == {"text": "typecast"}


def test_whoami_has_the_token_users_email(api: Api) -> None:
    me = api.whoami()
    assert me["id"] == DEFAULT_USER["id"] and me["email"] == DEFAULT_USER["email"]


def test_rollup_count_and_formula_over_rollup(api: Api) -> None:
    orders, customers = api.table(BASE, "Orders"), api.table(BASE, "Customers")
    o = orders.batch_create([{"Name": "x", "Price": 60, "Qty": 1}, {"Name": "y", "Price": 50, "Qty": 1}])
    c = customers.create({"Name": "Ana", "Orders": [r["id"] for r in o]})
    f = c["fields"]
    assert (f["Spent"], f["Order count"], f["Order names"], f["Big spender"]) == (110, 2, "x; y", True)
    listed = customers.all()
    assert [r["id"] for r in listed] == [c["id"]] and listed[0]["fields"]["Totals"] == [60, 50]
    assert_typed_dicts(RecordDict, listed)
    orders.delete(o[0]["id"])
    f = customers.get(c["id"])["fields"]
    assert (f["Spent"], f["Order count"], f["Order names"]) == (50, 1, "y")
    assert "Big spender" not in f  # false is omitted, like a false checkbox
    assert [r["id"] for r in customers.all(formula="{Order count} = 1")] == [c["id"]]


prices = st.lists(
    st.tuples(st.integers(min_value=-1000, max_value=1000), st.integers(min_value=0, max_value=50)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=prices, drop=st.sets(st.integers(min_value=0, max_value=7)))
def test_formula_and_rollup_match_python_after_random_writes(
    api: Api, rows: list[tuple[int, int]], drop: set[int]
) -> None:
    orders, customers = api.table(BASE, "Orders"), api.table(BASE, "Customers")
    made = orders.batch_create([{"Name": f"n{i}", "Price": p, "Qty": q} for i, (p, q) in enumerate(rows)])
    cust = customers.create({"Name": "C", "Orders": [r["id"] for r in made]})
    for i, r in enumerate(made):
        assert r["fields"].get("Total", 0) == rows[i][0] * rows[i][1]
    gone = [made[i]["id"] for i in drop if i < len(made)]
    if gone:
        orders.batch_delete(gone)
    kept = [(p, q) for i, (p, q) in enumerate(rows) if i not in drop]
    got = customers.get(cust["id"])["fields"]
    assert got.get("Spent", 0) == sum(p * q for p, q in kept)
    assert got["Order count"] == len(kept)
    # the formula field agrees with the same formula given to filterByFormula
    ids = {r["id"] for r in orders.all(formula="{Price} * {Qty} > 100")}
    assert ids == {r["id"] for r in orders.all(formula="{Total} > 100")}
    orders.batch_delete([r["id"] for r in orders.all()])
    customers.delete(cust["id"])


def test_plain_requests_through_the_wsgi_adapter(sb: Sandbox) -> None:
    session = requests.Session()
    sb.mount(session)
    url = f"{SANDBOX_ENDPOINT}/v0/{BASE}/Orders"
    h = {"Authorization": "Bearer sandbox"}
    r = session.post(url, json={"fields": {"Name": "q", "Price": 2, "Qty": 3}}, headers=h)
    assert r.status_code == 200 and r.json()["fields"]["Total"] == 6


def test_last_modified_by_follows_the_writer_and_created_by_stays(sb: Sandbox, api: Api) -> None:
    orders = api.table(BASE, "Orders")
    rec = orders.create({"Name": "a"})
    sb.store.user_id = USERS[2]["id"]  # another user writes next
    after = orders.update(rec["id"], {"Qty": 2})["fields"]
    assert after["Created by"] == DEFAULT_USER
    assert after["Modified by"] == USERS[2]
    assert [r["id"] for r in orders.all(formula=f"{{Modified by}} = '{USERS[2]['name']}'")] == [rec["id"]]


def test_formula_primary_field_shows_in_links(tmp_path: Path) -> None:
    spec = {
        "tables": [
            {
                "name": "Items",
                "fields": [
                    {"name": "Key", "type": "formula", "options": {"formula": "{Code} & '-' & {N}"}},
                    {"name": "Code", "type": "singleLineText"},
                    {"name": "N", "type": "number"},
                ],
            },
            {
                "name": "Boxes",
                "fields": [
                    {"name": "Box", "type": "singleLineText"},
                    {"name": "Items", "type": "multipleRecordLinks", "options": {"linkedTable": "Items"}},
                    {"name": "Keys", "type": "formula", "options": {"formula": "ARRAYJOIN({Items}, '+')"}},
                ],
            },
        ]
    }
    s = Sandbox(tmp_path / "p" / "base.sqlite")
    try:
        s.store.create_base(spec, "appFormulaPrimary", seed=1)
        api = s.api(retry_strategy=None)
        items = api.table("appFormulaPrimary", "Items").batch_create([{"Code": "a", "N": 1}, {"Code": "b", "N": 2}])
        assert [r["fields"]["Key"] for r in items] == ["a-1", "b-2"]
        box = api.table("appFormulaPrimary", "Boxes").create({"Box": "x", "Items": [r["id"] for r in items]})
        assert box["fields"]["Keys"] == "a-1+b-2"
        text = api.table("appFormulaPrimary", "Boxes").all(cell_format="string", time_zone="UTC", user_locale="en-us")
        assert text[0]["fields"]["Items"] == "a-1, b-2"
    finally:
        s.close()


def test_string_cell_format_of_people_barcode_and_button(api: Api) -> None:
    orders = api.table(BASE, "Orders")
    alice, bruno = USERS[1], USERS[2]
    orders.create({"Name": "s", "Owner": {"id": alice["id"]}, "Watchers": [{"id": alice["id"]}, {"id": bruno["id"]}],
                   "Code": {"text": "987"}})  # fmt: skip
    row = orders.all(cell_format="string", time_zone="UTC", user_locale="en-us")[0]["fields"]
    assert row["Owner"] == alice["name"]
    assert row["Watchers"] == f"{alice['name']}, {bruno['name']}"
    assert row["Code"] == "987"
    assert row["Open"] == "Open"
    assert row["Created by"] == DEFAULT_USER["name"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC 0123456789'\"{}", min_size=1, max_size=12).filter(str.strip),
    qty=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_text_formula_field_matches_python(api: Api, name: str, qty: int) -> None:
    orders = api.table(BASE, "Orders")
    rec = orders.create({"Name": name, "Qty": qty})
    assert rec["fields"]["Label"] == f"{name.upper()} x{qty}"
    # the stored formula field and the same formula in filterByFormula select the same record
    same = orders.all(formula=f"AND(RECORD_ID() = '{rec['id']}', {{Label}} = UPPER({{Name}}) & ' x' & {{Qty}})")
    assert [r["id"] for r in same] == [rec["id"]]
    orders.delete(rec["id"])


def test_bad_rollup_and_button_formulas_read_empty_not_500(tmp_path: Path) -> None:
    spec = {
        "tables": [
            {
                "name": "A",
                "fields": [
                    {"name": "Name", "type": "singleLineText"},
                    {"name": "Bs", "type": "multipleRecordLinks", "options": {"linkedTable": "B"}},
                    {"name": "Bad", "type": "rollup",
                     "options": {"recordLinkField": "Bs", "fieldInLinkedTable": "N", "formula": "SUM({N})"}},
                    {"name": "Go", "type": "button", "options": {"label": "Go", "url": "{Missing} & 'x'"}},
                ],
            },
            {"name": "B", "fields": [{"name": "N", "type": "number"}]},
        ]
    }  # fmt: skip
    s = Sandbox(tmp_path / "r" / "base.sqlite")
    try:
        s.store.create_base(spec, "appBadFormulas001", seed=3)
        api = s.api(retry_strategy=None)
        schema = api.base("appBadFormulas001").schema()
        assert schema.table("A").field("Bad").options.is_valid is False
        b = api.table("appBadFormulas001", "B").create({"N": 2})
        a = api.table("appBadFormulas001", "A").create({"Name": "a", "Bs": [b["id"]]})
        assert "Bad" not in a["fields"]
        assert a["fields"]["Go"] == {"label": "Go", "url": None}
    finally:
        s.close()
