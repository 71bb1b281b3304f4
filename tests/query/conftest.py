"""Fixtures for the query tests: the sample schema, a QuerySpec service on the gateway, a request log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from beststag_cli.query.schema import BaseSchema

BASE = "appBestStagSandbx"


@dataclass
class RequestLog:
    """What the sandbox received: (method, route, status) per request."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, method: str, route: str, status: int) -> None:
        self.calls.append((method, route, status))

    def routes(self, route: str) -> list[tuple[str, str, int]]:
        return [c for c in self.calls if c[1] == route]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def requests_log(sandbox) -> Iterator[RequestLog]:  # type: ignore[no-untyped-def]
    log = RequestLog()
    sandbox.app.observers.append(log)
    yield log
    sandbox.app.observers.remove(log)


@pytest.fixture
def schema(sandbox) -> BaseSchema:  # type: ignore[no-untyped-def]
    return BaseSchema.from_json(BASE, sandbox.store.base_schema(BASE))


@pytest.fixture
def service(gateway):  # type: ignore[no-untyped-def]
    from beststag_cli.query.service import QueryService

    return QueryService(gateway)


@pytest.fixture
def wire(gateway) -> Iterator[list]:  # type: ignore[no-untyped-def]
    """Every HTTP response the gateway's session got (request URL and body included)."""
    seen: list = []
    gateway.api.session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
    yield seen
