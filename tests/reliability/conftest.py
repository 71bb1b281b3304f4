"""Shared helpers of the reliability suite: clean-failure checks, data-dir snapshots, subprocess runs.

Subprocess helpers come from `tests/backup/test_crash.py` (the same way of starting the CLI with a
private data dir and a slowed sandbox), so the two suites kill and restart the tool identically.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.backup.test_crash import BESTSTAG, _env
from tests.server.conftest import SECRET, app, client  # noqa: F401  (fixtures, shared)

#: a token of the real shape: "pat" + 14 alphanumerics + "." + 64 hex
CANARY = "pat" + "CANARYxx123456" + "." + "0123456789abcdef" * 4
SAMPLE_TABLES = ("Usuários", "Interações", "Tarefas", "Eventos", "Memória Contextual", "Logs do Sistema", "Métricas")
BASE = "appBestStagSandbx"


def sandbox_env(data: Path, faults: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The environment test_crash uses, with the given fault config instead of its latency."""
    env = _env(data)
    env["BESTSTAG_SANDBOX_FAULTS"] = json.dumps(faults or {"latency_ms": 5})
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BESTSTAG, *args], env=env, capture_output=True, text=True, timeout=timeout, input=input)


def seeded_data_dir(sample_db: Path, data: Path) -> Path:
    """A data dir whose sandbox holds a copy of the session's seeded sample base."""
    (data / "sandbox").mkdir(parents=True, exist_ok=True)
    shutil.copy(sample_db, data / "sandbox" / "base.sqlite")
    return data


def assert_clean_failure(code: int, stdout: str, stderr: str, expected: int = 2) -> dict[str, Any]:
    """The documented exit code, no traceback, and exactly one error line; returns the --json error."""
    text = stdout + stderr
    assert "Traceback" not in text, text[-2000:]
    assert code == expected, (code, text[-1500:])
    err: dict[str, Any] = {}
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "error" in doc:
        err = doc["error"]
        assert err["type"] != "internal_error", err
        assert "\n" not in err["message"], err
        assert err["message"].strip()
    else:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("error:", "Error:", "Usage:", "│", "╭", "╰", "Try"))]
        assert errors, stderr
        assert "internal_error" not in text and "this is a bug" not in text, text
        assert len([ln for ln in lines if ln.startswith("error:")]) <= 1, stderr
    return err


def record_counts(sandbox: Any) -> dict[str, int]:
    return {t: sandbox.store.count(BASE, t) for t in SAMPLE_TABLES}


def listing(data: Path, *, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Relative path → size for every file under `data` except those whose path starts with `skip`."""
    out: dict[str, int] = {}
    if not data.exists():
        return out
    for p in sorted(data.rglob("*")):
        rel = p.relative_to(data).as_posix()
        if p.is_file() and not rel.startswith(skip):
            out[rel] = p.stat().st_size
    return out


def cache_keys(data: Path) -> set[str]:
    """Every key in the diskcache (read with sqlite directly: nothing of ours is imported)."""
    import sqlite3

    db = data / "cache" / "store" / "cache.db"
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {str(r[0]) for r in conn.execute("SELECT key FROM Cache")}
    finally:
        conn.close()


def data_keys_written(keys: set[str]) -> set[str]:
    """Cache keys that hold data (answers, records, mirrors), not bookkeeping (aliases, ttl state)."""
    return {k for k in keys if k.split(":", 1)[0] in ("q", "r", "m", "ix", "spec")}


def modes(data: Path) -> list[tuple[str, str]]:
    """(path, problem) for every file not 0600 and every dir not 0700 under `data`."""
    bad: list[tuple[str, str]] = []
    for p in [data, *data.rglob("*")]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        want = 0o700 if p.is_dir() else 0o600
        if mode != want:
            bad.append((p.relative_to(data).as_posix() or ".", oct(mode)))
    return bad


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every Gateway built during the test records its backoff waits instead of sleeping them."""
    from beststag_cli.gateway import api as gw

    waits: list[float] = []
    real_init = gw.Gateway.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        self.sleep = waits.append

    monkeypatch.setattr(gw.Gateway, "__init__", init)
    return waits
