"""The rate limiter on Redis: 5 req/s per base for every host together, and the shared 30 s penalty."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli.gateway.redis_ratelimit import RedisRateLimiter
from tests.served import serve_sandbox

from .conftest import write_config
from .limiters import BASE, LimiterFactory, first_wait, grants_in_processes, max_in_window

pytestmark = pytest.mark.slow


def test_16_threads_in_2_processes_never_exceed_5_per_second(redis_url: str) -> None:
    stamps = grants_in_processes("redis", redis_url, per_thread=2, start_in=1.5)
    assert len(stamps) == 32
    assert max_in_window(stamps, 1.0) <= 5
    span = max(stamps) - min(stamps)
    ideal = (math.ceil(32 / 5) - 1) * 1.08
    assert ideal - 1.0 <= span <= 2 * ideal + 2, span  # no gross waste (loose: a loaded CI machine oversleeps)


def test_penalty_and_window_are_shared_between_hosts(make_redis: LimiterFactory) -> None:
    a, b = make_redis(per_second=3), make_redis(per_second=3)
    assert all(a.try_acquire(BASE) for _ in range(3))
    assert not b.try_acquire(BASE)  # the window is full for everyone
    assert 0 < b.wait_time(BASE) <= a.effective_window_s
    assert b.try_acquire("appOtherBase00000")  # bases are independent
    a.reset(BASE)
    a.penalize(BASE, 5)
    assert 4 < b.penalty_remaining(BASE) <= 5
    b.penalize(BASE, 1)  # a shorter penalty never shortens the running one
    assert a.penalty_remaining(BASE) > 4
    assert not b.try_acquire(BASE)
    with pytest.raises(TimeoutError):
        b.acquire(BASE, timeout=0.2)
    a.reset(BASE)
    assert b.penalty_remaining(BASE) == 0 and b.try_acquire(BASE)


def test_damaged_redis_state_never_makes_a_long_wait_nor_an_error(redis_url: str, make_redis: LimiterFactory) -> None:
    # issue 15, defect 12 (Redis half): the penalty key's TTL is bounded, wrong types and times ahead
    # of the server's clock are repaired, never raised or waited on
    import redis

    r = redis.Redis.from_url(redis_url)
    keys = [f"beststag:ratelimit:{BASE}:{k}" for k in ("grants", "penalty", "inflight")]
    lim = make_redis(per_second=5)
    bound = 32.0 + lim.effective_window_s
    r.set(keys[1], "1", px=3_600_000)  # a penalty an hour long
    assert 0 < first_wait(lim) <= bound
    assert lim.penalty_remaining(BASE) <= 32.0
    r.delete(keys[1])
    r.set(keys[1], "1")  # a penalty without a TTL would last forever
    assert 0 < first_wait(lim) <= bound
    assert 0 < r.pttl(keys[1]) <= 32_000
    r.delete(*keys)
    now_us = int(r.time()[0]) * 1_000_000
    r.zadd(keys[0], {f"ahead-{i}": now_us + 3_600_000_000 for i in range(5)})  # grants an hour ahead (clock moved back)
    assert first_wait(lim) <= lim.effective_window_s
    r.delete(*keys)
    r.set(keys[0], "garbage")  # a key of the wrong type
    r.hset(keys[2], "x", "y")
    assert first_wait(lim) == 0.0
    assert lim.try_acquire(BASE)
    r.close()


def test_a_held_slot_counts_until_released(make_redis: LimiterFactory) -> None:
    # issue 15, defect 18: a request occupies its slot from grant until its answer, then one window more
    lim = make_redis(per_second=1, window_s=0.2, margin_s=0.0)
    h = lim.hold(BASE)
    time.sleep(0.5)  # far past the window: a grant-only limiter would free the slot by now
    assert not lim.try_acquire(BASE)
    assert lim.wait_time(BASE) > 0
    h.release()
    assert not lim.try_acquire(BASE)  # one window after the answer
    assert 0 < lim.wait_time(BASE) <= 0.2
    time.sleep(0.25)
    assert lim.try_acquire(BASE)


def test_gateway_builds_the_redis_limiter(settings, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    from beststag_cli.gateway.ratelimit import RateLimiter, make_limiter

    assert isinstance(make_limiter(settings), RateLimiter)
    settings.cache.redis_url = redis_url
    settings.airtable.limiter = "redis"
    lim = make_limiter(settings)
    assert isinstance(lim, RedisRateLimiter) and lim.url == redis_url and lim.per_second == 5


# --------------------------------------------------------------------------------------------
# end to end: two hosts (separate data dirs: the file limiter could not see each other) and a
# sandbox that answers 429 like Airtable


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with serve_sandbox({**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "server")}, "--rate-limit") as url:
        yield url


WORKER = r"""
import json, threading
from beststag_cli.config import load_config
from beststag_cli.gateway.api import Gateway

gw = Gateway(load_config(), source="test")
errors = []
def work():
    for _ in range(2):
        try:
            gw.table("Métricas").first()
        except Exception as e:
            errors.append(repr(e))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"errors": errors}))
"""


def test_two_hosts_sixteen_threads_never_get_a_429(served: str, tmp_path: Path, redis_url: str) -> None:
    cfg = write_config(tmp_path / "config.yaml", airtable={"limiter": "redis", "limiter_redis_url": redis_url})
    envs = [
        {
            **os.environ,
            "AIRTABLE_TOKEN": "sandbox",
            "BESTSTAG_SANDBOX": "",
            "AIRTABLE_BASE_ID": BASE,
            "AIRTABLE_ENDPOINT_URL": served,
            "BESTSTAG_CONFIG": str(cfg),
            "BESTSTAG_DATA_DIR": str(tmp_path / f"host-{i}"),
        }
        for i in range(2)
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for e in envs
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert all(not r["errors"] for r in results), (results, [e[-800:] for _, e in outs])
    with urllib.request.urlopen(served + "/_sandbox/stats") as resp:
        stats = json.load(resp)
    assert stats["rate_limited"] == 0 and "429" not in stats["statuses"], stats
