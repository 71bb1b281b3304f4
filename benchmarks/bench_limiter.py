"""The rate limiter's own cost per request (moved here from a timed unit test, per the house rules).

- `acquire` and `hold` + `release` on an uncontended limiter whose window never fills (window 1 µs),
  p50 over many calls; baseline, same run: one `flock` lock + unlock of a file, the least a
  cross-process limiter must pay.
"""

from __future__ import annotations

import fcntl
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

BASE = "appBenchLimiter00"


def _p50_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def run(quick: bool) -> dict[str, Any]:
    from beststag_cli.gateway.ratelimit import RateLimiter

    n = 2000 if quick else 20000
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as tmp:
        with RateLimiter(Path(tmp) / "locks", per_second=50, window_s=1e-6, margin_s=0) as rl:
            acquire_us = _p50_us(lambda: rl.acquire(BASE), n)
            hold_us = _p50_us(lambda: rl.hold(BASE).release(), n)
        fd = os.open(Path(tmp) / "plain.lock", os.O_RDWR | os.O_CREAT, 0o600)

        def flock() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)

        try:
            flock_us = _p50_us(flock, n)
        finally:
            os.close(fd)
    return {
        "figures": [
            figure("acquire, uncontended (p50)", acquire_us, "µs", baseline="flock + unlock",
                   ratio=ratio(acquire_us, flock_us), goal="≤ 1,000 µs", ok=acquire_us <= 1000),
            figure("hold + release, uncontended (p50)", hold_us, "µs", baseline="flock + unlock",
                   ratio=ratio(hold_us, flock_us), goal="≤ 1,000 µs", ok=hold_us <= 1000),
            figure("flock + unlock of a file (p50)", flock_us, "µs", role="baseline"),
        ],
        "setup": {"calls": n},
    }
