"""Shared fixtures: every test gets a private data dir and no real Airtable credentials."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli import clock

_ENV_PREFIXES = ("AIRTABLE_", "BESTSTAG_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No test sees the caller's token, config or data dir (borg's clean_env)."""
    import os

    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    data = tmp_path / "var"
    monkeypatch.setenv("BESTSTAG_DATA_DIR", str(data))
    clock.reset()
    yield data
    clock.reset()


@pytest.fixture(scope="session")
def _sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded sample base, built once per session and copied per test."""
    from beststag_cli.sandbox import Sandbox

    path = tmp_path_factory.mktemp("sample") / "base.sqlite"
    sb = Sandbox(path)
    sb.ensure_sample(seed=42, scale=1.0)
    sb.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sb.close()
    return path


@pytest.fixture
def sandbox(_sample_db: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A private copy of the seeded sample sandbox."""
    from beststag_cli.sandbox import Sandbox

    target = tmp_path / "sandbox" / "base.sqlite"
    target.parent.mkdir(parents=True)
    shutil.copy(_sample_db, target)
    sb = Sandbox(target)
    yield sb
    sb.close()


@pytest.fixture
def api(sandbox):  # type: ignore[no-untyped-def]
    """pyairtable 3.5 Api served by the sandbox, without pyairtable's own 429 retries."""
    return sandbox.api(retry_strategy=None)
