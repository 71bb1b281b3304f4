"""The `Limiter` contract, run against both limiters: the state-file one and the Redis one.

Both promise the same things to the gateway (see `beststag_cli/gateway/limits.py`): at most
`per_second` grants per window per base for every user of the same storage (threads, processes,
hosts), a penalty after a 429 that stops them all for Airtable's 30 s, and held slots that count
until their answer. The Redis limiter decides on Redis's clock, so no fake clock can drive it:
times here are grant times recorded by the caller, and the window is checked with a margin as wide
as the window itself (a recording thread descheduled for up to that long cannot fake a breach).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beststag_cli.gateway.limits import AIRTABLE_PENALTY_S, MAX_PENALTY_S, Limiter
from beststag_cli.gateway.ratelimit import RateLimiter

from .limiters import BASE, OTHER, LimiterFactory, first_wait, max_in_window

pytestmark = pytest.mark.slow

MakeLimiter = Callable[..., Limiter]


@pytest.fixture(params=["file", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeLimiter]:
    """Builds limiters on one shared storage (a state dir, or one Redis): two of them stand for two
    processes (file) or two hosts (Redis)."""
    if request.param == "redis":
        yield request.getfixturevalue("make_redis")
        return
    with LimiterFactory(lambda **kw: RateLimiter(tmp_path / "locks", **kw)) as build:
        yield build


def test_both_are_limiters_with_airtables_numbers(make: MakeLimiter) -> None:
    lim = make()
    assert isinstance(lim, Limiter)
    # Airtable: 5 requests per second per base
    assert (lim.per_second, lim.window_s) == (5, 1.0)
    assert lim.effective_window_s > lim.window_s


def test_the_rate_is_never_exceeded_over_a_window(make: MakeLimiter) -> None:
    lim = make(per_second=5, window_s=0.3, margin_s=0.3)
    stamps = []
    for _ in range(16):
        lim.acquire(BASE)
        stamps.append(time.monotonic())
    assert max_in_window(stamps, lim.window_s) <= 5
    # it limits at all: 16 grants at 5 per 0.6 s need three full windows (lower bound only)
    assert max(stamps) - min(stamps) >= 3 * lim.window_s
    assert lim.try_acquire(OTHER)  # another base has its own budget


def test_concurrent_acquirers_share_the_budget(make: MakeLimiter) -> None:
    # two limiters on one storage (two processes / hosts), four threads each
    a, b = make(per_second=5, window_s=0.3, margin_s=0.3), make(per_second=5, window_s=0.3, margin_s=0.3)
    stamps: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(lim: Limiter) -> None:
        try:
            for _ in range(3):
                with lim.hold(BASE):
                    now = time.monotonic()
                    with lock:
                        stamps.append(now)
        except BaseException as e:  # reported below: a thread's exception would vanish
            errors.append(e)

    threads = [threading.Thread(target=run, args=(lim,)) for lim in (a, b) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(stamps) == 24
    assert max_in_window(stamps, a.window_s) <= 5
    assert max(stamps) - min(stamps) >= 4 * a.window_s  # 24 grants at 5 per window: at least 4 windows more


def test_a_429_penalty_is_honoured_by_every_user_of_the_base(make: MakeLimiter) -> None:
    a, b = make(), make()
    a.penalize(BASE)  # the gateway's call after a 429: Airtable's 30 s by default
    assert AIRTABLE_PENALTY_S - 2 < b.penalty_remaining(BASE) <= AIRTABLE_PENALTY_S
    assert not b.try_acquire(BASE)
    with pytest.raises(TimeoutError):
        b.acquire(BASE, timeout=0.2)
    assert AIRTABLE_PENALTY_S - 2 < first_wait(b) <= AIRTABLE_PENALTY_S  # it waits the penalty out, no less
    b.penalize(BASE, 1)  # a shorter penalty never shortens the running one
    assert a.penalty_remaining(BASE) > AIRTABLE_PENALTY_S - 2
    assert b.try_acquire(OTHER)  # other bases go on
    a.penalize(BASE, 3600)  # never longer than Airtable's penalty plus a little
    assert b.penalty_remaining(BASE) <= MAX_PENALTY_S
    a.reset(BASE)
    assert b.penalty_remaining(BASE) == 0 and b.try_acquire(BASE)


def test_a_short_penalty_ends_and_then_grants(make: MakeLimiter) -> None:
    lim = make()
    lim.penalize(BASE, 0.4)
    start = time.monotonic()
    lim.acquire(BASE)
    assert time.monotonic() - start >= 0.3  # waited it out (lower bound only; Redis counts in ms)
    assert lim.penalty_remaining(BASE) == 0


def test_a_held_slot_counts_until_released_then_one_window(make: MakeLimiter) -> None:
    lim = make(per_second=1, window_s=0.2, margin_s=0.0)
    h = lim.hold(BASE)
    time.sleep(0.4)  # past the window: a grant-only limiter would have freed the slot
    assert not lim.try_acquire(BASE)
    assert lim.wait_time(BASE) > 0
    h.release()
    h.release()  # twice is harmless
    assert not lim.try_acquire(BASE)  # one window after the answer
    assert 0 < lim.wait_time(BASE) <= lim.effective_window_s
    time.sleep(0.3)
    assert lim.try_acquire(BASE)
