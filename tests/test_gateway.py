"""The gateway: retries under injected faults, errors it raises, journal rows, redaction."""

from __future__ import annotations

import pytest

from beststag_cli import errors
from beststag_cli.sandbox import FaultConfig


def _fast(settings) -> None:  # type: ignore[no-untyped-def]
    b = settings.airtable.backoff
    b.base_s, b.max_s, b.penalty_s = 0.001, 0.01, 0.01
    settings.airtable.max_retries = 12


def test_listing_completes_with_20_percent_injected_429_503(settings, sandbox, gateway) -> None:
    _fast(settings)
    expected = [r["id"] for r in sandbox.api().table("appBestStagSandbx", "Interações").all(max_records=500)]
    sandbox.app.set_faults(FaultConfig(seed=3, rate_429=0.1, rate_503=0.1))
    got = gateway.all("Interações", max_records=500, page_size=10)
    assert [r["id"] for r in got] == expected
    rows = gateway.journal.query("SELECT status, retries FROM requests WHERE operation='list'")
    statuses = [r["status"] for r in rows]
    assert statuses.count(200) == 50 and {429, 503} <= set(statuses)
    assert max(r["retries"] for r in rows) >= 1


def test_retries_survive_dropped_connections_on_reads(settings, sandbox, gateway) -> None:
    _fast(settings)
    sandbox.app.set_faults(FaultConfig(seed=5, rate_drop=0.3))
    assert len(gateway.all("Usuários", page_size=10)) == 100


def test_a_create_is_not_retried_after_a_dropped_connection(settings, sandbox, gateway) -> None:
    _fast(settings)
    n = sandbox.store.count("appBestStagSandbx", "Tarefas")
    sandbox.app.set_faults(FaultConfig(rate_drop_after=1.0))
    with pytest.raises(errors.UpstreamUnavailable):
        gateway.create("Tarefas", [{"Título": "uma vez"}])
    assert sandbox.store.count("appBestStagSandbx", "Tarefas") == n + 1  # applied once, never twice


def test_persistent_failure_is_upstream_unavailable(settings, sandbox, gateway) -> None:
    _fast(settings)
    settings.airtable.max_retries = 2
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    with pytest.raises(errors.UpstreamUnavailable) as e:
        gateway.all("Usuários")
    assert e.value.exit_code == 4 and "3 attempt" in e.value.message


def test_error_translation(gateway, sandbox) -> None:
    with pytest.raises(errors.UpstreamAuthError):
        gateway.all("Tabela que não existe")
    with pytest.raises(errors.NotFound):
        gateway.get("Usuários", "rec00000000000000")
    with pytest.raises(errors.BadInput) as e:
        gateway.all("Usuários", formula="{nope}")
    assert "INVALID_FILTER_BY_FORMULA" in e.value.message


def test_wrong_token_is_auth_error_and_token_never_shown(settings, sandbox) -> None:
    from pydantic import SecretStr

    from beststag_cli.gateway.api import Gateway

    canary = "patCANARY0000000001." + "a" * 64
    settings.airtable.sandbox_token = SecretStr(canary)
    gw = Gateway(settings, sandbox=sandbox)
    with pytest.raises(errors.UpstreamAuthError) as e:
        gw.all("Usuários")
    assert canary not in str(e.value) and canary not in e.value.hint
    gw.close()


def test_iterator_expiry_mid_listing_restarts_without_duplicates(gateway, sandbox) -> None:
    pages = gateway.iterate("Interações", page_size=100)
    first = next(pages)
    sandbox.store.expire_iterators()
    rest = [r for p in pages for r in p]
    ids = [r["id"] for r in first + rest]
    assert len(ids) == len(set(ids)) == 1000


def test_each_request_is_journaled(gateway) -> None:
    gateway.all("Usuários", page_size=50)
    rows = gateway.journal.query("SELECT * FROM requests ORDER BY ts")
    assert len(rows) == 2
    assert {r["table_name"] for r in rows} == {"Usuários"}
    assert all(r["status"] == 200 and r["bytes"] > 0 and r["duration_ms"] >= 0 for r in rows)
    assert [r["records"] for r in rows] == [50, 50]
