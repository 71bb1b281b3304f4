"""Bad input gets Airtable's error (status and `error.type`), surfaced by pyairtable, never a 500."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox import SANDBOX_BASE_ID, SANDBOX_ENDPOINT

BASE = SANDBOX_BASE_ID
URL = f"{SANDBOX_ENDPOINT}/v0/{BASE}"
AUTH = {"Authorization": "Bearer sandbox"}


@pytest.fixture
def http(sandbox) -> requests.Session:  # type: ignore[no-untyped-def]
    s = requests.Session()
    sandbox.mount(s)
    return s


def error_type(exc: requests.HTTPError) -> str:
    body = exc.response.json()["error"]
    return body if isinstance(body, str) else body["type"]


def expect(fn, status: int, type_: str) -> requests.HTTPError:  # type: ignore[no-untyped-def]
    with pytest.raises(requests.HTTPError) as e:
        fn()
    assert e.value.response.status_code == status, e.value.response.text
    assert error_type(e.value) == type_
    assert type_ in str(e.value)  # pyairtable appends the error body to the exception
    return e.value


def test_auth_errors(sandbox, http) -> None:
    r = http.get(f"{URL}/Usuários")
    assert r.status_code == 401 and r.json()["error"]["type"] == "AUTHENTICATION_REQUIRED"
    bad = sandbox.api(token="patWRONG", retry_strategy=None)
    expect(lambda: bad.table(BASE, "Usuários").all(), 401, "UNAUTHORIZED")


def test_unknown_base_and_table(api) -> None:
    expect(lambda: api.table("appNOPE0000000000", "Usuários").all(), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
    expect(lambda: api.table(BASE, "Usuarios").all(), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
    expect(lambda: api.table(BASE, "../Usuários").all(), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
    expect(lambda: api.base("appNOPE0000000000").schema(), 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")


def test_unknown_route_and_record(api, http) -> None:
    assert http.get(f"{SANDBOX_ENDPOINT}/v1/nothing", headers=AUTH).json() == {"error": "NOT_FOUND"}
    expect(lambda: api.table(BASE, "Usuários").get("recXXXXXXXXXXXXXX"), 404, "NOT_FOUND")
    expect(lambda: api.table(BASE, "Usuários").delete("recXXXXXXXXXXXXXX"), 404, "NOT_FOUND")
    expect(
        lambda: api.table(BASE, "Usuários").batch_update([{"id": "recXXXXXXXXXXXXXX", "fields": {}}]),
        422,
        "ROW_DOES_NOT_EXIST",
    )


def test_eleven_records_in_one_request(http, sandbox) -> None:
    n = sandbox.store.count(BASE, "Tarefas")
    r = http.post(f"{URL}/Tarefas", json={"records": [{"fields": {"Título": str(i)}} for i in range(11)]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_RECORDS"
    assert "11" in r.json()["error"]["message"]
    ids = [rec["id"] for rec in http.get(f"{URL}/Tarefas?maxRecords=11", headers=AUTH).json()["records"]]
    r = http.delete(f"{URL}/Tarefas", params=[("records[]", i) for i in ids], headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_RECORDS"
    assert sandbox.store.count(BASE, "Tarefas") == n


def test_wrong_value_types_are_refused_and_nothing_is_written(api, sandbox) -> None:
    t = api.table(BASE, "Tarefas")
    n = sandbox.store.count(BASE, "Tarefas")
    expect(lambda: t.create({"Título": "x", "estimativa (h)": "muito"}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": ["a"]}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": "x", "vencimento": "amanhã"}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": "x", "concluída": "sim"}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": "x", "responsável": "recXXXXXXXXXXXXXX"}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": "x", "responsável": ["recXXXXXXXXXXXXXX"]}), 422, "ROW_DOES_NOT_EXIST")
    expect(lambda: t.create({"Título": "x", "Criado em": "2020-01-01"}), 422, "INVALID_VALUE_FOR_COLUMN")
    expect(lambda: t.create({"Título": "x", "Nope": 1}), 422, "UNKNOWN_FIELD_NAME")
    expect(lambda: t.create({"Título": "x", "tags": ["não existe"]}), 422, "INVALID_MULTIPLE_CHOICE_OPTIONS")
    # a batch with one bad record writes nothing
    expect(
        lambda: t.batch_create([{"Título": "ok"}, {"Título": "x", "estimativa (h)": "?"}]),
        422,
        "INVALID_VALUE_FOR_COLUMN",
    )
    assert sandbox.store.count(BASE, "Tarefas") == n


def test_broken_formulas(api) -> None:
    t = api.table(BASE, "Usuários")
    for formula in ("{status} = ", "AND(", "{Nope} = 1", "FOO(1)", "'unterminated", "{status} = ‘Ativo’"):
        err = expect(lambda f=formula: t.all(formula=f), 422, "INVALID_FILTER_BY_FORMULA")
        assert err.response.json()["error"]["message"].startswith("The formula for filtering records is invalid")
    err = expect(lambda: t.all(formula="AND({Nope}, {Nada})"), 422, "INVALID_FILTER_BY_FORMULA")
    assert "Nope" in str(err) and "Nada" in str(err)


def test_list_parameter_errors(api, http) -> None:
    t = api.table(BASE, "Usuários")
    expect(lambda: t.all(page_size=101), 422, "INVALID_REQUEST_UNKNOWN")
    expect(lambda: t.all(page_size=0), 422, "INVALID_REQUEST_UNKNOWN")
    expect(lambda: t.all(fields=["Nope"]), 422, "UNKNOWN_FIELD_NAME")
    expect(lambda: t.all(sort=["Nope"]), 422, "UNKNOWN_FIELD_NAME")
    expect(lambda: t.all(view="No such view"), 422, "VIEW_NAME_NOT_FOUND")
    expect(lambda: t.all(cell_format="string"), 422, "INVALID_REQUEST_UNKNOWN")
    r = http.get(f"{URL}/Usuários?bogus=1", headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    r = http.get(f"{URL}/Usuários?maxRecords=abc", headers=AUTH)
    assert r.status_code == 422


def test_offsets_bad_and_expired(api, sandbox, http) -> None:
    r = http.get(f"{URL}/Usuários", params={"offset": "garbage"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_OFFSET_VALUE"
    page = http.get(f"{URL}/Usuários", params={"pageSize": 10}, headers=AUTH).json()
    token = page["offset"]
    assert token.startswith("itr") and "/rec" in token
    again = http.get(f"{URL}/Usuários", params={"pageSize": 10, "offset": token}, headers=AUTH)
    assert again.status_code == 200 and len(again.json()["records"]) == 10
    sandbox.store.expire_iterators()
    r = http.get(f"{URL}/Usuários", params={"pageSize": 10, "offset": token}, headers=AUTH)
    assert r.status_code == 422 and r.json() == {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}
    sandbox.store.iterator_ttl_s = 0.0
    tok = http.get(f"{URL}/Usuários", params={"pageSize": 10}, headers=AUTH).json()["offset"]
    r = http.get(f"{URL}/Usuários", params={"pageSize": 10, "offset": tok}, headers=AUTH)
    assert r.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_offset_from_another_query_is_refused(http) -> None:
    tok = http.get(f"{URL}/Usuários", params={"pageSize": 5}, headers=AUTH).json()["offset"]
    r = http.get(f"{URL}/Usuários", params={"pageSize": 5, "offset": tok, "filterByFormula": "1"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_malformed_json_and_bodies(http) -> None:
    h = {**AUTH, "Content-Type": "application/json"}
    r = http.post(f"{URL}/Tarefas", data=b"{not json", headers=h)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_BODY"
    r = http.post(f"{URL}/Tarefas", data=b"[1,2]", headers=h)
    assert r.status_code == 422
    r = http.post(f"{URL}/Tarefas", json={"nope": 1}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    r = http.post(f"{URL}/Tarefas", json={}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_REQUEST_MISSING_FIELDS"
    r = http.post(f"{URL}/Tarefas/listRecords", json={"pageSize": "many"}, headers=AUTH)
    assert r.status_code == 422


def test_url_over_the_limit_is_refused(http) -> None:
    r = http.get(f"{URL}/Usuários", params={"filterByFormula": "1=1" + " " * 16100}, headers=AUTH)
    assert r.status_code == 414 and r.json()["error"]["type"] == "URL_TOO_LONG"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "Título",
        "status",
        "vencimento",
        "responsável",
        "tags",
        "concluída",
        "estimativa (h)",
        "anexos",
        "Criado em",
        "Email do responsável",
        "x",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "PATCH", "PUT", "DELETE", "GET"]),
    body=st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "records": st.lists(
                    st.fixed_dictionaries(
                        {"fields": st.dictionaries(_field_names, _json, max_size=3)},
                        optional={"id": st.text(max_size=17)},
                    ),
                    max_size=3,
                )
            },
            optional={"typecast": st.booleans(), "performUpsert": _json},
        ),
    ),
    suffix=st.sampled_from(["", "/listRecords", "/recXXXXXXXXXXXXXX", "/x/y/uploadAttachment"]),
)
def test_random_requests_never_get_a_500(http, method, body, suffix) -> None:
    r = http.request(
        method, f"{URL}/Tarefas{suffix}", data=json.dumps(body), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code < 500, r.text
    payload = r.json()
    if r.status_code >= 400:
        assert "error" in payload


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "fields[]",
                    "filterByFormula",
                    "maxRecords",
                    "pageSize",
                    "sort[0][field]",
                    "sort[0][direction]",
                    "view",
                    "offset",
                    "cellFormat",
                    "timeZone",
                    "userLocale",
                ]
            ),
            st.text(max_size=30),
        ),
        max_size=5,
    )
)
def test_random_list_queries_never_get_a_500(http, params) -> None:
    r = http.get(f"{URL}/Usuários", params=params, headers=AUTH)
    assert r.status_code in (200, 422), r.text


def test_unicode_digits_are_not_numbers(http) -> None:
    for value in ("¹", "٣", "1e3", " 5x"):
        r = http.get(f"{URL}/Usuários", params={"maxRecords": value}, headers=AUTH)
        assert r.status_code == 422, (value, r.text)
