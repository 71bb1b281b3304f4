from __future__ import annotations

import pytest
from pydantic import SecretStr

SECRET = "test-webhook-secret-0123456789"


@pytest.fixture
def app(settings, sandbox):  # type: ignore[no-untyped-def]
    """The webhook app wired to the test's sandbox copy."""
    import beststag_cli.sandbox as sbmod
    from beststag_cli.server.app import create_app

    settings.webhook.secret = SecretStr(SECRET)
    mp = pytest.MonkeyPatch()
    mp.setattr(sbmod, "get_sandbox", lambda path: sandbox)
    yield create_app(settings)
    mp.undo()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        c.headers.update({"Authorization": f"Bearer {SECRET}"})
        yield c
