"""`beststag cache …` end to end, and the hit path's imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FILTER = '{"status": "Ativo"}'


def test_get_miss_hit_json_contract(cli) -> None:
    r = cli("--json", "cache", "get", "Usuários", "--filter", FILTER, "--fields", "Nome,email", "--max", "5")
    assert r.exit_code == 0, r
    data = r.json()
    assert data["table"] == "Usuários" and len(data["records"]) == 5
    assert set(data["cache"]) >= {"status", "age_s", "ttl_s", "key"} and data["cache"]["status"] == "miss"
    assert all(set(x) == {"id", "createdTime", "fields"} for x in data["records"])
    again = cli("--json", "cache", "get", "Usuários", "--filter", FILTER, "--fields", "Nome,email", "--max", "5").json()
    assert again["cache"]["status"] == "hit" and again["records"] == data["records"]


def test_record_get_set_invalidate(cli) -> None:
    rid = cli("--json", "cache", "get", "Tarefas", "--max", "1").json()["records"][0]["id"]
    assert cli("--json", "cache", "get", "Tarefas", "--record", rid).json()["cache"]["status"] == "miss"
    assert cli("--json", "cache", "get", "Tarefas", "--record", rid).json()["cache"]["status"] == "hit"
    r = cli("--json", "cache", "invalidate", "Tarefas", "--record", rid)
    assert r.exit_code == 0 and r.json()["scope"] == "record"
    assert cli("--json", "cache", "get", "Tarefas", "--record", rid).json()["cache"]["status"] == "miss"
    data = '[{"id": "rec00000000000042", "createdTime": "2026-01-01T00:00:00.000Z", "fields": {"Título": "dado"}}]'
    assert cli("cache", "set", "Tarefas", "--filter", '{"status": "Cancelada"}', "--data", data).exit_code == 0
    got = cli("--json", "cache", "get", "Tarefas", "--filter", '{"status": "Cancelada"}').json()
    assert got["cache"]["status"] == "hit" and got["records"][0]["id"] == "rec00000000000042"


def test_bad_input_is_one_line_exit_2(cli) -> None:
    cases = [
        ("cache", "get", "Usuarios"),
        ("cache", "get", "Usuários", "--filter", "{status: Ativo}"),
        ("cache", "get", "Usuários", "--filter", '{"status": {"operator": "near", "value": 1}}'),
        ("cache", "get", "Usuários", "--fields", "Nme"),
        ("cache", "invalidate"),
        ("cache", "invalidate", "Usuários", "--all"),
        ("cache", "set", "Tarefas", "--data", "[1]"),
        ("cache", "set", "Tarefas", "--data", "not json"),
    ]
    for args in cases:
        r = cli(*args)
        assert r.exit_code == 2, (args, r)
        assert "Traceback" not in r.stderr and r.stderr.strip().startswith("error:"), (args, r)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_stats_prune_clear_warm(cli) -> None:
    cli("cache", "get", "Usuários", "--filter", FILTER)
    cli("cache", "get", "Usuários", "--filter", FILTER)
    st = cli("--json", "cache", "stats").json()
    assert st["overall"]["hits"] == 1 and st["overall"]["misses"] == 1 and st["overall"]["hit_ratio"] == 0.5
    assert st["tables"]["Usuários"]["ttl_s"] == 600 and st["entries"] > 0
    w = cli("--json", "cache", "warm", "--from-journal").json()["warmed"]
    assert {x["table"] for x in w} >= {"Usuários", "Interações"}  # the configured hot queries
    assert cli("--json", "cache", "prune").exit_code == 0
    assert cli("--json", "cache", "clear", "--yes").json()["removed"] > 0
    assert cli("--json", "cache", "get", "Usuários", "--filter", FILTER).json()["cache"]["status"] == "miss"


def test_hit_path_imports_neither_pyairtable_nor_requests(tmp_path: Path, clean_env: Path) -> None:
    args = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "beststag_cli",
        "--json",
        "cache",
        "get",
        "Usuários",
        "--filter",
        FILTER,
        "--fields",
        "Nome",
    ]
    env = dict(os.environ)
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    assert '"status": "miss"' in first.stdout and "pyairtable" in first.stderr  # the miss did go upstream
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and '"status": "hit"' in second.stdout
    imported = {line.split("|")[-1].strip() for line in second.stderr.splitlines() if line.startswith("import time")}
    assert not {m for m in imported if m.split(".")[0] in ("pyairtable", "requests", "urllib3", "pydantic")}
