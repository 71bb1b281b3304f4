"""`beststag query explain|run` and `beststag records ...` through the CLI, against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

TESTE_2_FILTER = '{"timestamp": {"operator": "date_after", "days": -7}}'


def _warm(cli: Any, log: Any) -> None:
    """Fill the on-disk schema cache, then forget the requests it cost."""
    assert cli("--json", "query", "run", "Métricas", "--max", "1", "--fields", "Nome").exit_code == 0
    log.clear()


BAD = [
    (["-f", '{"status": '], "not valid JSON"),
    (["-f", '{"status": {"operator": "bigger", "value": 1}}'], "unknown operator 'bigger'"),
    (["-f", '{"status": {"operator": "eq"}}'], 'needs a "value"'),
    (["-f", '{"mensalidade": "caro"}'], "needs a number"),
    (["-f", '{"ativo no WhatsApp": "sim"}'], "true or false"),
    (["-f", '{"último acesso": {"operator": "date_after", "days": "sete"}}'], "whole number"),
    (["-f", '{"último acesso": {"operator": "date_after", "value": "ontem"}}'], "not an ISO date"),
    (["-f", '{"status": {"operator": "date_after", "days": -7}}'], "makes no sense"),
    (["-f", '{"ativo no WhatsApp": {"operator": "date_after", "days": -7}}'], "makes no sense"),
    (["-f", '{"stauts": "Ativo"}'], 'did you mean "status"'),
    (["-f", '{"status": "ativo"}'], 'did you mean "Ativo"'),
    (["-f", '{"tags": "VIP"}'], 'did you mean "vip"'),
    (["-f", "[1, 2]"], "expected an object"),
    (["--fields", "Nome,emial"], 'did you mean "email"'),
    (["--sort", "-avatar"], "cannot sort"),
    (["--view", "Ativoss"], 'did you mean "Ativos"'),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    cli: Any, requests_log: Any, args: list[str], message: str
) -> None:
    _warm(cli, requests_log)
    for command in ("run", "explain"):
        res = cli("query", command, "Usuários", *args)
        assert res.exit_code == 2, res
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and message in lines[0], res.stderr
        assert res.stdout == ""
    assert requests_log.calls == []


def test_unknown_table_and_json_errors(cli: Any, requests_log: Any) -> None:
    _warm(cli, requests_log)
    res = cli("--json", "query", "run", "Usuarios", "-f", '{"status": "Ativo"}')
    assert res.exit_code == 2
    err = res.json()["error"]
    assert err["type"] == "unknown_table" and 'did you mean "Usuários"' in err["message"]
    assert requests_log.calls == []


def test_malformed_json_sends_nothing_even_with_a_cold_schema_cache(cli: Any, requests_log: Any) -> None:
    res = cli("query", "run", "Usuários", "-f", "{status: Ativo}")
    assert res.exit_code == 2 and "not valid JSON" in res.stderr
    assert requests_log.calls == []


def test_run_json_and_ndjson(cli: Any, requests_log: Any) -> None:
    res = cli(
        "--json",
        "query",
        "run",
        "Interações",
        "-f",
        TESTE_2_FILTER,
        "--fields",
        "user,message,timestamp",
        "--sort",
        "-timestamp",
        "--max",
        "50",
    )
    assert res.exit_code == 0, res
    doc = res.json()
    assert doc["table"] == "Interações" and len(doc["records"]) == 50 == doc["count"]
    assert all(set(r) == {"id", "createdTime", "fields"} for r in doc["records"])
    assert all(set(r["fields"]) <= {"user", "message", "timestamp"} for r in doc["records"])
    assert len(requests_log.routes("list")) == 1
    nd = cli("query", "run", "Usuários", "-f", '{"status": "Ativo"}', "--fields", "Nome", "--ndjson", "--max", "5")
    lines = nd.stdout.splitlines()
    assert nd.exit_code == 0 and len(lines) == 5
    assert all(set(json.loads(x)["fields"]) <= {"Nome"} for x in lines)


def test_run_rich_table(cli: Any) -> None:
    res = cli("query", "run", "Usuários", "-f", '{"plano": "Enterprise"}', "--fields", "Nome,plano", "--max", "3")
    assert res.exit_code == 0
    assert "Enterprise" in res.stdout and "record(s)" in res.stderr  # piped: the title goes to stderr


def test_explain_json(cli: Any, requests_log: Any) -> None:
    res = cli(
        "--json",
        "query",
        "explain",
        "Interações",
        "-f",
        TESTE_2_FILTER,
        "--fields",
        "user,message,timestamp",
        "--sort",
        "-timestamp",
        "--max",
        "50",
    )
    assert res.exit_code == 0, res
    plan = res.json()
    assert plan["formula"] == "IS_AFTER({timestamp}, DATEADD(NOW(), -7, 'days'))"
    assert plan["method"] == "GET" and plan["requests"] == 1 and plan["page_size"] == 50
    assert plan["record_count"] == 1000 and plan["count_source"] == "counted now"
    assert plan["complexity"]["parts"]["date_math"] == 2 and plan["complexity"]["score"] > 0
    assert plan["est_bytes"] > 0 and plan["est_seconds"] >= 0
    # the count is journaled: a second explain costs no request
    requests_log.clear()
    again = cli("--json", "query", "explain", "Interações")
    assert again.json()["count_source"].startswith("journal snapshot")
    assert requests_log.routes("list") == []
    warnings = " ".join(again.json()["warnings"])
    assert "no field selection" in warnings and "unbounded" in warnings
    assert again.json()["requests"] == 10


def test_explain_rich_and_contradiction(cli: Any, requests_log: Any) -> None:
    res = cli("query", "explain", "Usuários", "-f", '{"mensalidade": {"gt": 100, "lt": 50}}')
    assert res.exit_code == 0
    assert "FALSE()" in res.stdout and "never match" in res.stdout
    assert requests_log.routes("list") == []


# ------------------------------------------------------------------------------------------ records
# what the gateway tells its change sink per batch: tests/query/test_evaluate_and_writes.py
def test_records_create_update_upsert_delete(cli: Any, requests_log: Any, sandbox: Any) -> None:
    before = sandbox.store.count("appBestStagSandbx", "Tarefas")
    lines = "\n".join(json.dumps({"fields": {"Título": f"tarefa {i}", "prioridade": "Alta"}}) for i in range(25))
    res = cli("--json", "records", "create", "Tarefas", "--file", "-", input=lines)
    assert res.exit_code == 0, res
    created = res.json()["records"]
    assert len(created) == 25 and res.json()["requests"] == 3
    assert [m for m, r, _ in requests_log.calls if r == "create"] == ["POST"] * 3
    assert sandbox.store.count("appBestStagSandbx", "Tarefas") == before + 25
    assert all(r["fields"]["prioridade"] == "Alta" for r in created)

    ids = [r["id"] for r in created]
    upd = cli(
        "--json",
        "records",
        "update",
        "Tarefas",
        "--data",
        json.dumps([{"id": i, "fields": {"prioridade": "Baixa"}} for i in ids[:12]]),
    )
    assert upd.exit_code == 0 and upd.json()["requests"] == 2
    assert all(r["fields"]["prioridade"] == "Baixa" for r in upd.json()["records"])

    ups = cli(
        "--json",
        "records",
        "upsert",
        "Tarefas",
        "--merge-on",
        "Título",
        "--data",
        json.dumps(
            [
                {"fields": {"Título": "tarefa 0", "prioridade": "Urgente"}},
                {"fields": {"Título": "tarefa nova", "prioridade": "Média"}},
            ]
        ),
    )
    assert ups.exit_code == 0, ups
    assert len(ups.json()["created"]) == 1

    dele = cli("--json", "records", "delete", "Tarefas", "--yes", *[x for i in ids for x in ("--id", i)])
    assert dele.exit_code == 0 and dele.json()["count"] == 25
    assert {r["id"] for r in dele.json()["records"]} == set(ids)
    assert sandbox.store.count("appBestStagSandbx", "Tarefas") == before + 1


def test_records_bad_input_sends_nothing(cli: Any, requests_log: Any) -> None:
    _warm(cli, requests_log)
    cases = [
        (["create", "Tarefas", "--data", '{"fields": {"Titulo": "x"}}'], 'did you mean "Título"'),
        (["create", "Tarefas", "--data", "{oops"], "not valid JSON"),
        (["update", "Tarefas", "--data", '{"fields": {"Título": "x"}}'], 'needs an "id"'),
        (["delete", "Tarefas", "--yes", "--id", "nope"], "record id"),
        (["create", "Tarefs", "--data", '{"Título": "x"}'], 'did you mean "Tarefas"'),
        (["create", "Tarefas"], "nothing to create"),
    ]
    for args, message in cases:
        res = cli("records", *args)
        assert res.exit_code == 2, (args, res)
        assert message in res.stderr, (args, res.stderr)
    assert requests_log.calls == []
