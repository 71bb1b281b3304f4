from __future__ import annotations

import math
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from beststag_cli.gateway import ratelimit
from beststag_cli.gateway.ratelimit import RateLimiter
from tests.remote.limiters import BASE, grants_in_processes, max_in_window


def test_16_threads_in_2_processes_never_exceed_5_per_second(tmp_path: Path) -> None:
    per_thread = 3
    stamps = grants_in_processes("file", str(tmp_path), per_thread=per_thread, start_in=1.0)
    n = 2 * 8 * per_thread
    assert len(stamps) == n
    assert max_in_window(stamps, 1.0) <= 5
    # No gross waste: bursts of 5 every window_s + margin is the best a strict limiter can do. The bound
    # is loose on purpose (a loaded CI machine oversleeps); the exact throughput is measured by
    # `scripts/bench backup` (92% of Airtable's ceiling), not asserted here.
    span = max(stamps) - min(stamps)
    ideal = (math.ceil(n / 5) - 1) * (1.0 + ratelimit.DEFAULT_MARGIN_S)
    assert ideal - 1.0 <= span <= 2 * ideal + 2, (span, ideal)


def test_sixth_request_waits_for_the_window(tmp_path: Path) -> None:
    sleeps: list[float] = []
    now = [500.0]  # a fake clock: only sleeping moves it, so the waits are exact

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    rl = RateLimiter(tmp_path, per_second=5, time_fn=lambda: now[0], sleep_fn=sleep)
    waits = [rl.acquire(BASE) for _ in range(5)]
    assert max(waits) == 0.0
    assert rl.wait_time(BASE) == pytest.approx(1.0 + ratelimit.DEFAULT_MARGIN_S)
    assert not rl.try_acquire(BASE)
    waited = rl.acquire(BASE)
    assert waited == pytest.approx(1.0 + ratelimit.DEFAULT_MARGIN_S)
    assert len(sleeps) == 1  # slept once until the slot freed: no spinning
    rl.close()


def test_bases_are_independent(tmp_path: Path) -> None:
    with RateLimiter(tmp_path, per_second=2) as rl:
        for base in ("appAAAAAAAAAAAAAA", "appBBBBBBBBBBBBBB"):
            assert rl.try_acquire(base)
            assert rl.try_acquire(base)
            assert not rl.try_acquire(base)


def test_penalty_is_shared_between_limiters(tmp_path: Path) -> None:
    # Two instances on one folder hold separate file descriptions, like two processes. They share a
    # fake clock (time only moves when one of them sleeps), so the waits are exact, never load-dependent.
    now = [1000.0]

    def sleep(s: float) -> None:
        now[0] += s

    a = RateLimiter(tmp_path, time_fn=lambda: now[0], sleep_fn=sleep)
    b = RateLimiter(tmp_path, time_fn=lambda: now[0], sleep_fn=sleep)
    a.acquire(BASE)
    a.penalize(BASE, 0.6)
    assert b.penalty_remaining(BASE) == pytest.approx(0.6)
    assert not b.try_acquire(BASE)
    waited = b.acquire(BASE)
    assert waited == pytest.approx(0.6, abs=0.01)
    assert b.penalty_remaining(BASE) == 0.0
    # a shorter penalty never shortens a longer one
    a.penalize(BASE, 0.8)
    a.penalize(BASE, 0.1)
    assert b.penalty_remaining(BASE) > 0.6
    b.reset(BASE)
    assert b.penalty_remaining(BASE) == 0.0
    a.close()
    b.close()


def test_limit_is_shared_between_limiters(tmp_path: Path) -> None:
    a = RateLimiter(tmp_path, per_second=3)
    b = RateLimiter(tmp_path, per_second=3)
    assert a.try_acquire(BASE) and b.try_acquire(BASE) and a.try_acquire(BASE)
    assert not b.try_acquire(BASE)
    assert not a.try_acquire(BASE)
    a.close()
    b.close()


