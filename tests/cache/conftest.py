from __future__ import annotations

import pytest


@pytest.fixture
def wired(settings, sandbox):  # type: ignore[no-untyped-def]
    """A gateway whose change sink is the cache, as every process wires them; the cache (and its store)
    is opened on first use only, so a test that damages the store's files has nothing open on them."""
    from beststag_cli.cache import build_cache
    from beststag_cli.cache.sync import CacheSync
    from beststag_cli.gateway import build

    box = []
    sync = CacheSync(lambda: build_cache(settings, gateway=box[0]))
    box.append(build(settings, sink=sync, sandbox=sandbox, source="test"))
    yield box[0], sync
    if sync.built:
        sync.manager.close()
    box[0].close()


@pytest.fixture
def gateway(wired):  # type: ignore[no-untyped-def]
    return wired[0]


@pytest.fixture
def cache(wired):  # type: ignore[no-untyped-def]
    return wired[1].manager


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
