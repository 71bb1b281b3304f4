"""Benchmarks: `python -m benchmarks NAME [--quick] [--json]` (or `./scripts/bench NAME ...`).

Each benchmark is a module `benchmarks/bench_<name>.py` with `run(quick: bool) -> dict`. The dict holds a
`figures` list built with `figure(...)`; every measured figure should carry the ratio to a baseline measured
in the same run (never to a hard-coded number), so results from different machines stay comparable. Goals
from issues may be shown next to a figure (`goal`, `ok`), as information: nothing here asserts.
"""

from __future__ import annotations

import importlib
import pkgutil
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["available", "figure", "load", "p50_us", "ratio", "timed", "timed_best"]

PREFIX = "bench_"


def available() -> list[str]:
    """Names of the benchmarks in this package (`bench_<name>.py` → `<name>`)."""
    return sorted(m.name[len(PREFIX) :] for m in pkgutil.iter_modules(__path__) if m.name.startswith(PREFIX))


def load(name: str) -> ModuleType:
    if name not in available():
        raise KeyError(name)
    module = importlib.import_module(f"{__name__}.{PREFIX}{name}")
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{module.__name__} has no run(quick: bool) -> dict")
    return module


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    ratio: float | None = None,
    goal: str | None = None,
    ok: bool | None = None,
    note: str | None = None,
    role: str = "measured",
) -> dict[str, Any]:
    """One row of a benchmark's result.

    `ratio` is value ÷ baseline value (both measured in this run); `baseline` names what it was compared with.
    `role` is "measured" for the thing under test, "baseline" for a reference measured in the same run.
    """
    row: dict[str, Any] = {"name": name, "value": value, "unit": unit, "role": role}
    for key, v in (("baseline", baseline), ("ratio", ratio), ("goal", goal), ("ok", ok), ("note", note)):
        if v is not None:
            row[key] = v
    return row


def ratio(a: float, b: float) -> float:
    """a ÷ b, inf when b is 0."""
    return a / b if b else float("inf")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def timed_best(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best seconds, median seconds, last result) over `repeat` calls."""
    times: list[float] = []
    result: Any = None
    for _ in range(max(1, repeat)):
        dt, result = timed(fn)
        times.append(dt)
    return min(times), statistics.median(times), result


def p50_us(fn: Callable[[], Any], n: int) -> float:
    """Median microseconds of one call of `fn` over `n` calls, after a warm-up of up to 200."""
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)
