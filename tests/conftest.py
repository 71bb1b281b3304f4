"""Shared fixtures: every test gets a private data dir and no real Airtable credentials."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli import clock
from tests.wiretrap import WireTrap

_ENV_PREFIXES = ("AIRTABLE_", "BESTSTAG_")


@pytest.fixture(scope="session", autouse=True)
def _wire_trap_server() -> Iterator[WireTrap]:
    """One trap proxy per test session (per xdist worker): tests/wiretrap.py.

    Its variables stay set for the whole session, not only inside tests: session fixtures (moto,
    redis) start before any test's own variables exist, and urllib's shared opener keeps the proxies
    it first saw, so without NO_PROXY in force between tests a loopback check went to the trap."""
    trap = WireTrap()
    mp = pytest.MonkeyPatch()
    tag = trap.new_tag("session fixtures (outside any test)")
    for key, value in trap.environ(tag).items():
        mp.setenv(key, value)
    yield trap
    mp.undo()
    leaked = [h for h in trap.hits_since(0) if h.tag == tag]
    trap.close()
    if leaked:
        shown = "\n  ".join(trap.describe(h) for h in leaked[:20])
        raise AssertionError(f"the wire trap received {len(leaked)} request(s) from session fixtures:\n  {shown}")


@pytest.fixture(autouse=True)
def wire_trap(_wire_trap_server: WireTrap, request: pytest.FixtureRequest) -> Iterator[WireTrap]:
    """Every test (and every subprocess it starts) sends HTTP(S) through the trap, loopback excepted;
    the test fails at teardown if anything reached it, naming method, host and path."""
    trap = _wire_trap_server
    mp = pytest.MonkeyPatch()
    for key, value in trap.environ(trap.new_tag(request.node.nodeid)).items():
        mp.setenv(key, value)
    mark = trap.mark()
    yield trap
    mp.undo()
    trap.check(mark)


@pytest.fixture(autouse=True)
def clean_env(wire_trap: WireTrap, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No test sees the caller's token, config or data dir (borg's clean_env); proxies point at the wire trap."""
    import os

    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    data = tmp_path / "var"
    monkeypatch.setenv("BESTSTAG_DATA_DIR", str(data))
    # sandbox mode on purpose, never by accident (a test that sets a token must unset this)
    monkeypatch.setenv("BESTSTAG_SANDBOX", "1")
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


@pytest.fixture
def settings(clean_env: Path):  # type: ignore[no-untyped-def]
    """Settings from the repo's config/beststag.yaml with the data dir in tmp (sandbox mode)."""
    from beststag_cli.config import load_config

    return load_config()


@pytest.fixture
def gateway(settings, sandbox):  # type: ignore[no-untyped-def]
    """The real Gateway wired to the test's private sandbox copy."""
    from beststag_cli.gateway.api import Gateway

    gw = Gateway(settings, sandbox=sandbox, source="test")
    yield gw
    gw.close()


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult({self.exit_code}, stdout={self.stdout[-800:]!r}, stderr={self.stderr[-800:]!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], sandbox, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run `beststag ARGS` in-process against the test's sandbox copy; returns a CliResult."""
    import beststag_cli.sandbox as sbmod
    from beststag_cli.cli.main import run

    monkeypatch.setattr(sbmod, "get_sandbox", lambda path: sandbox)

    def invoke(*args: str, input: str | None = None) -> CliResult:
        if input is not None:
            import io
            import sys

            monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke
