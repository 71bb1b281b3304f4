"""Hostile input: every case is refused with the documented code, one clear line, no traceback, nothing written.

CLI cases run in-process against the test's sandbox copy (exit 2); webhook cases go through the
FastAPI app with TestClient (the documented 4xx). Before/after each case the sandbox's record
counts, the backups folder and the cache's data entries are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import assert_clean_failure, cache_keys, data_keys_written, listing, record_counts

CYR_A = "\u0430"  # Cyrillic small a, looks like Latin a
CYR_S = "\u0455"  # Cyrillic small dze, looks like Latin s


def _deep_and(n: int) -> str:
    return '{"and":[' * n + '{"status":"Ativo"}' + "]}" * n


def _deep_mixed(n: int) -> str:
    f: Any = {"status": "Ativo"}
    for i in range(n):
        f = {("and" if i % 2 else "or"): [f, {"plano": "Pro"}]}
    return json.dumps(f)


BIG_VALUE = json.dumps({"Nome": "a" * 1_000_000})
BIG_LIST = json.dumps({"Nome": {"in": [f"n{i}" for i in range(50_000)]}})

# (id, argv) → exit 2. {cfg:...} is replaced by a config file with that text.
CLI_CASES: list[tuple[str, list[str]]] = [
    # malformed and oversized filters
    ("filter-not-json", ["query", "run", "Usuários", "--filter", "{bad"]),
    ("filter-truncated", ["cache", "get", "Usuários", "--filter", '{"status": "Ativo"']),
    ("filter-not-object", ["cache", "get", "Usuários", "--filter", "[1, 2]"]),
    ("filter-scalar", ["query", "run", "Usuários", "--filter", '"Ativo"']),
    ("filter-deep-10000-and", ["query", "run", "Usuários", "--filter", _deep_and(10_000)]),
    ("filter-deep-10000-and-cache", ["cache", "get", "Usuários", "--filter", _deep_and(10_000)]),
    ("filter-deep-300-mixed", ["cache", "get", "Usuários", "--filter", _deep_mixed(300)]),
    ("filter-deep-not", ["query", "run", "Usuários", "--filter", '{"not":' * 400 + '{"status":"Ativo"}' + "}" * 400]),
    (
        "filter-unknown-operator",
        ["query", "run", "Usuários", "--filter", '{"status": {"operator": "regex", "value": "."}}'],
    ),
    ("filter-unknown-op-key", ["cache", "get", "Usuários", "--filter", '{"status": {"like": "%A%"}}']),
    ("filter-gt-text", ["query", "run", "Usuários", "--filter", '{"mensalidade": {"gt": "abc"}}']),
    (
        "filter-date-bad-days",
        ["query", "run", "Interações", "--filter", '{"timestamp": {"operator": "date_after", "days": "x"}}'],
    ),
    ("filter-and-not-list", ["query", "run", "Usuários", "--filter", '{"and": {"status": "Ativo"}}']),
    ("filter-empty-field", ["query", "run", "Usuários", "--filter", '{"": "x"}']),
    ("filter-nan", ["query", "run", "Usuários", "--filter", '{"mensalidade": NaN}']),
    # formula injection in field names
    ("field-inject-brace", ["query", "run", "Usuários", "--filter", '{"Nome} = 1, TRUE(), {Nome": "a"}']),
    ("field-inject-or", ["cache", "get", "Usuários", "--filter", '{"status}=\'Ativo\',OR(TRUE()),{x": "a"}']),
    ("field-inject-fields", ["query", "run", "Usuários", "--fields", "Nome},{email"]),
    ("field-inject-sort", ["query", "run", "Usuários", "--sort", "-Nome})&TRUE()&({"]),
    (
        "records-create-inject-field",
        ["records", "create", "Usuários", "--data", '{"fields": {"Nome}&TRUE()&{x": "a"}}'],
    ),
    # paths in table names
    ("table-dotdot", ["query", "run", "../../etc/passwd"]),
    ("table-absolute", ["cache", "get", "/etc/passwd"]),
    ("table-dotdot-inside", ["query", "run", "Usuários/../Tarefas"]),
    ("table-backslash", ["cache", "get", "..\\..\\Usuários"]),
    ("table-nul", ["query", "run", "Usuários\x01"]),
    ("table-empty", ["query", "run", ""]),
    ("cache-invalidate-dotdot", ["cache", "invalidate", "../Usuários"]),
    ("records-create-dotdot", ["records", "create", "../Usuários", "--data", '{"fields": {"Nome": "x"}}']),
    ("backup-tables-dotdot", ["backup", "run", "--type", "complete", "--tables", "../../etc"]),
    # accented and look-alike table names
    ("table-no-accent", ["query", "run", "Usuarios"]),
    ("table-cyrillic-a", ["cache", "get", f"Usu{CYR_A}rios"]),
    ("table-cyrillic-s", ["query", "run", f"Usuário{CYR_S}"]),
    ("table-cyrillic-write", ["records", "create", f"Usu{CYR_A}rios", "--data", '{"fields": {"Nome": "x"}}']),
    ("table-decomposed-accent", ["records", "delete", "Usua\u0301rios", "--yes", "--id", "recAAAAAAAAAAAAAA"]),
    ("backup-tables-cyrillic", ["backup", "run", "--type", "complete", "--tables", f"Usu{CYR_A}rios"]),
    # backup ids
    ("backup-id-dotdot", ["backup", "show", "../../etc"]),
    ("backup-id-absolute", ["backup", "show", "/etc/passwd"]),
    ("backup-id-type-dotdot", ["backup", "verify", "complete/../../../etc"]),
    ("backup-id-restore-dotdot", ["backup", "restore", "complete/../../x", "--dry-run"]),
    ("backup-id-restore-absolute", ["backup", "restore", "/tmp/x", "--yes"]),
    ("backup-id-missing", ["backup", "restore", "complete/2026-01-01T00-00-00Z", "--yes"]),
    ("backup-type-unknown", ["backup", "run", "--type", "everything"]),
    # records: malformed bodies
    ("records-data-not-json", ["records", "create", "Usuários", "--data", "{bad"]),
    ("records-data-deep", ["records", "create", "Usuários", "--data", "[" * 5000 + "]" * 5000]),
    ("records-data-string", ["records", "create", "Usuários", "--data", '"Ana"']),
    ("records-data-empty-list", ["records", "create", "Usuários", "--data", "[]"]),
    (
        "records-create-with-id",
        ["records", "create", "Usuários", "--data", '{"id": "recAAAAAAAAAAAAAA", "fields": {}}'],
    ),
    ("records-wrong-type", ["records", "create", "Usuários", "--data", '{"fields": {"mensalidade": "lots"}}']),
    ("records-update-no-id", ["records", "update", "Usuários", "--data", '[{"fields": {"Nome": "x"}}]']),
    ("records-delete-path-id", ["records", "delete", "Usuários", "--yes", "--id", "../../etc/passwd"]),
    ("records-file-missing", ["records", "create", "Usuários", "--file", "/nonexistent/../x.ndjson"]),
    (
        "records-upsert-no-merge-value",
        ["records", "upsert", "Usuários", "--merge-on", "email", "--data", '[{"fields": {"Nome": "x"}}]'],
    ),
    # options
    ("max-negative", ["query", "run", "Usuários", "--max", "-1"]),
    ("max-text", ["cache", "get", "Usuários", "--max", "many"]),
    ("ttl-negative", ["cache", "get", "Usuários", "--ttl", "-5"]),
    ("metrics-type", ["metrics", "collect", "--type", "everything", "--range", "24h"]),
    ("metrics-range", ["metrics", "collect", "--type", "usage", "--range", "99y"]),
    # configuration
    ("config-bad-yaml", ["--config", "{cfg:tables: [\n  - {Usuários: }\n  oops: ]]}", "doctor"]),
    (
        "config-python-tag",
        ["--config", "{cfg:airtable: !!python/object/apply:os.system ['touch {pwned}']\n}", "doctor"],
    ),
    ("config-python-name", ["--config", "{cfg:cache: !!python/name:os.system\n}", "cache", "stats"]),
    ("config-wrong-type", ["--config", "{cfg:cache:\n  default_ttl_s: soon\n}", "cache", "stats"]),
    ("config-list-root", ["--config", "{cfg:- a\n- b\n}", "doctor"]),
    ("config-unknown-key", ["--config", "{cfg:cahce:\n  default_ttl_s: 5\n}", "doctor"]),
    ("config-body-limit-text", ["--config", "{cfg:webhook:\n  max_body_bytes: big\n}", "doctor"]),
    ("config-retries-huge", ["--config", "{cfg:airtable:\n  max_retries: 10000\n}", "query", "run", "Usuários"]),
    ("config-binary", ["--config", "{cfg:\x00\x01\x02\xff}", "doctor"]),
    ("config-missing-file", ["--config", "/nonexistent/beststag.yaml", "doctor"]),
]


@pytest.fixture
def warm(cli) -> None:  # type: ignore[no-untyped-def]
    """One harmless command first, so the data dir's steady files exist before the snapshot."""
    r = cli("--json", "query", "run", "Usuários", "--max", "1")
    assert r.exit_code == 0, r


