"""Round 2 input edges: TTLs that are not finite or beyond the cap, entries planted with such times,
lone surrogates at the cache doors, and `cache warm` of a table that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from beststag_cli.cache.policy import MAX_TTL_S

from .conftest import assert_clean_failure

SURROGATE_ID = "rec\udced\udca0\udcbd"  # what the shell hands Python for $'rec\xed\xa0\xbd' (PEP 383)
BAD_DATA = ('[{"id":"rec00000000000001","createdTime":"2026-01-01T00:00:00.000Z",'
            '"fields":{"Nome":"\\ud83d"}}]')


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


@pytest.mark.parametrize("bad", [{"ttl": None}, {"stored": None}, {"ttl": "1e309"}, {"stored": "x"},
                                 {"ttl": True}, {"ttl": [1]}])
def test_planted_entry_with_bad_times_reads_as_a_miss_and_is_dropped(cli, client, settings, gateway,
                                                                       bad: dict[str, Any]) -> None:
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
        skey = m._q("Usuários", m.generation("Usuários"), key)
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


@pytest.mark.parametrize("argv", [
    ["cache", "invalidate", "Usuários", "--record", SURROGATE_ID],
    ["cache", "get", "Usuários", "--record", SURROGATE_ID],
    ["cache", "set", "Usuários", "--data", BAD_DATA],
    ["cache", "set", "Usuários", "--record", "rec00000000000001", "--data", BAD_DATA],
    ["cache", "invalidate", "Usu\udce1rios"],
    ["cache", "warm", "Usu\udce1rios"],
], ids=["invalidate-record", "get-record", "set-data", "set-record-data", "invalidate-table", "warm-table"])
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
