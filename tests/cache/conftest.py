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
