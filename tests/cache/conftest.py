from __future__ import annotations

import pytest


@pytest.fixture
def wired(settings, sandbox):  # type: ignore[no-untyped-def]
    """A gateway and a cache built as every process builds them: the gateway's change sink is the cache."""
    from beststag_cli.cache import connect

    gw, m = connect(settings, sandbox=sandbox, source="test")
    yield gw, m
    m.close()
    gw.close()


@pytest.fixture
def gateway(wired):  # type: ignore[no-untyped-def]
    return wired[0]


@pytest.fixture
def cache(wired):  # type: ignore[no-untyped-def]
    return wired[1]
