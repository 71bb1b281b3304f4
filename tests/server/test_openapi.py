"""The OpenAPI document tells the truth: the bearer scheme, and every status each route answers
(with the error body's schema), checked against the statuses these tests provoke on each route."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from beststag_cli.sandbox import FaultConfig

CACHE, BACKUP, METRICS = "/webhook/airtable/cache", "/webhook/airtable/backup", "/webhook/airtable/metrics"
JOB, HEALTH, NOTIFY = "/jobs/{job_id}", "/healthz", "/webhook/airtable/notify"
BODIES = {
    CACHE: {"operation": "get", "table": "Usuários", "maxRecords": 1},
    BACKUP: {"backup_type": "critical", "tables": ["Usuários"]},
    METRICS: {"metric_type": "performance", "time_range": "1h"},
}
JSON = {"Content-Type": "application/json"}


@dataclass
class World:
    """What a case drives: the test's client, sandbox and settings, and what earlier cases left (a job id)."""

    client: Any
    sandbox: Any
    settings: Any
    gateway: Any
    job_id: str = ""


@contextlib.contextmanager
def upstream_down(w: World) -> Iterator[None]:
    """Airtable answers 503 to everything and the gateway does not retry."""
    retries = w.settings.airtable.max_retries
    w.settings.airtable.max_retries = 0
    w.sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    try:
        yield
    finally:
        w.sandbox.app.set_faults(FaultConfig())
        w.settings.airtable.max_retries = retries


def _post(route: str, **kw: Any) -> Callable[[World], Any]:
    return lambda w: w.client.post(route, **kw)


def _down(send: Callable[[World], Any]) -> Callable[[World], Any]:
    def run(w: World) -> Any:
        with upstream_down(w):
            return send(w)

    return run


def _backup_while_cron_holds_the_lock(w: World) -> Any:
    from beststag_cli.backup.runner import base_lock

    with base_lock(w.settings, w.gateway.base_id):  # what a cron `backup run` holds while it runs
        return w.client.post(BACKUP, json=BODIES[BACKUP])


def _backup_started(w: World) -> Any:
    r = w.client.post(BACKUP, json=BODIES[BACKUP])
    w.job_id = r.json().get("job_id", "")
    return r


def _healthz(upstream_up: bool) -> Callable[[World], Any]:
    """A fresh app each time: the answer is kept 30 s, so one app cannot show both."""
    from fastapi.testclient import TestClient

    from beststag_cli.server.app import create_app

    def run(w: World) -> Any:
        with TestClient(create_app(w.settings)) as fresh:
            if upstream_up:
                return fresh.get(HEALTH)
            with upstream_down(w):
                return fresh.get(HEALTH)

    return run


SECRET_B64 = "c2VjcmV0LW9mLXRoZS13ZWJob29r"  # a webhook's MAC secret, as Airtable hands it (base64)


def _ping(mac: str | None) -> Callable[[World], Any]:
    """Airtable's ping for the base's webhook (enabled here with a known secret), signed with `mac`."""

    def run(w: World) -> Any:
        from beststag_cli.feed import notify, state

        state.save_new(w.gateway.journal, w.gateway.base_id, "achTestWebhook001", SECRET_B64, None, [])
        ping = {"base": {"id": w.gateway.base_id}, "webhook": {"id": "achTestWebhook001"}, "timestamp": "2026-12-01"}
        body = json.dumps(ping).encode()
        header = notify.mac_of(SECRET_B64, body) if mac is None else mac
        return w.client.post(NOTIFY, content=body, headers={**JSON, notify.MAC_HEADER: header, "Authorization": ""})

    return run


