"""The spec's examples (Teste 1 and Teste 2 of fase2-persistencia-avancada.md), verbatim."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from beststag_cli import clock
from beststag_cli.query.evaluate import apply_query
from beststag_cli.query.spec import QuerySpec

TESTE_1 = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}, "cacheTTL": 300}
TESTE_2 = {
    "operation": "get",
    "table": "Interações",
    "filters": {"timestamp": {"operator": "date_after", "days": -7}},
    "fields": ["user", "message", "timestamp"],
    "sort": [{"field": "timestamp", "direction": "desc"}],
    "maxRecords": 50,
}


def _lists(log: Any) -> list[tuple[str, str, int]]:
    return log.routes("list")


def test_teste_1_active_users_in_one_request(service: Any, requests_log: Any, wire: Any, api: Any, schema: Any) -> None:
    spec = QuerySpec.from_webhook(TESTE_1)
    service.bind(spec)  # warm the schema cache
    requests_log.clear()
    wire.clear()
    result = service.run(spec)
    assert len(_lists(requests_log)) == 1 and len(requests_log.calls) == 1
    sent = parse_qs(urlsplit(wire[0].request.url).query)
    assert sent["filterByFormula"] == ["{status}='Ativo'"]
    everyone = api.table("appBestStagSandbx", "Usuários").all()
    assert {r["id"] for r in result.records} == {r["id"] for r in everyone if r["fields"].get("status") == "Ativo"}
    assert 0 < len(result.records) < len(everyone)


def test_teste_2_last_7_days_one_request_only_those_fields(
    service: Any, requests_log: Any, wire: Any, api: Any, schema: Any
) -> None:
    now = clock.now()
    clock.set_now(now)
    spec = QuerySpec.from_webhook(TESTE_2)
    service.bind(spec)
    requests_log.clear()
    wire.clear()
    result = service.run(spec)
    assert requests_log.calls == [("GET", "list", 200)]
    sent = parse_qs(urlsplit(wire[0].request.url).query)
    assert sent["fields[]"] == ["user", "message", "timestamp"]
    assert sent["filterByFormula"] == ["IS_AFTER({timestamp}, DATEADD(NOW(), -7, 'days'))"]
    assert sent["maxRecords"] == ["50"] and sent["pageSize"] == ["50"]
    assert sent["sort[0][field]"] == ["timestamp"] and sent["sort[0][direction]"] == ["desc"]
    on_wire = wire[0].json()["records"]
    assert len(on_wire) == 50 and "offset" not in wire[0].json()
    assert all(set(r["fields"]) <= {"user", "message", "timestamp"} for r in on_wire)
    stamps = [r["fields"]["timestamp"] for r in result.records]
    assert stamps == sorted(stamps, reverse=True)
    everything = api.table("appBestStagSandbx", "Interações").all()
    expected = apply_query(spec, everything, schema.table("Interações"), now)
    assert [r["id"] for r in result.records] == [r["id"] for r in expected]


def test_max_records_above_a_page_stops_paging(service: Any, requests_log: Any) -> None:
    spec = QuerySpec.parse({"table": "Interações", "fields": ["Resumo"], "maxRecords": 150})
    service.bind(spec)
    requests_log.clear()
    assert len(service.run(spec).records) == 150
    assert len(_lists(requests_log)) == 2  # 100 + 50, and no third page


def test_contradiction_answers_empty_without_a_request(service: Any, requests_log: Any) -> None:
    spec = QuerySpec.parse({"table": "Usuários", "filters": {"and": [{"status": "Ativo"}, {"status": "Inativo"}]}})
    service.bind(spec)
    requests_log.clear()
    result = service.run(spec)
    assert result.records == [] and result.empty_by_contradiction
    assert requests_log.calls == []


def test_long_formula_goes_by_post(service: Any, requests_log: Any, wire: Any) -> None:
    names = [f"Pessoa {i:04d} " + "x" * 40 for i in range(400)] + ["Débora Barbosa"]
    spec = QuerySpec.parse({"table": "Usuários", "filters": {"Nome": names}, "fields": ["Nome"]})
    plan = service.explain(spec)
    assert plan.method == "POST" and plan.url_length >= 16000
    requests_log.clear()
    result = service.run(spec)
    assert requests_log.calls == [("POST", "list", 200)]
    assert [r["fields"]["Nome"] for r in result.records] == ["Débora Barbosa"]