def _materialise(argv: list[str], tmp_path: Path, pwned: Path) -> list[str]:
    out = []
    for a in argv:
        if a.startswith("{cfg:"):
            p = tmp_path / "hostile.yaml"
            p.write_bytes(a[5:-1].replace("{pwned}", str(pwned)).encode("utf-8", "surrogateescape"))
            a = str(p)
        out.append(a)
    return out


def _state(sandbox: Any, data: Path) -> tuple[dict[str, int], dict[str, int], set[str]]:
    return (record_counts(sandbox), listing(data / "backups"), data_keys_written(cache_keys(data)))


@pytest.mark.parametrize("flags", [["--json"], []], ids=["json", "text"])
@pytest.mark.parametrize(("case", "argv"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_hostile_input(
    cli, sandbox, warm, clean_env: Path, tmp_path: Path, case: str, argv: list[str], flags: list[str]
) -> None:
    pwned = tmp_path / "pwned"
    args = _materialise(argv, tmp_path, pwned)
    before = _state(sandbox, clean_env)
    r = cli(*flags, *args)
    err = assert_clean_failure(r.exit_code, r.stdout, r.stderr, expected=2)
    if flags:
        assert err, r  # --json: the error object on stdout
        assert err["hint"] or err["message"]
    assert _state(sandbox, clean_env) == before, case
    assert not pwned.exists()


@pytest.mark.parametrize(
    "argv",
    [["query", "run", "Usuários", "--filter", BIG_VALUE], ["cache", "get", "Usuários", "--filter", BIG_LIST]],
    ids=["value-1MB", "in-50000"],
)
def test_oversized_but_valid_filters_answer_or_refuse_cleanly(cli, sandbox, warm, argv: list[str]) -> None:
    """Huge filters are valid JSON and valid filters: answered (nothing matches) or refused, never a crash."""
    before = record_counts(sandbox)
    r = cli("--json", *argv)
    if r.exit_code == 0:
        assert r.json()["records"] == []
    else:
        assert_clean_failure(r.exit_code, r.stdout, r.stderr, expected=2)
    assert record_counts(sandbox) == before


# (id, value) that must be matched literally: no error, no widened match, nothing written
INERT_VALUES = [
    ("quote-or-true", "x' OR TRUE() OR '"),
    ("dquote-or-true", 'x" & TRUE() & "'),
    ("formula-prefix", '=HYPERLINK("http://evil")'),
    ("brace-field", "{Nome}"),
    ("backslashes", "\\\\'\\"),
    ("comment", "*/ TRUE() /*"),
]


@pytest.mark.parametrize(("case", "value"), INERT_VALUES, ids=[c[0] for c in INERT_VALUES])
@pytest.mark.parametrize("op", ["eq", "contains", "starts_with"])
def test_formula_injection_in_values_is_matched_literally(
    cli, sandbox, warm, clean_env: Path, case: str, value: str, op: str
) -> None:
    before = record_counts(sandbox)
    r = cli("--json", "query", "run", "Usuários", "--filter", json.dumps({"Nome": {op: value}}))
    assert r.exit_code == 0, r
    assert r.json()["records"] == []  # no record has such a name: the value never became formula
    assert record_counts(sandbox) == before


# ------------------------------------------------------------------------------------------ webhooks
def _nested_body(n: int) -> bytes:
    return b'{"operation":"get","table":"Usu\xc3\xa1rios","filters":' + _deep_and(n).encode() + b"}"


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


CACHE = "/webhook/airtable/cache"
BACKUP = "/webhook/airtable/backup"
METRICS = "/webhook/airtable/metrics"
J = "application/json"

# (id, path, content type, body bytes, expected status, extra headers)
WEBHOOK_CASES: list[tuple[str, str, str | None, bytes, int, dict[str, str]]] = [
    ("body-2MB", CACHE, J, b'{"operation":"get","table":"' + b"a" * 2_000_000 + b'"}', 413, {}),
    ("body-not-json", CACHE, J, b"{operation: get", 422, {}),
    ("body-not-utf8", CACHE, J, b'{"operation":"get","table":"\xff\xfe"}', 422, {}),
    ("body-empty", CACHE, J, b"", 422, {}),
    ("body-array", CACHE, J, b"[]", 422, {}),
    ("body-null", CACHE, J, b"null", 422, {}),
    ("body-deep-10000", CACHE, J, _nested_body(10_000), 422, {}),
    ("body-deep-300", CACHE, J, _nested_body(300), 422, {}),
    ("content-text-plain", CACHE, "text/plain", _json({"operation": "get", "table": "Usuários"}), 415, {}),
    ("content-form", CACHE, "application/x-www-form-urlencoded", b"operation=get&table=Usuarios", 415, {}),
    ("content-none", METRICS, None, _json({"metric_type": "usage"}), 415, {}),
    ("content-xml", BACKUP, "application/xml", b"<backup_type>complete</backup_type>", 415, {}),
    ("operation-unknown", CACHE, J, _json({"operation": "drop", "table": "Usuários"}), 422, {}),
    ("extra-key", CACHE, J, _json({"operation": "get", "table": "Usuários", "formula": "TRUE()"}), 422, {}),
    ("table-dotdot", CACHE, J, _json({"operation": "get", "table": "../../etc/passwd"}), 404, {}),
    ("table-absolute", CACHE, J, _json({"operation": "invalidate", "table": "/etc/passwd"}), 404, {}),
    ("table-cyrillic", CACHE, J, _json({"operation": "get", "table": f"Usu{CYR_A}rios"}), 404, {}),
    ("table-too-long", CACHE, J, _json({"operation": "get", "table": "U" * 5000}), 422, {}),
    ("record-id-path", CACHE, J, _json({"operation": "get", "table": "Usuários", "recordId": "rec/../../x"}), 422, {}),
    ("ttl-negative", CACHE, J, _json({"operation": "get", "table": "Usuários", "cacheTTL": -1}), 422, {}),
    ("ttl-text", CACHE, J, _json({"operation": "get", "table": "Usuários", "cacheTTL": "soon"}), 422, {}),
    (
        "filter-unknown-op",
        CACHE,
        J,
        _json({"operation": "get", "table": "Usuários", "filters": {"status": {"operator": "regex"}}}),
        422,
        {},
    ),
    (
        "filter-field-inject",
        CACHE,
        J,
        _json({"operation": "get", "table": "Usuários", "filters": {"Nome}=1,TRUE(),{Nome": "a"}}),
        422,
        {},
    ),
    ("fields-inject", CACHE, J, _json({"operation": "get", "table": "Usuários", "fields": ["Nome})&({x"]}), 422, {}),
    (
        "sort-direction",
        CACHE,
        J,
        _json({"operation": "get", "table": "Usuários", "sort": [{"field": "Nome", "direction": "sideways"}]}),
        422,
        {},
    ),
    ("set-without-data", CACHE, J, _json({"operation": "set", "table": "Usuários"}), 422, {}),
    ("set-bad-records", CACHE, J, _json({"operation": "set", "table": "Usuários", "data": [{"x": 1}]}), 422, {}),
    ("backup-type", BACKUP, J, _json({"backup_type": "full"}), 422, {}),
    ("backup-tables-dotdot", BACKUP, J, _json({"backup_type": "complete", "tables": ["../../etc"]}), 404, {}),
    ("backup-tables-cyrillic", BACKUP, J, _json({"backup_type": "complete", "tables": [f"Usu{CYR_A}rios"]}), 404, {}),
    ("metrics-range", METRICS, J, _json({"metric_type": "usage", "time_range": "99y"}), 422, {}),
    ("auth-missing", CACHE, J, _json({"operation": "get", "table": "Usuários"}), 401, {"Authorization": ""}),
    ("auth-wrong", CACHE, J, _json({"operation": "get", "table": "Usuários"}), 401, {"Authorization": "Bearer wrong"}),
    ("auth-basic", BACKUP, J, _json({"backup_type": "complete"}), 401, {"Authorization": "Basic dXNlcjpwYXNz"}),
]


@pytest.mark.parametrize(
    ("case", "path", "ctype", "body", "status", "headers"), WEBHOOK_CASES, ids=[c[0] for c in WEBHOOK_CASES]
)
def test_webhook_refuses_hostile_input(
    client,
    sandbox,
    clean_env: Path,
    case: str,
    path: str,
    ctype: str | None,
    body: bytes,
    status: int,
    headers: dict[str, str],
) -> None:
    warmup = client.post(CACHE, json={"operation": "get", "table": "Usuários", "maxRecords": 1})
    assert warmup.status_code == 200, warmup.text
    before = _state(sandbox, clean_env)
    hdrs = dict(headers)
    if ctype is not None:
        hdrs["Content-Type"] = ctype
    r = client.post(path, content=body, headers=hdrs)
    assert r.status_code == status, (case, r.status_code, r.text[:500])
    err = r.json()["error"]
    assert err["type"] != "internal_error" and err["message"] and "\n" not in err["message"], err
    assert "Traceback" not in r.text
    assert len(r.content) < 20_000  # the error does not echo a huge body back
    jobs = client.app.state.jobs  # a refused backup starts no job
    assert not getattr(jobs, "_jobs", {}) or status == 202
    assert _state(sandbox, clean_env) == before, case


def test_the_matrix_is_big_enough() -> None:
    assert len(CLI_CASES) + len(WEBHOOK_CASES) >= 40
