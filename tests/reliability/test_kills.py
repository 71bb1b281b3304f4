"""Kills: SIGKILL `backup restore`, `backup cleanup`, `cache warm` and journal writers at random moments.

`backup run` is covered by tests/backup/test_crash.py (same helpers, same way of starting the CLI).
After every kill the data dir must be consistent: nothing half-written listed, every listed backup
verifies, the cache's `check()` is clean, the journal opens and passes `PRAGMA integrity_check`;
then one more run completes the work.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import clock

from .conftest import BASE, BESTSTAG, run_cli, sandbox_env, seeded_data_dir

KILLS = 10
pytestmark = pytest.mark.slow


def _journal_ok(data: Path) -> None:
    path = data / "journal.sqlite"
    if not path.exists():
        return
    conn = sqlite3.connect(path, timeout=10)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    from beststag_cli.journal import Journal

    j = Journal(path)
    try:
        j.query("SELECT COUNT(*) FROM requests")
    finally:
        j.close()


def _backups_ok(settings: Any) -> list[str]:
    """Every listed backup is complete and verifies; returns their ids."""
    from beststag_cli.backup.layout import BlobStore, list_backups
    from beststag_cli.backup.verify import verify_backup

    root = settings.paths.backups
    store = BlobStore(root)
    listed = list_backups(root)
    for b in listed:
        verify_backup(b, store)
    return [b.summary()["id"] for b in listed]


def _cache_ok(settings: Any) -> None:
    from beststag_cli.cache.store import CacheStore

    store = CacheStore(settings.paths.cache_dir)
    try:
        assert store.check() == []
    finally:
        store.close()


def kill_at_random_moments(
    cmd: list[str],
    env: dict[str, str],
    rng: random.Random,
    *,
    kills: int,
    after_each: Callable[[], None],
    window: float,
    before_each: Callable[[], None] = lambda: None,
) -> tuple[int, int]:
    """Start `cmd`, SIGKILL it after a random delay in [0.1, window] s, check; returns (killed, finished)."""
    killed = finished = 0
    for _ in range(kills * 4):
        before_each()
        proc = subprocess.Popen([*BESTSTAG, *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.1, window))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        else:
            finished += 1
        proc.communicate(timeout=60)
        after_each()
        if killed >= kills:
            break
    assert killed >= kills, (killed, finished)
    return killed, finished


def _settings(env: dict[str, str]) -> Any:
    from beststag_cli.config import load_config

    return load_config()


def _timed(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = run_cli(env, *args)
    return time.monotonic() - t0, r


def test_kill_restore_at_random_moments(
    _sample_db: Path, tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = seeded_data_dir(_sample_db, tmp_path / "data")
    monkeypatch.setenv("BESTSTAG_DATA_DIR", str(data))
    env = sandbox_env(data)
    r = run_cli(env, "--json", "backup", "run", "--type", "complete", "--tables", "Tarefas,Eventos")
    assert r.returncode == 0, r.stderr
    import json

    backup_id = json.loads(r.stdout)["id"]
    from beststag_cli.sandbox import Sandbox

    sb = Sandbox(data / "sandbox" / "base.sqlite")
    want = {t: sb.store.count(BASE, t) for t in ("Tarefas", "Eventos")}
    api = sb.api(retry_strategy=None)

    def lose_records() -> None:  # after a finished restore, give the next run records to recreate
        conn = sqlite3.connect(data / "journal.sqlite")
        last = conn.execute("SELECT status FROM restore_runs ORDER BY started DESC LIMIT 1").fetchone()
        conn.close()
        if last is not None and last[0] != "ok":
            return  # an interrupted restore is pending: the next run resumes it
        for t in want:
            recs = api.table(BASE, t).all(max_records=30)
            api.table(BASE, t).batch_delete([x["id"] for x in recs])

    for t in want:
        recs = api.table(BASE, t).all(max_records=30)
        api.table(BASE, t).batch_delete([x["id"] for x in recs])
    settings = _settings(env)
    duration, r = _timed(env, "--json", "backup", "restore", backup_id, "--yes")
    assert r.returncode == 0, r.stderr

    def check() -> None:
        _journal_ok(data)
        assert backup_id in _backups_ok(settings)

    rng = random.Random(11)
    killed, _ = kill_at_random_moments(
        ["--json", "backup", "restore", backup_id, "--yes"],
        env,
        rng,
        kills=KILLS,
        after_each=check,
        before_each=lose_records,
        window=duration,
    )
    r = run_cli(env, "--json", "backup", "restore", backup_id, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    got = {t: sb.store.count(BASE, t) for t in want}
    dupes = sum(got[t] - want[t] for t in want)
    print(f"\nrestore: {killed} kills; {dupes} record(s) created twice by resumed restores")
    assert all(got[t] >= want[t] for t in want)  # nothing lost
    assert dupes == 0  # a batch sent before a kill is found again by the next run, not created twice
    sb.close()


def test_kill_cleanup_at_random_moments(
    _sample_db: Path, tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = seeded_data_dir(_sample_db, tmp_path / "data")
    monkeypatch.setenv("BESTSTAG_DATA_DIR", str(data))
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.gateway.api import Gateway

    settings = _settings({})
    gw = Gateway(settings, source="test")
    start = clock.now().replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=60)
    day = [0]

    def more_backups(n: int = 4) -> None:
        for _ in range(n):
            clock.set_now(start + timedelta(days=day[0]))
            run_backup(settings, gw, "critical", ["Usuários"])
            day[0] += 1

    more_backups(16)
    env = sandbox_env(data)
    env["BESTSTAG_FAKE_NOW"] = (start + timedelta(days=200)).isoformat()
    duration, r = _timed(env, "--json", "backup", "cleanup")  # a real run: how long one takes here
    assert r.returncode == 0, r.stderr
    more_backups(8)
    last_good: list[str] = []

    def before() -> None:
        ids = _backups_ok(settings)
        if len(ids) < 14:  # cleanup finished its work: give it more to delete
            more_backups()
        last_good[:] = _backups_ok(settings)[-1:]

    def check() -> None:
        ids = _backups_ok(settings)  # whatever is listed verifies: no half-deleted backup looks complete
        assert ids and last_good[0] in ids  # the newest good backup is never deleted
        _journal_ok(data)

    rng = random.Random(12)
    killed, finished = kill_at_random_moments(
        ["--json", "backup", "cleanup"], env, rng, kills=KILLS, after_each=check, before_each=before, window=duration
    )
    r = run_cli(env, "--json", "backup", "cleanup")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli(env, "--json", "backup", "verify", "--all")
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"\ncleanup: {killed} kills, {finished} runs finished before their kill")
    gw.close()
    clock.reset()


def test_kill_cache_warm_at_random_moments(
    _sample_db: Path, tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = seeded_data_dir(_sample_db, tmp_path / "data")
    monkeypatch.setenv("BESTSTAG_DATA_DIR", str(data))
    env = sandbox_env(data)
    settings = _settings(env)
    duration, r = _timed(env, "--json", "cache", "warm")
    assert r.returncode == 0, r.stderr

    def check() -> None:
        _cache_ok(settings)
        _journal_ok(data)
        r = run_cli(env, "--json", "cache", "stats")
        assert r.returncode == 0, r.stderr

    rng = random.Random(13)
    killed, _ = kill_at_random_moments(
        ["--json", "cache", "warm"],
        env,
        rng,
        kills=KILLS,
        after_each=lambda: (_cache_ok(settings), _journal_ok(data)),
        window=max(0.8, duration * 1.2),
    )
    check()
    r = run_cli(env, "--json", "cache", "warm")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli(env, "--json", "cache", "get", "Usuários", "--filter", '{"status": "Ativo"}')
    assert r.returncode == 0, r.stderr
    print(f"\ncache warm: {killed} kills")


JOURNAL_WRITER = r"""
import sys
from beststag_cli.journal import Journal
j = Journal(sys.argv[1], source="killtest")
print("ready", flush=True)
i = 0
while True:
    j.record_request(base="app", table_name="T", method="GET", operation="list", status=200, duration_ms=1.0,
                     records=i, bytes=10 * i)
    j.record_cache_event(event="hit", table_name="T", base="app", key="k", bytes=1, age_s=0.1)
    j.record_backup_run(id=f"b{i}", type="complete", status="running", started=float(i))
    i += 1
"""


def test_kill_journal_writers_at_random_moments(tmp_path: Path) -> None:
    """Several writers at once, killed at random (some during their first open and migrations)."""
    path = tmp_path / "j" / "journal.sqlite"
    rng = random.Random(14)
    kills = 0
    for round_ in range(KILLS):
        if round_ % 4 == 0 and path.exists():  # now and then, a fresh file: kills land in the migrations
            for p in path.parent.iterdir():
                p.unlink()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", JOURNAL_WRITER, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        time.sleep(rng.uniform(0.05, 0.6))
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.communicate(timeout=30)
        _journal_ok(path.parent)
    from beststag_cli.journal import Journal

    j = Journal(path)
    n = j.query("SELECT COUNT(*) AS n FROM requests")[0]["n"]
    j.record_request(base="app", table_name="T", method="GET", operation="list", status=200, duration_ms=1.0)
    assert j.query("SELECT COUNT(*) AS n FROM requests")[0]["n"] == n + 1
    j.close()
    print(f"\njournal: {kills} writer kills")
    assert kills >= KILLS
