"""Fixtures for the metrics tests: a journal in the test's data dir and a pinned clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from beststag_cli import clock
from beststag_cli.journal import Journal

#: every metrics test runs at this instant unless it moves the clock
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
T = NOW.timestamp()


@pytest.fixture
def now() -> Iterator[float]:
    clock.set_now(NOW)
    yield T
    clock.reset()


@pytest.fixture
def journal(settings, now) -> Iterator[Journal]:  # type: ignore[no-untyped-def]
    j = Journal(settings.paths.journal, source="test")
    yield j
    j.close()


def ts(text: str) -> float:
    """POSIX seconds of an ISO instant written without the zone (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
