"""Round 2 input edges: TTLs that are not finite or beyond the cap, entries planted with such times,
lone surrogates at the cache doors, and `cache warm` of a table that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from beststag_cli.cache.policy import MAX_TTL_S

from .conftest import assert_clean_failure

SURROGATE_ID = "rec\udced\udca0\udcbd"  # what the shell hands Python for $'rec\xed\xa0\xbd' (PEP 383)
BAD_DATA = '[{"id":"rec00000000000001","createdTime":"2026-01-01T00:00:00.000Z","fields":{"Nome":"\\ud83d"}}]'


@pytest.mark.parametrize("ttl", ["1e309", "inf", "nan", "1e20", str(MAX_TTL_S + 1), "0", "-5"])
@pytest.mark.parametrize("command", ["get", "set"])
def test_cache_ttl_must_be_finite_positive_and_capped(cli, command: str, ttl: str) -> None:
    argv = ["cache", command, "Usuários", "--ttl", ttl]
    if command == "set":
        argv += ["--data", "[]"]
    r = cli(*argv)
    assert_clean_failure(r.exit_code, r.stdout, r.stderr)
    assert "--ttl" in r.stderr and str(MAX_TTL_S) in r.stderr, r.stderr
    ok = cli("--json", "cache", "get", "Usuários", "--ttl", str(MAX_TTL_S))  # the cap itself is accepted
    assert ok.exit_code == 0, ok.stderr


@pytest.mark.parametrize(
    "bad", [{"ttl": None}, {"stored": None}, {"ttl": "1e309"}, {"stored": "x"}, {"ttl": True}, {"ttl": [1]}]
)
def test_planted_entry_with_bad_times_reads_as_a_miss_and_is_dropped(
    cli, client, settings, gateway, bad: dict[str, Any]
) -> None:
    from beststag_cli.cache.manager import CacheManager

    body = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}}
    first = client.post("/webhook/airtable/cache", json=body)
    assert first.status_code == 200, first.text
    key = first.json()["cache"]["key"]
    r = cli("--json", "cache", "get", "Usuários", "--filter", '{"status": "Ativo"}')
    assert r.exit_code == 0, r.stderr
    assert r.json()["cache"]["key"] == key and r.json()["cache"]["status"] == "hit"

    m = CacheManager(settings, gateway=gateway)
    try:
        skey = m.keys.query("Usuários", m.generation("Usuários"), key)
        entry = m.store.get(skey)
        assert entry is not None
        m.store.set(skey, {**entry, **bad}, expire_s=3600)
    finally:
        m.close()

    again = client.post("/webhook/airtable/cache", json=body)  # the alias path, then the query path
    assert again.status_code == 200, again.text
    assert again.json()["cache"]["status"] == "miss"
    assert [x["id"] for x in again.json()["records"]] == [x["id"] for x in first.json()["records"]]

    m = CacheManager(settings, gateway=gateway)
    try:
        m.store.set(skey, {**m.store.get(skey), **bad}, expire_s=3600)
    finally:
        m.close()
    r = cli("--json", "cache", "get", "Usuários", "--filter", '{"status": "Ativo"}')
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.json()["cache"]["status"] == "miss"
    m = CacheManager(settings, gateway=gateway)
    try:
        stored = m.store.get(skey)
        assert stored is not None and stored["ttl"] > 0 and isinstance(stored["stored"], float)
    finally:
        m.close()
    hit = cli("--json", "cache", "get", "Usuários", "--filter", '{"status": "Ativo"}')
    assert hit.exit_code == 0 and hit.json()["cache"]["status"] == "hit"


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "invalidate", "Usuários", "--record", SURROGATE_ID],
        ["cache", "get", "Usuários", "--record", SURROGATE_ID],
        ["cache", "set", "Usuários", "--data", BAD_DATA],
        ["cache", "set", "Usuários", "--record", "rec00000000000001", "--data", BAD_DATA],
        ["cache", "invalidate", "Usu\udce1rios"],
        ["cache", "warm", "Usu\udce1rios"],
    ],
    ids=["invalidate-record", "get-record", "set-data", "set-record-data", "invalidate-table", "warm-table"],
)
def test_lone_surrogates_at_cache_doors_exit_2(cli, argv: list[str]) -> None:
    r = cli(*argv)
    assert_clean_failure(r.exit_code, r.stdout, r.stderr)
    assert "lone surrogate" in r.stderr, r.stderr
    j = cli("--json", *argv)
    err = assert_clean_failure(j.exit_code, j.stdout, j.stderr)
    assert err.get("type") != "internal_error"


def test_cache_warm_unknown_table_exits_2_with_did_you_mean(cli) -> None:
    r = cli("cache", "warm", "Usuarioz")
    assert_clean_failure(r.exit_code, r.stdout, r.stderr)
    assert 'did you mean "Usuários"' in r.stderr, r.stderr
    assert "warmed" not in r.stdout
    r = cli("cache", "warm", "--from-journal", "NoSuchTable")
    assert_clean_failure(r.exit_code, r.stdout, r.stderr)
    assert "NoSuchTable" in r.stderr
    ok = cli("--json", "cache", "warm", "Usuários")
    assert ok.exit_code == 0, ok.stderr


# --------------------------------------------------------------------------------------------------
# C. SIGINT/SIGTERM during a bulk `records create`: one line saying which records were written
def _count_usuarios(db: Any) -> int:
    from beststag_cli.sandbox import Sandbox

    sb = Sandbox(db)
    try:
        return int(sb.store.count("appBestStagSandbx", "Usuários"))
    finally:
        sb.close()


def _record_numbers(spans: str) -> int:
    n = 0
    for part in spans.split(", "):
        a, _, b = part.partition("-")
        n += int(b or a) - int(a) + 1
    return n


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_during_bulk_create_says_which_records_were_written(_sample_db, tmp_path, signame: str) -> None:
    import json
    import os
    import re
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    (data / "sandbox").mkdir(parents=True)
    db = data / "sandbox" / "base.sqlite"
    shutil.copy(_sample_db, db)
    bulk = tmp_path / "bulk.ndjson"
    bulk.write_text("".join(json.dumps({"fields": {"Nome": f"bulk {i}"}}) + "\n" for i in range(300)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    env["BESTSTAG_DATA_DIR"] = str(data)
    env["BESTSTAG_CONFIG"] = str(repo / "config" / "beststag.yaml")
    env["BESTSTAG_SANDBOX_FAULTS"] = json.dumps({"latency_ms": 100})  # 30 batches: the signal lands mid-run
    before = _count_usuarios(db)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from beststag_cli.cli import app; app(sys.argv[1:])",
            "records",
            "create",
            "Usuários",
            "--file",
            str(bulk),
        ],
        env=env,
        cwd=str(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120  # a safety net for a hung child, not a timing assertion
    while proc.poll() is None and _count_usuarios(db) == before:
        assert time.monotonic() < deadline, "the create never wrote its first batch"
        time.sleep(0.01)
    signum = getattr(signal, signame)
    if proc.poll() is None:
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("the 300 records were all written before the signal landed")  # pragma: no cover
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert "Traceback" not in out + err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    m = re.match(
        rf"error: interrupted by {signame} after records ([0-9, -]+) \(of 300 given\) were written"
        r"(?:; records ([0-9, -]+) were not sent)?",
        lines[0],
    )
    assert m, lines[0]
    written = _record_numbers(m.group(1))
    assert _count_usuarios(db) - before == written, (lines[0], _count_usuarios(db) - before)
    if m.group(2):
        assert written + _record_numbers(m.group(2)) == 300, lines[0]
