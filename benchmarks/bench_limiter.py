"""The rate limiter's own cost per request (moved here from a timed unit test, per the house rules).

- `acquire` and `hold` + `release` on an uncontended limiter whose window never fills (window 1 µs),
  p50 over many calls; baseline, same run: one `flock` lock + unlock of a file, the least a
  cross-process limiter must pay.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import figure, p50_us, ratio

BASE = "appBenchLimiter00"


def run(quick: bool) -> dict[str, Any]:
    from beststag_cli.gateway.ratelimit import RateLimiter

    n = 2000 if quick else 20000
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as tmp:
        with RateLimiter(Path(tmp) / "locks", per_second=50, window_s=1e-6, margin_s=0) as rl:
            acquire_us = p50_us(lambda: rl.acquire(BASE), n)
            hold_us = p50_us(lambda: rl.hold(BASE).release(), n)
        fd = os.open(Path(tmp) / "plain.lock", os.O_RDWR | os.O_CREAT, 0o600)

        def flock() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)

        try:
            flock_us = p50_us(flock, n)
        finally:
            os.close(fd)
    return {
        "figures": [
            figure(
                "acquire, uncontended (p50)",
                acquire_us,
                "µs",
                baseline="flock + unlock",
                ratio=ratio(acquire_us, flock_us),
                goal="≤ 1,000 µs",
                ok=acquire_us <= 1000,
            ),
            figure(
                "hold + release, uncontended (p50)",
                hold_us,
                "µs",
                baseline="flock + unlock",
                ratio=ratio(hold_us, flock_us),
                goal="≤ 1,000 µs",
                ok=hold_us <= 1000,
            ),
            figure("flock + unlock of a file (p50)", flock_us, "µs", role="baseline"),
        ],
        "setup": {"calls": n},
    }
