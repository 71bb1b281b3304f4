"""The sandbox on a real loopback socket (`sandbox serve`), driven by pyairtable and plain requests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from pyairtable import Api

from beststag_cli.sandbox import SANDBOX_BASE_ID, FaultConfig, Sandbox
from beststag_cli.sandbox.server import serve_in_thread

BASE = SANDBOX_BASE_ID
AUTH = {"Authorization": "Bearer sandbox"}
TIMEOUT = (5, 20)  # (connect, read) seconds: a hung server fails the test instead of hanging it


@dataclass
class Live:
    sandbox: Sandbox
    port: int
    #: one entry per TCP connection the server accepted
    connections: list[Any] = field(default_factory=list)
    #: (method, route, status) per request, as the app saw them
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> Api:
        return Api("sandbox", endpoint_url=self.url, retry_strategy=None, timeout=TIMEOUT)

    def table_url(self, table: str) -> str:
        from urllib.parse import quote

        return f"{self.url}/v0/{BASE}/{quote(table, safe='')}"


@pytest.fixture
def live(sandbox: Sandbox, request: pytest.FixtureRequest) -> Live:
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    lv = Live(sandbox, server.server_address[1])
    accept = server.get_request

    def counting_accept() -> Any:
        conn = accept()
        lv.connections.append(conn[1])
        return conn

    server.get_request = counting_accept  # type: ignore[method-assign]
    sandbox.app.observers.append(lambda m, r, s: lv.calls.append((m, r, s)))
    return lv


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    yield s
    s.close()


def test_health_route(live: Live, session: requests.Session) -> None:
    r = session.get(f"{live.url}/_sandbox/health", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_list_paginates_over_1000_interactions(live: Live) -> None:
    table = live.api().table(BASE, "Interações")
    total = live.sandbox.store.count(BASE, "Interações")
    assert total == 1000
    records = table.all()
    assert len(records) == total and len({r["id"] for r in records}) == total
    assert live.calls == [("GET", "list", 200)] * 10
    pages = list(table.iterate(page_size=37, fields=["Resumo"]))
    assert [len(p) for p in pages] == [37] * 27 + [1]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in records]
    assert all(set(r["fields"]) <= {"Resumo"} for p in pages for r in p)
    # the same records as the in-process adapter serves
    assert records == live.sandbox.api(retry_strategy=None).table(BASE, "Interações").all()


def test_long_formula_goes_by_post_list_records(live: Live) -> None:
    table = live.api().table(BASE, "Usuários")
    wanted = [r["id"] for r in table.all(max_records=40)]
    live.calls.clear()
    formula = (
        "OR("
        + ",".join(f"RECORD_ID()='{rid}'" for rid in wanted)
        + ","
        + ",".join(f"{{Nome}}='ninguém-{i:05d}-{'x' * 60}'" for i in range(200))
        + ")"
    )
    assert len(formula) > 16000
    rows = table.all(formula=formula, page_size=15, sort=["Nome"])
    assert sorted(r["id"] for r in rows) == sorted(wanted)
    assert live.calls == [("POST", "list", 200)] * 3


def test_url_of_16000_characters_is_refused_with_414(live: Live, session: requests.Session) -> None:
    formula = "OR(" + ",".join(["{Nome}='x'"] * 1700) + ")"
    r = session.get(live.table_url("Usuários"), params={"filterByFormula": formula}, headers=AUTH, timeout=TIMEOUT)
    assert len(r.request.url or "") >= 16000
    assert r.status_code == 414 and r.json()["error"]["type"] == "URL_TOO_LONG"


def test_create_update_delete_round_trip(live: Live) -> None:
    table = live.api().table(BASE, "Tarefas")
    store = live.sandbox.store
    before = store.count(BASE, "Tarefas")
    one = table.create({"Título": "pelo socket", "status": "A fazer", "estimativa (h)": 1.5})
    many = table.batch_create([{"Título": f"lote {i}", "prioridade": "Baixa"} for i in range(12)])
    assert store.count(BASE, "Tarefas") == before + 13
    assert [m for m, r, _ in live.calls if r == "create"] == ["POST"] * 3  # 1 + chunks of 10 and 2

    patched = table.update(one["id"], {"status": "Em andamento"})
    assert patched["fields"]["status"] == "Em andamento" and patched["fields"]["estimativa (h)"] == 1.5
    replaced = table.update(one["id"], {"Título": "só o título"}, replace=True)
    assert replaced["fields"]["Título"] == "só o título"
    assert "status" not in replaced["fields"] and "estimativa (h)" not in replaced["fields"]
    batch = table.batch_update([{"id": r["id"], "fields": {"prioridade": "Alta"}} for r in many])
    assert [r["id"] for r in batch] == [r["id"] for r in many]
    assert all(r["fields"] == {**m["fields"], "prioridade": "Alta"} for r, m in zip(batch, many, strict=True))
    assert table.get(one["id"]) == replaced

    assert table.delete(one["id"]) == {"id": one["id"], "deleted": True}
    deleted = table.batch_delete([r["id"] for r in many])
    assert [d["id"] for d in deleted] == [r["id"] for r in many] and all(d["deleted"] for d in deleted)
    assert store.count(BASE, "Tarefas") == before
    with pytest.raises(requests.HTTPError) as e:
        table.get(one["id"])
    assert e.value.response.status_code == 404 and e.value.response.json() == {"error": "NOT_FOUND"}


def test_accented_table_names(live: Live, session: requests.Session) -> None:
    api = live.api()
    for name in ("Usuários", "Memória Contextual", "Métricas"):
        by_name = api.table(BASE, name).all()
        assert len(by_name) == live.sandbox.store.count(BASE, name) > 0
    tid = api.base(BASE).schema().table("Memória Contextual").id
    assert api.table(BASE, tid).all() == api.table(BASE, "Memória Contextual").all()
    # percent-encoded UTF-8, as both clients send it; `+` is a space only in the query string
    r = session.get(
        f"{live.url}/v0/{BASE}/Mem%C3%B3ria%20Contextual?pageSize=1&fields%5B%5D=Chave", headers=AUTH, timeout=TIMEOUT
    )
    assert r.status_code == 200 and len(r.json()["records"]) == 1
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    r = session.get(
        f"{live.url}/v0/{BASE}/Usu%C3%A1rios?filterByFormula=%7Bstatus%7D+%3D+%27Ativo%27&fields%5B%5D=status",
        headers=AUTH,
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and {rec["fields"]["status"] for rec in r.json()["records"]} == {"Ativo"}
    r = session.get(f"{live.url}/v0/{BASE}/Usuarios", headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 403 and r.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_422_error_bodies(live: Live, session: requests.Session) -> None:
    r = session.post(live.table_url("Tarefas"), json={"fields": {"Nope": "x"}}, headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 422 and r.reason == "Unprocessable Entity"
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert r.json() == {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Nope"'}}

    r = session.get(live.table_url("Usuários"), params={"filterByFormula": "{status} ="}, headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "INVALID_FILTER_BY_FORMULA"
    assert err["message"].startswith("The formula for filtering records is invalid: ")

    with pytest.raises(requests.HTTPError) as e:
        live.api().table(BASE, "Usuários").all(formula="{sem campo} = 1")
    assert e.value.response.status_code == 422
    assert e.value.response.json()["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    assert "INVALID_FILTER_BY_FORMULA" in str(e.value)


def test_trailing_slash_on_table_path_as_airtable_js_sends_it(live: Live, session: requests.Session) -> None:
    # airtable.js creates and batch-updates on `/v0/{base}/{table}/` (trailing slash, empty query)
    url = live.table_url("Tarefas") + "/?"
    r = session.post(url, json={"records": [{"fields": {"Título": "barra"}}]}, headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    rid = r.json()["records"][0]["id"]
    r = session.patch(
        url, json={"records": [{"id": rid, "fields": {"status": "A fazer"}}]}, headers=AUTH, timeout=TIMEOUT
    )
    assert r.status_code == 200 and r.json()["records"][0]["fields"]["status"] == "A fazer"
    r = session.get(live.table_url("Tarefas") + "/?pageSize=2", headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 200 and len(r.json()["records"]) == 2


def test_trailing_slash_in_process(sandbox: Sandbox) -> None:
    s = requests.Session()
    sandbox.mount(s)
    from beststag_cli.sandbox import SANDBOX_ENDPOINT

    r = s.post(
        f"{SANDBOX_ENDPOINT}/v0/{BASE}/Tarefas/?", json={"records": [{"fields": {"Título": "barra"}}]}, headers=AUTH
    )
    assert r.status_code == 200, r.text


def test_keep_alive_serves_many_requests_on_one_connection(live: Live, session: requests.Session) -> None:
    url = live.table_url("Usuários")
    first = session.get(url, params={"pageSize": 5}, headers=AUTH, timeout=TIMEOUT)
    assert first.status_code == 200
    for _ in range(5):
        r = session.get(url, params={"pageSize": 5, "offset": first.json()["offset"]}, headers=AUTH, timeout=TIMEOUT)
        assert r.status_code == 200 and len(r.json()["records"]) == 5
    assert session.get(f"{url}/rec00000000000000", headers=AUTH, timeout=TIMEOUT).status_code == 404
    assert (
        session.post(live.table_url("Tarefas"), json={"fields": {"Nope": 1}}, headers=AUTH, timeout=TIMEOUT).status_code
        == 422
    )
    assert session.get(f"{live.url}/v1/nothing", headers=AUTH, timeout=TIMEOUT).status_code == 404
    created = session.post(live.table_url("Tarefas"), json={"fields": {"Título": "k"}}, headers=AUTH, timeout=TIMEOUT)
    assert created.status_code == 200
    assert (
        session.delete(f"{live.table_url('Tarefas')}/{created.json()['id']}", headers=AUTH, timeout=TIMEOUT).json()[
            "deleted"
        ]
        is True
    )
    assert len(live.calls) == 11
    assert len(live.connections) == 1  # errors and bodies alike leave the connection open

    # the same on a bare HTTP/1.1 connection: answers come back in order, each with its Content-Length
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        for path in (
            f"/v0/{BASE}/Usu%C3%A1rios?pageSize=1",
            f"/v0/{BASE}/Usu%C3%A1rios/recNOPE0000000000",
            f"/v0/{BASE}/M%C3%A9tricas?pageSize=2",
        ):
            conn.request("GET", path, headers=AUTH)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.version == 11 and int(resp.headers["Content-Length"]) == len(body)
            json.loads(body)
            assert not resp.will_close
    finally:
        conn.close()
    assert len(live.connections) == 2


def test_dropped_connection_surfaces_as_connection_error(live: Live, session: requests.Session) -> None:
    api = live.api()
    live.sandbox.app.set_faults(FaultConfig(rate_drop=1.0))
    with pytest.raises(requests.ConnectionError):
        session.get(live.table_url("Métricas"), headers=AUTH, timeout=TIMEOUT)
    with pytest.raises(requests.ConnectionError):
        api.table(BASE, "Métricas").first()
    with pytest.raises(requests.ConnectionError):
        api.table(BASE, "Tarefas").create({"Título": "nunca respondida"})
    assert live.calls and all(s == 0 for _, _, s in live.calls)
    live.sandbox.app.set_faults(FaultConfig())
    assert api.table(BASE, "Métricas").first() is not None  # the server itself survived


def _without_url(att: dict[str, Any]) -> dict[str, Any]:
    out = {a: b for a, b in att.items() if a != "url"}
    if isinstance(out.get("thumbnails"), dict):  # images: each thumbnail has a signed URL too
        out["thumbnails"] = {n: _without_url(t) for n, t in out["thumbnails"].items()}
    return out


def _without_signed_urls(record: dict[str, Any]) -> dict[str, Any]:
    """Attachment URLs carry the host and an expiry second: drop them before comparing."""
    fields = {
        k: [_without_url(v) if isinstance(v, dict) else v for v in value] if isinstance(value, list) else value
        for k, value in record["fields"].items()
    }
    return {**record, "fields": fields}


def test_concurrent_clients_are_answered_correctly(live: Live) -> None:
    """8 threads × 25 requests, each answer checked against the in-process result."""
    inproc = live.sandbox.api(retry_strategy=None)
    users = [_without_signed_urls(u) for u in inproc.table(BASE, "Usuários").all()]
    queries: list[tuple[str, dict[str, Any]]] = [
        ("Usuários", {"formula": "{status} = 'Ativo'", "fields": ["Nome"], "sort": ["Nome"]}),
        ("Usuários", {"formula": "{status} = 'Inativo'", "fields": ["Nome", "status"]}),
        ("Métricas", {}),
        ("Tarefas", {"formula": "{prioridade} = 'Urgente'", "fields": ["Título", "prioridade"], "max_records": 20}),
        ("Interações", {"formula": "{canal} = 'Telegram'", "fields": ["canal"], "max_records": 30, "page_size": 10}),
    ]
    expected = [inproc.table(BASE, t).all(**kw) for t, kw in queries]
    n_threads, per_thread = 8, 25
    start = threading.Barrier(n_threads, timeout=10)

    def worker(k: int) -> list[str]:
        api = live.api()
        errors: list[str] = []
        start.wait()
        for i in range(per_thread):
            j = (k + i) % (len(queries) + 1)
            if j == len(queries):
                u = users[(k * per_thread + i) % len(users)]
                got = api.table(BASE, "Usuários").get(u["id"])
                if _without_signed_urls(got) != u:
                    errors.append(f"thread {k} request {i}: get {u['id']}")
            else:
                table, kw = queries[j]
                if api.table(BASE, table).all(**kw) != expected[j]:
                    errors.append(f"thread {k} request {i}: {table} {kw}")
        api.session.close()
        return errors

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        results = list(pool.map(worker, range(n_threads), timeout=60))
    assert [e for errs in results for e in errs] == []
    assert len(live.calls) >= n_threads * per_thread
    assert {s for _, _, s in live.calls} == {200}
