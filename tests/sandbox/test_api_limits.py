"""Rate limits and fault injection, as clients see them."""

from __future__ import annotations

import time

import pytest
import requests

from beststag_cli.sandbox import SANDBOX_BASE_ID, FaultConfig, LimitConfig

BASE = SANDBOX_BASE_ID


def test_rate_limit_429_then_penalty_then_recovery(sandbox, api) -> None:
    sandbox.app.set_limits(LimitConfig(per_second=5, penalty_s=2.5))
    t = api.table(BASE, "Métricas")
    for _ in range(5):
        t.first()
    with pytest.raises(requests.HTTPError) as e:
        t.first()
    assert e.value.response.status_code == 429
    assert e.value.response.json()["error"]["type"] == "RATE_LIMIT_REACHED"
    time.sleep(0.3)  # well inside the penalty, even on a loaded machine
    with pytest.raises(requests.HTTPError):
        t.first()
    time.sleep(2.4)
    assert t.first() is not None


def test_rate_limit_is_per_base(sandbox, api) -> None:
    from beststag_cli.sandbox.seed import load_sample

    load_sample(sandbox.store, base_id="appOtherBase00000", with_records=False)
    sandbox.app.set_limits(LimitConfig(per_second=2, penalty_s=5))
    for _ in range(2):
        api.table(BASE, "Métricas").first()
        api.table("appOtherBase00000", "Métricas").first()
    with pytest.raises(requests.HTTPError):
        api.table(BASE, "Métricas").first()


def test_pyairtable_default_retry_gives_up_during_the_penalty(sandbox) -> None:
    sandbox.app.set_limits(LimitConfig(per_second=1, penalty_s=30))
    api = sandbox.api()  # pyairtable's own retry strategy (429 only, ~3 s)
    # the in-process adapter bypasses urllib3's Retry: the first 429 surfaces directly
    api.table(BASE, "Métricas").first()
    with pytest.raises(requests.HTTPError):
        api.table(BASE, "Métricas").first()


def _outcomes(sandbox, faults: FaultConfig, n: int = 60) -> list[object]:  # type: ignore[no-untyped-def]
    sandbox.app.set_faults(faults)
    api = sandbox.api(retry_strategy=None)
    out: list[object] = []
    for _ in range(n):
        try:
            api.table(BASE, "Métricas").first()
            out.append(200)
        except requests.HTTPError as e:
            out.append(e.response.status_code)
        except requests.ConnectionError:
            out.append("drop")
    return out


def test_faults_are_deterministic_from_the_seed(sandbox) -> None:
    cfg = FaultConfig(seed=7, rate_429=0.1, rate_500=0.1, rate_503=0.1, rate_drop=0.1)
    a = _outcomes(sandbox, cfg)
    b = _outcomes(sandbox, cfg)
    c = _outcomes(sandbox, FaultConfig(seed=8, rate_429=0.1, rate_500=0.1, rate_503=0.1, rate_drop=0.1))
    assert a == b != c
    assert {200, 429, 500, 503, "drop"} <= set(a)
    assert 0.45 < a.count(200) / len(a) < 0.85


def test_latency_is_added(sandbox) -> None:
    sandbox.app.set_faults(FaultConfig(latency_ms=20))
    api = sandbox.api(retry_strategy=None)
    t0 = time.perf_counter()
    for _ in range(5):
        api.table(BASE, "Métricas").first()
    assert time.perf_counter() - t0 >= 0.1


def test_drop_after_applies_the_write(sandbox) -> None:
    api = sandbox.api(retry_strategy=None)
    n = sandbox.store.count(BASE, "Métricas")
    sandbox.app.set_faults(FaultConfig(rate_drop_after=1.0))
    with pytest.raises(requests.ConnectionError):
        api.table(BASE, "Métricas").create({"Nome": "x"})
    assert sandbox.store.count(BASE, "Métricas") == n + 1


def test_503_carries_retry_after(sandbox) -> None:
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    api = sandbox.api(retry_strategy=None)
    with pytest.raises(requests.HTTPError) as e:
        api.table(BASE, "Métricas").first()
    assert e.value.response.status_code == 503
    assert e.value.response.headers["Retry-After"] == "1"
    assert e.value.response.json()["error"]["type"] == "RETRIABLE_ERROR"
