from __future__ import annotations

import pytest

from beststag_cli.cache import follow_writes
from beststag_cli.cache.manager import CacheManager


@pytest.fixture
def cache(settings, gateway):  # type: ignore[no-untyped-def]
    m = CacheManager(settings, gateway=gateway)
    unfollow = follow_writes(settings, gateway, m)
    yield m
    unfollow()
    m.close()


@pytest.fixture
def upstream(sandbox):  # type: ignore[no-untyped-def]
    """Counts the list/get requests the sandbox answers."""
    calls: list[tuple[str, str, int]] = []
    sandbox.app.observers.append(lambda m, r, s: calls.append((m, r, s)))

    class Counter:
        def reads(self) -> int:
            return sum(1 for _, r, _ in calls if r in ("list", "get"))

        def all(self) -> list[tuple[str, str, int]]:
            return list(calls)

    return Counter()


@pytest.fixture
def writer(gateway):  # type: ignore[no-untyped-def]
    from beststag_cli.query.writes import Writer

    w = Writer(gateway)

    def write(op: str, table: str, records: list) -> list:  # type: ignore[type-arg]
        from beststag_cli.query.writes import to_records

        return w.write(op, table, to_records(op, records)).records  # type: ignore[arg-type]

    return write
