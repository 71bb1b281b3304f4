"""What the limiter tests share (issue 17, D2/D3): the window count, the first-wait probe, a fake clock and
limiter construction. Used by tests/remote/test_limiter_contract.py, tests/remote/test_redis_limiter.py,
tests/reliability/test_limiter_trust.py and tests/test_ratelimit.py; the real redis-server comes from
tests/remote/conftest.py (`redis_url`, and `make_redis`, which builds limiters on it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from beststag_cli.gateway.limits import Limiter
from beststag_cli.gateway.ratelimit import RateLimiter

BASE = "appBestStagSandbx"
OTHER = "appOtherBase00000"


def max_in_window(times: list[float], window: float) -> int:
    """The most stamps (grants, or arrivals at a server counting a sliding window like the sandbox and
    Airtable) that any half-open window [t, t + window) holds."""
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


class _Asked(Exception):
    pass


def first_wait(lim: Limiter, base: str = BASE) -> float:
    """The first sleep `acquire` asks for (0.0 when it grants at once), without sleeping it: the Redis
    limiter decides on Redis's real clock, so a test cannot loop on a fake one."""
    asked: list[float] = []

    def sleep(s: float) -> None:
        asked.append(s)
        raise _Asked

    lim._sleep = sleep  # type: ignore[attr-defined]  # both limiters take sleep_fn and keep it here
    try:
        lim.acquire(base)
    except _Asked:
        pass
    return asked[0] if asked else 0.0


class FakeClock:
    """Time moves only when the limiter sleeps (or the test jumps it): waits are exact, never load-dependent."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert s >= 0 and math.isfinite(s), s
        self.slept += s
        self.now += s


def on_clock(state_dir: str | Path, clock: FakeClock, **kw: Any) -> RateLimiter:
    """The state-file limiter in `state_dir`, driven by `clock`."""
    return RateLimiter(state_dir, time_fn=clock.time, sleep_fn=clock.sleep, **kw)


class LimiterFactory:
    """Builds limiters on one shared storage (`build(**kw)` → a limiter): two of them stand for two processes
    or two hosts. Every limiter it built is closed on exit, also when the test failed."""

    def __init__(self, build: Callable[..., Limiter]) -> None:
        self._build = build
        self.made: list[Limiter] = []

    def __call__(self, **kw: Any) -> Limiter:
        lim = self._build(**kw)
        self.made.append(lim)
        return lim

    def __enter__(self) -> LimiterFactory:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for lim in self.made:
            lim.close()


def _grant_stamps(kind: str, where: str, threads: int, per_thread: int, start_at: float, out: Any) -> None:
    """One process of `grants_in_processes` (a spawned interpreter): `threads` threads acquiring `per_thread`
    grants each from a limiter at 5/s on `where`, their grant times (CLOCK_MONOTONIC: comparable across
    processes on Linux) put on `out`."""
    import threading
    import time

    limiter: Limiter
    if kind == "file":
        limiter = RateLimiter(Path(where), per_second=5)
    else:
        from beststag_cli.gateway.redis_ratelimit import RedisRateLimiter

        limiter = RedisRateLimiter(where, per_second=5)
    stamps: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(per_thread):
            limiter.acquire(BASE)
            now = time.monotonic()
            with lock:
                stamps.append(now)

    time.sleep(max(0.0, start_at - time.time()))
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    limiter.close()
    out.put(stamps)


def grants_in_processes(
    kind: str, where: str, *, processes: int = 2, threads: int = 8, per_thread: int, start_in: float
) -> list[float]:
    """Grant times of `processes` spawned interpreters sharing one storage (`kind` "file": the state dir
    `where`; "redis": the URL `where`), all starting `start_in` seconds from now (let every interpreter start
    before anyone acquires). Each process must exit 0."""
    import multiprocessing
    import time

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + start_in
    procs = [
        ctx.Process(target=_grant_stamps, args=(kind, where, threads, per_thread, start_at, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    stamps = [t for _ in procs for t in out.get(timeout=60)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return stamps
