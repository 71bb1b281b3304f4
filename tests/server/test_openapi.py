"""The OpenAPI document tells the truth: the bearer scheme, and every status each route answers
(with the error body's schema), checked against the statuses these tests provoke on each route."""

from __future__ import annotations

from typing import Any

from beststag_cli.sandbox import FaultConfig


def _provoke(client: Any, sandbox: Any, settings: Any) -> dict[tuple[str, str], set[int]]:
    """(method, route) -> the statuses seen by driving each route into each answer it can give."""
    seen: dict[tuple[str, str], set[int]] = {}

    def post(route: str, expect: int, **kw: Any) -> None:
        r = client.post(route, **kw)
        assert r.status_code == expect, (route, kw, r.text)
        if expect >= 400:
            assert set(r.json()["error"]) >= {"type", "message", "hint"}, r.text
        seen.setdefault(("post", route), set()).add(r.status_code)

    cache, backup, metrics = "/webhook/airtable/cache", "/webhook/airtable/backup", "/webhook/airtable/metrics"
    bodies = {cache: {"operation": "get", "table": "Usuários", "maxRecords": 1},
              backup: {"backup_type": "critical", "tables": ["Usuários"]},
              metrics: {"metric_type": "performance", "time_range": "1h"}}
    for route, body in bodies.items():
        post(route, 401, json=body, headers={"Authorization": "Bearer wrong"})
        post(route, 411, content=b"{}", headers={"Content-Type": "application/json", "Content-Length": ""})
        post(route, 413, content=b" " * (settings.webhook.max_body_bytes + 1),
             headers={"Content-Type": "application/json"})
        post(route, 415, content=b"{}", headers={"Content-Type": "text/plain"})
        post(route, 422, content=b'{"x": ', headers={"Content-Type": "application/json"})
        post(route, 422, json={**body, "unexpected": 1})
    post(cache, 200, json=bodies[cache])
    post(cache, 404, json={**bodies[cache], "table": "Usuarios"})
    post(metrics, 200, json=bodies[metrics])
    post(backup, 404, json={"backup_type": "critical", "tables": ["Usuarios"]})
    settings.airtable.max_retries = 0
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    post(cache, 503, json={"operation": "get", "table": "Eventos", "maxRecords": 7})
    post(backup, 503, json=bodies[backup])
    post(metrics, 503, json={"metric_type": "usage", "time_range": "1h"})
    sandbox.app.set_faults(FaultConfig())
    # a backup holding the lock: the second one is refused with 409 (the first may be done by then)
    first = client.post(backup, json=bodies[backup])
    assert first.status_code == 202, first.text
    seen[("post", backup)].add(202)
    job = first.json()["job_id"]
    again = client.post(backup, json=bodies[backup])
    seen[("post", backup)].add(again.status_code)
    for route, status in (("/jobs/" + job, 200), ("/jobs/nope", 404)):
        r = client.get(route)
        assert r.status_code == status, r.text
        seen.setdefault(("get", "/jobs/{job_id}"), set()).add(status)
    r = client.get("/jobs/" + job, headers={"Authorization": ""})
    assert r.status_code == 401
    seen[("get", "/jobs/{job_id}")].add(401)
    seen[("get", "/healthz")] = {client.get("/healthz").status_code}
    return seen


def test_openapi_declares_every_status_and_the_bearer_scheme(client, sandbox, settings) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values() if s["type"] == "http"] == ["bearer"]
    (scheme_name,) = schemes
    seen = _provoke(client, sandbox, settings)
    assert {s for statuses in seen.values() for s in statuses} >= {401, 404, 413, 415, 422, 503}
    for (method, route), statuses in seen.items():
        op = spec["paths"][route][method]
        declared = {int(s) for s in op["responses"]}
        assert statuses <= declared, (method, route, statuses - declared)
        for s in declared - {200, 202}:
            if route != "/healthz":
                schema = op["responses"][str(s)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (route, s, schema)
        if route.startswith(("/webhook/", "/jobs/")):
            assert op["security"] == [{scheme_name: []}], (route, op.get("security"))
    assert 409 in {int(s) for s in spec["paths"]["/webhook/airtable/backup"]["post"]["responses"]}
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error"}


def test_a_json_decode_error_names_line_and_column(client) -> None:
    body = b'{\n  "operation": "get",\n  "table": "Usu\xc3\xa1rios"\n  "maxRecords": 1\n}'
    r = client.post("/webhook/airtable/cache", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_body"
    assert err["message"] == "body: not valid JSON: Expecting ',' delimiter at line 4 column 3", err
    assert err["fields"][0]["line"] == 4 and err["fields"][0]["column"] == 3
