"""The three webhooks with the spec's bodies, auth, and error answers (TestClient, in-process)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox import FaultConfig


def test_cache_get_miss_then_hit_with_the_spec_body(client) -> None:
    body = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}, "cacheTTL": 300}
    first = client.post("/webhook/airtable/cache", json=body)
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["cache"]["status"] == "miss" and data["records"]
    assert all(r["fields"]["status"] == "Ativo" for r in data["records"])
    second = client.post("/webhook/airtable/cache", json=body).json()
    assert second["cache"]["status"] == "hit" and second["records"] == data["records"]
    assert second["cache"]["ttl_s"] == 300 and second["cache"]["stale"] is False


def test_cache_teste2_fields_sort_max(client) -> None:
    body = {
        "operation": "get",
        "table": "Interações",
        "filters": {"timestamp": {"operator": "date_after", "days": -7}},
        "fields": ["user", "message", "timestamp"],
        "sort": [{"field": "timestamp", "direction": "desc"}],
        "maxRecords": 50,
    }
    r = client.post("/webhook/airtable/cache", json=body)
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert 0 < len(recs) <= 50
    assert all(set(x["fields"]) <= {"user", "message", "timestamp"} for x in recs)
    stamps = [x["fields"]["timestamp"] for x in recs]
    assert stamps == sorted(stamps, reverse=True)


def test_cache_invalidate_record_and_table_and_set(client) -> None:
    body = {"operation": "get", "table": "Tarefas", "maxRecords": 2}
    rid = client.post("/webhook/airtable/cache", json=body).json()["records"][0]["id"]
    r = client.post("/webhook/airtable/cache", json={"operation": "invalidate", "table": "Tarefas", "recordId": rid})
    assert r.status_code == 200 and r.json()["invalidated"]["scope"] == "record"
    assert client.post("/webhook/airtable/cache", json=body).json()["cache"]["status"] == "miss"
    r = client.post("/webhook/airtable/cache", json={"operation": "invalidate", "table": "Tarefas"})
    assert r.json()["invalidated"]["scope"] == "table"
    data = [{"id": "rec00000000000009", "createdTime": "2026-01-01T00:00:00.000Z", "fields": {"Título": "t"}}]
    r = client.post(
        "/webhook/airtable/cache",
        json={"operation": "set", "table": "Tarefas", "filters": {"status": "Cancelada"}, "data": data},
    )
    assert r.status_code == 200 and r.json()["stored"]
    got = client.post(
        "/webhook/airtable/cache", json={"operation": "get", "table": "Tarefas", "filters": {"status": "Cancelada"}}
    ).json()
    assert got["records"] == data and got["cache"]["status"] == "hit"


def test_auth_missing_and_wrong(client) -> None:
    body = {"operation": "get", "table": "Usuários"}
    r = client.post("/webhook/airtable/cache", json=body, headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    r = client.post("/webhook/airtable/cache", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = client.post(
        "/webhook/airtable/cache",
        content=b"{not json",
        headers={"Authorization": "Bearer nope", "Content-Type": "application/json"},
    )
    assert r.status_code == 401  # auth is checked before the body is read
    assert client.get("/jobs/x", headers={"Authorization": ""}).status_code == 401


def test_bad_bodies_name_the_field(client) -> None:
    cases = [
        ({"operation": "fetch", "table": "Usuários"}, 422, "operation"),
        ({"table": "Usuários"}, 422, "operation"),
        ({"operation": "get", "table": "Usuários", "cacheTTL": "long"}, 422, "cacheTTL"),
        ({"operation": "get", "table": "Usuários", "recordId": "123"}, 422, "recordId"),
        ({"operation": "get", "table": "Usuários", "filters": {"status": {"operator": "near"}}}, 422, "near"),
        ({"operation": "get", "table": "Usuários", "fields": ["Nme"]}, 422, "Nme"),
        ({"operation": "get", "table": "Usuários", "extra": 1}, 422, "extra"),
        ({"operation": "set", "table": "Usuários"}, 422, "data"),
        ({"operation": "get", "table": "Usuarios"}, 404, "did you mean"),
    ]
    for body, status, word in cases:
        r = client.post("/webhook/airtable/cache", json=body)
        assert r.status_code == status, (body, r.text)
        assert word in r.json()["error"]["message"] or word in str(r.json()), (body, r.text)
    r = client.post("/webhook/airtable/cache", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = client.post("/webhook/airtable/cache", content=b"operation=get", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    big = {"operation": "get", "table": "Usuários", "fields": ["x" * 1000] * 2000}
    assert client.post("/webhook/airtable/cache", json=big).status_code == 413
    assert client.post("/webhook/airtable/backup", json={"backup_type": "weekly"}).status_code == 422
    bad_range = {"metric_type": "usage", "time_range": "2h"}
    assert client.post("/webhook/airtable/metrics", json=bad_range).status_code == 422


def test_upstream_down_is_503_or_stale(client, sandbox, settings) -> None:
    settings.airtable.max_retries = 0
    body = {"operation": "get", "table": "Eventos", "maxRecords": 3}
    client.post("/webhook/airtable/cache", json=body)
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    r = client.post("/webhook/airtable/cache", json={**body, "refresh": True})
    assert r.status_code == 200 and r.json()["cache"]["stale"] is True
    r = client.post("/webhook/airtable/cache", json={"operation": "get", "table": "Eventos", "maxRecords": 4})
    assert r.status_code == 503 and r.json()["error"]["type"] == "upstream_unavailable"


def test_backup_job_202_then_409_then_done(client) -> None:
    r = client.post("/webhook/airtable/backup", json={"backup_type": "critical", "tables": ["Usuários"]})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "running" and r.headers["Location"] == f"/jobs/{job['job_id']}"
    again = client.post("/webhook/airtable/backup", json={"backup_type": "critical"})
    assert again.status_code in (409, 202)  # 409 while the first runs (it may already be done)
    if again.status_code == 409:
        assert job["job_id"] in again.json()["error"]["message"]
    for _ in range(200):
        st = client.get(f"/jobs/{job['job_id']}").json()
        if st["status"] != "running":
            break
        time.sleep(0.05)
    assert st["status"] == "ok", st
    assert st["result"]["tables"]["Usuários"]["records"] == 100
    assert (
        client.post("/webhook/airtable/backup", json={"backup_type": "critical", "tables": ["Usuarios"]}).status_code
        == 404
    )
    assert client.get("/jobs/0123456789ab").status_code == 404  # well formed, never started
    assert client.get("/jobs/nope").status_code == 422  # not a job id


def test_metrics_usage_figures(client) -> None:
    r = client.post("/webhook/airtable/metrics", json={"metric_type": "usage", "time_range": "24h"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["type"] == "usage" and data["range"] == "24h" and "usage" in data["metrics"]


def test_healthz_and_openapi(client) -> None:
    r = client.get("/healthz", headers={"Authorization": ""})
    assert r.status_code == 200 and r.json()["ok"] is True
    spec = client.get("/openapi.json").json()
    assert {"/webhook/airtable/cache", "/webhook/airtable/backup", "/webhook/airtable/metrics"} <= set(spec["paths"])


def test_requests_are_journaled(client, settings) -> None:
    client.post("/webhook/airtable/cache", json={"operation": "get", "table": "Usuários", "maxRecords": 1})
    client.post("/webhook/airtable/cache", json={"operation": "get", "table": "Usuários", "maxRecords": 1})
    from beststag_cli.journal import Journal

    rows = Journal(settings.paths.journal).query("SELECT endpoint, status, cache_status FROM webhook_requests")
    assert [r["cache_status"] for r in rows] == ["miss", "hit"] and all(r["status"] == 200 for r in rows)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=10,
)
_cache_bodies = st.fixed_dictionaries(
    {
        "operation": st.sampled_from(["get", "set", "invalidate", "x"]),
        "table": st.sampled_from(["Usuários", "Tarefas", "Nope", "", "../x"]),
    },
    optional={
        "recordId": st.one_of(st.text(max_size=20), st.just("rec00000000000001")),
        "cacheTTL": st.one_of(st.integers(-5, 10**7), st.text(max_size=5)),
        "filters": _json,
        "fields": st.lists(st.sampled_from(["Nome", "status", "Título", "?"]), max_size=3),
        "sort": _json,
        "maxRecords": st.integers(-2, 200),
        "data": _json,
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_cache_bodies, _json), path=st.sampled_from(["cache", "backup", "metrics"]))
def test_fuzzed_bodies_never_get_a_500(client, body, path) -> None:
    if path == "backup" and isinstance(body, dict) and body.get("backup_type"):
        return  # starting real backups is covered above
    r = client.post(f"/webhook/airtable/{path}", json=body)
    assert r.status_code < 500 or r.status_code == 503, (body, r.text)
    assert "error" in r.json() or r.status_code == 200


def test_a_write_through_beststag_shows_in_the_next_hit(client, app) -> None:
    from beststag_cli.query.writes import Writer, to_records

    body = {
        "operation": "get",
        "table": "Usuários",
        "filters": {"status": "Ativo"},
        "fields": ["Nome"],
        "cacheTTL": 300,
    }
    client.post("/webhook/airtable/cache", json=body)
    before = client.post("/webhook/airtable/cache", json=body).json()
    assert before["cache"]["status"] == "hit"
    target = before["records"][0]["id"]
    Writer(app.state.gateway).write(
        "update", "Usuários", to_records("update", [{"id": target, "fields": {"Nome": "Renomeada Pelo Workflow"}}])
    )
    after = client.post("/webhook/airtable/cache", json=body).json()
    assert after["cache"]["status"] == "hit"  # patched in place, no re-fetch, and never the old bytes
    names = {r["id"]: r["fields"]["Nome"] for r in after["records"]}
    assert names[target] == "Renomeada Pelo Workflow"
    assert [r["id"] for r in after["records"]] != [r["id"] for r in before["records"]] or names != {
        r["id"]: r["fields"]["Nome"] for r in before["records"]
    }