def test_timeout(tmp_path: Path) -> None:
    sleeps: list[float] = []
    now = [50.0]

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    with RateLimiter(tmp_path, per_second=1, time_fn=lambda: now[0], sleep_fn=sleep) as rl:
        rl.acquire(BASE)
        with pytest.raises(TimeoutError):
            rl.acquire(BASE, timeout=0.2)
        assert sleeps == []  # gives up at once when the slot is further away than the timeout
        rl.penalize(BASE, 5)
        with pytest.raises(TimeoutError):
            rl.acquire(BASE, timeout=0)
        assert rl.acquire(BASE, timeout=6) == pytest.approx(5.0)


def test_in_memory_variant_limits_threads(tmp_path: Path) -> None:
    rl = RateLimiter(None, per_second=5, window_s=0.2, margin_s=0.01)
    stamps: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(5):
            rl.acquire(BASE)
            with lock:
                stamps.append(time.monotonic())

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(stamps) == 20
    assert max_in_window(stamps, 0.2) <= 5
    assert list(tmp_path.iterdir()) == []


def test_state_files_are_private(tmp_path: Path) -> None:
    d = tmp_path / "locks"
    with RateLimiter(d) as rl:
        rl.acquire("app/../weird")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    files = list(d.iterdir())
    assert [f.name for f in files] == ["ratelimit.app_.._weird.state"]
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600


def test_state_from_a_previous_boot_is_ignored(tmp_path: Path) -> None:
    # monotonic time restarts at boot: grants "in the future" must not block anyone
    future = RateLimiter(tmp_path, time_fn=lambda: time.monotonic() + 1e6)
    for _ in range(5):
        future.acquire(BASE)
    future.penalize(BASE, 30)
    now = RateLimiter(tmp_path)
    assert now.try_acquire(BASE)
    assert now.penalty_remaining(BASE) == 0.0
    future.close()
    now.close()


def test_corrupt_state_file_is_tolerated(tmp_path: Path) -> None:
    (tmp_path / f"ratelimit.{BASE}.state").write_bytes(b"garbage")
    with RateLimiter(tmp_path) as rl:
        assert rl.try_acquire(BASE)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RateLimiter(None, per_second=0)
    with pytest.raises(ValueError):
        RateLimiter(None, window_s=0)


def _fake_clock(start: float = 100.0) -> tuple[list[float], Callable[[], float], Callable[[float], None]]:
    now = [start]

    def sleep(s: float) -> None:
        now[0] += s

    return now, (lambda: now[0]), sleep


def test_a_held_slot_counts_until_released_then_one_window(tmp_path: Path) -> None:
    now, time_fn, sleep = _fake_clock()
    with RateLimiter(tmp_path, per_second=1, time_fn=time_fn, sleep_fn=sleep) as rl:
        h = rl.hold(BASE)
        now[0] += 5.0  # a slow answer: far past the window
        assert not rl.try_acquire(BASE)
        h.release()
        h.release()  # twice is harmless
        assert rl.wait_time(BASE) == pytest.approx(rl.effective_window_s)
        assert rl.acquire(BASE) == pytest.approx(rl.effective_window_s)


def test_a_slot_held_by_a_dead_process_or_for_too_long_is_freed(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from beststag_cli.gateway.ratelimit import RateLimiter; "
        "RateLimiter(sys.argv[1], per_second=1).hold('appBestStagSandbx'); print('held', flush=True)"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "held", p.stderr  # the process exited without releasing its slot
    with RateLimiter(tmp_path, per_second=1) as rl:
        assert rl.wait_time(BASE) > 0  # its slot still counted ...
        rl.acquire(BASE, timeout=30)  # ... until seen dead (not the 60 s of a slot never released)
    _, time_fn, sleep = _fake_clock()
    with RateLimiter(tmp_path / "hung", per_second=1, hold_s=10, time_fn=time_fn, sleep_fn=sleep) as rl:
        rl.hold(BASE)  # never released (a hung call) in a live process
        assert rl.acquire(BASE) == pytest.approx(10 + rl.effective_window_s)