def _cases() -> list[tuple[str, str, int, str, Callable[[World], Any]]]:
    """(method, route, status, what provokes it, how): every answer each route can give, in order."""
    cases: list[tuple[str, str, int, str, Callable[[World], Any]]] = []
    for route, body in BODIES.items():
        cases += [
            ("post", route, 401, "wrong secret", _post(route, json=body, headers={"Authorization": "Bearer wrong"})),
            (
                "post",
                route,
                411,
                "no Content-Length",
                _post(route, content=b"{}", headers={**JSON, "Content-Length": ""}),
            ),
            (
                "post",
                route,
                413,
                "body too large",
                lambda w, route=route: w.client.post(
                    route, content=b" " * (w.settings.webhook.max_body_bytes + 1), headers=JSON
                ),
            ),
            ("post", route, 415, "not JSON", _post(route, content=b"{}", headers={"Content-Type": "text/plain"})),
            ("post", route, 422, "JSON cut short", _post(route, content=b'{"x": ', headers=JSON)),
            ("post", route, 422, "unknown key", _post(route, json={**body, "unexpected": 1})),
        ]
    cases += [
        ("post", CACHE, 200, "a read", _post(CACHE, json=BODIES[CACHE])),
        ("post", CACHE, 404, "unknown table", _post(CACHE, json={**BODIES[CACHE], "table": "Usuarios"})),
        (
            "post",
            CACHE,
            503,
            "Airtable down, nothing cached",
            _down(_post(CACHE, json={"operation": "get", "table": "Eventos", "maxRecords": 7})),
        ),
        ("post", METRICS, 200, "collected", _post(METRICS, json=BODIES[METRICS])),
        (
            "post",
            METRICS,
            503,
            "Airtable down",
            _down(_post(METRICS, json={"metric_type": "usage", "time_range": "1h"})),
        ),
        ("post", BACKUP, 404, "unknown table", _post(BACKUP, json={"backup_type": "critical", "tables": ["Usuarios"]})),
        ("post", BACKUP, 503, "Airtable down", _down(_post(BACKUP, json=BODIES[BACKUP]))),
        ("post", BACKUP, 409, "cron's backup holds the base's lock", _backup_while_cron_holds_the_lock),
        ("post", BACKUP, 202, "started", _backup_started),
        ("get", JOB, 200, "a started job", lambda w: w.client.get(f"/jobs/{w.job_id}")),
        ("get", JOB, 404, "a job id nobody started", lambda w: w.client.get("/jobs/0123456789ab")),
        ("get", JOB, 422, "not a job id", lambda w: w.client.get("/jobs/nope")),
        ("get", JOB, 401, "no secret", lambda w: w.client.get(f"/jobs/{w.job_id}", headers={"Authorization": ""})),
        ("post", NOTIFY, 204, "a ping with its MAC", _ping(None)),
        ("post", NOTIFY, 401, "a ping with a wrong MAC", _ping("hmac-sha256=" + "0" * 64)),
        (
            "post",
            NOTIFY,
            411,
            "no Content-Length",
            _post(NOTIFY, content=b"{}", headers={**JSON, "Content-Length": ""}),
        ),
        (
            "post",
            NOTIFY,
            413,
            "body too large",
            lambda w: w.client.post(NOTIFY, content=b" " * (w.settings.webhook.max_body_bytes + 1), headers=JSON),
        ),
        ("post", NOTIFY, 415, "not JSON", _post(NOTIFY, content=b"{}", headers={"Content-Type": "text/plain"})),
        ("get", HEALTH, 200, "all up", _healthz(upstream_up=True)),
        ("get", HEALTH, 503, "Airtable down", _healthz(upstream_up=False)),
    ]
    return cases


#: declared on every guarded route, provoked by none: the middleware's answer to a bug ("internal
#: error", details in the log only). No test can reach it without breaking the code on purpose.
ONLY_A_BUG = 500


def test_openapi_declares_exactly_the_statuses_each_route_answers(client, sandbox, settings, app) -> None:
    """Table-driven: each case provokes one status; per route, what the cases provoke is what the
    OpenAPI document declares (409 included: a backup while cron's holds the base's lock)."""
    spec = client.get("/openapi.json").json()
    w = World(client, sandbox, settings, app.state.gateway)
    provoked: dict[tuple[str, str], set[int]] = {}
    for method, route, status, why, send in _cases():
        r = send(w)
        assert r.status_code == status, (method, route, why, r.text)
        if status >= 400 and route != HEALTH:
            assert set(r.json()["error"]) >= {"type", "message", "hint"}, (why, r.text)
        provoked.setdefault((method, route), set()).add(status)
    declared = {
        (m, route): {int(s) for s in op["responses"]} for route, ops in spec["paths"].items() for m, op in ops.items()
    }
    assert set(provoked) == set(declared)  # every route of the document has its cases, and no other
    for key, statuses in declared.items():
        guarded = key[1] != HEALTH
        assert statuses - provoked[key] == ({ONLY_A_BUG} if guarded else set()), (key, statuses, provoked[key])
        assert provoked[key] <= statuses, (key, provoked[key] - statuses)


def test_openapi_declares_the_bearer_scheme_and_the_error_body(client) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values() if s["type"] == "http"] == ["bearer"]
    (scheme_name,) = schemes
    for route, ops in spec["paths"].items():
        for op in ops.values():
            for s in {int(s) for s in op["responses"]} - {200, 202, 204}:
                if route != HEALTH:
                    schema = op["responses"][str(s)]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (route, s, schema)
            if route.startswith(("/webhook/", "/jobs/")) and route != NOTIFY:  # Airtable's ping: its MAC
                assert op["security"] == [{scheme_name: []}], (route, op.get("security"))
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error"}


def test_a_json_decode_error_names_line_and_column(client) -> None:
    body = b'{\n  "operation": "get",\n  "table": "Usu\xc3\xa1rios"\n  "maxRecords": 1\n}'
    r = client.post("/webhook/airtable/cache", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_body"
    assert err["message"] == "body: not valid JSON: Expecting ',' delimiter at line 4 column 3", err
    assert err["fields"][0]["line"] == 4 and err["fields"][0]["column"] == 3
