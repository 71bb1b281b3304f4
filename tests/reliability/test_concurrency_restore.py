"""Restores at once, and restores stopped by a signal: exact end state in the base (issue 15, defects 1 and 16).

Real processes (`python -c "... app(...)"`, as tests/backup/test_crash.py starts them) share one data dir
and its sandbox file, the way two cron jobs or an operator and a cron job would.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from beststag_cli.backup.restore import find_resumable, known_mappings
from tests.backup.conftest import assert_same_state, snapshot

from .conftest import BESTSTAG, run_cli, sandbox_env

pytestmark = pytest.mark.slow

TABLES = ["Usuários", "Tarefas"]  # Tarefas links to Usuários and holds files
RACE_TABLES = ["Interações"]  # the repro: one big table, its creates are the end of the run
SCALE = 0.5  # 50 users, 150 tasks, 500 interactions
#: generous: every wait here is for a process or a row, on a machine that may be busy
WAIT_S = 180.0


def _fingerprint(snap: dict[str, dict[str, dict[str, Any]]], id_map: dict[str, str]) -> dict[str, Counter[str]]:
    """table → multiset of sha256(field values, links through id_map, files as sha256)."""
    import hashlib

    out: dict[str, Counter[str]] = {}
    for table, recs in snap.items():
        c: Counter[str] = Counter()
        for rec in recs.values():
            fields = {
                k: (sorted(id_map.get(x, x) for x in v) if rec["types"][k] == "multipleRecordLinks" else v)
                for k, v in rec["fields"].items()
                if rec["targets"].get(k, table) in snap
            }
            c[hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()] += 1
        out[table] = c
    return out


class World:
    """A data dir with a small sample base in its sandbox file, a complete backup of TABLES, and readers."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, latency_ms: float = 5) -> None:
        from beststag_cli.config import load_config
        from beststag_cli.gateway.api import Gateway
        from beststag_cli.journal import Journal
        from beststag_cli.sandbox import Sandbox

        self.data = tmp_path / "data"
        (self.data / "sandbox").mkdir(parents=True)
        self.sb = Sandbox(self.data / "sandbox" / "base.sqlite")
        self.sb.ensure_sample(seed=42, scale=SCALE)
        monkeypatch.setenv("BESTSTAG_DATA_DIR", str(self.data))
        self.env = sandbox_env(self.data, {"latency_ms": latency_ms})
        self.settings = load_config()
        self.journal = Journal(self.settings.paths.journal)
        self.gateway = Gateway(self.settings, sandbox=self.sb, journal=self.journal, source="test")
        self.before = snapshot(self.gateway, TABLES + RACE_TABLES)
        r = run_cli(
            self.env,
            "--json",
            "backup",
            "run",
            "--type",
            "complete",
            "--tables",
            ",".join(TABLES + RACE_TABLES),
            timeout=WAIT_S,
        )
        assert r.returncode == 0, r.stderr
        self.backup_id = json.loads(r.stdout)["id"]

    def empty_base(self, base_id: str, seed: int) -> Any:
        from beststag_cli.backup.restore import gateway_for_base
        from beststag_cli.sandbox.seed import load_sample

        load_sample(self.sb.store, base_id=base_id, with_records=False, seed=seed, scale=SCALE)
        return gateway_for_base(self.gateway, base_id)

    def restore_cmd(self, base_id: str, *extra: str, tables: list[str] = TABLES) -> list[str]:
        return [
            *BESTSTAG,
            "--json",
            "backup",
            "restore",
            self.backup_id,
            "--tables",
            ",".join(tables),
            "--base",
            base_id,
            "--yes",
            *extra,
        ]

    def assert_exact(self, base_id: str, target: Any, tables: list[str] = TABLES) -> None:
        """Every backed-up record exactly once: counts, field hashes, links remapped, files by sha256."""
        id_map = known_mappings(self.journal, base_id)
        after = snapshot(target, tables)
        before = {t: self.before[t] for t in tables}
        assert {t: len(after[t]) for t in tables} == {t: len(before[t]) for t in tables}
        assert _fingerprint(after, {}) == _fingerprint(before, id_map)
        assert_same_state(before, after, id_map)

    def timings(self, base_id: str, started: float) -> tuple[float, float]:
        """From a finished restore into ``base_id`` started at ``started`` (clock time): when it first read
        the target table and when it finished, in seconds after its start (from the journal)."""
        first_read = self.journal.query(
            "SELECT min(ts) AS t FROM requests WHERE base = ? AND operation = 'list'", (base_id,)
        )[0]["t"]
        ended = self.journal.query("SELECT max(finished) AS t FROM restore_runs")[0]["t"]
        return float(first_read) - started, float(ended) - started

    def close(self) -> None:
        self.gateway.close()
        self.sb.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> Any:
    w = World(tmp_path, monkeypatch)
    yield w
    w.close()


def test_two_restores_at_once_into_one_empty_base_write_every_record_once(world: World) -> None:
    from beststag_cli import clock

    # one restore alone first: when it reads the target and when it ends, so the second one of each
    # pair can be started to read the target while the first is still writing and to plan past its end
    # (the window in which a restore that plans before locking creates records twice)
    target = world.empty_base("appConcurrentRst0", seed=100)
    started = clock.timestamp()
    solo = subprocess.run(
        world.restore_cmd("appConcurrentRst0", tables=RACE_TABLES),
        env=world.env,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert solo.returncode == 0, solo.stderr
    world.assert_exact("appConcurrentRst0", target, RACE_TABLES)
    reads_at, ends_at = world.timings("appConcurrentRst0", started)
    aim = max(0.0, ends_at - reads_at)  # the second reads the target just as the first writes its last batches

    rng = random.Random(1515)
    # The second run of each pair talks to a slower Airtable (150 ms a request): it reads the journal
    # and the target while the first is still writing and, planning slowly, reaches its writes after
    # the first has ended. Three offsets before that end; the last pair lets the second wait for the
    # lock instead of exiting 75.
    slow = sandbox_env(world.data, {"latency_ms": 150})
    trials = [
        (aim - rng.uniform(0.2, 0.45), ()),
        (aim - rng.uniform(0.45, 0.7), ()),
        (aim - rng.uniform(0.2, 0.7), ("--wait", str(WAIT_S))),
    ]
    for i, (offset, extra) in enumerate(trials, start=1):
        base = f"appConcurrentRst{i}"
        target = world.empty_base(base, seed=100 + i)
        first = subprocess.Popen(
            world.restore_cmd(base, *extra, tables=RACE_TABLES),
            env=world.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(max(0.0, offset))  # the offset itself is the experiment, not a synchronisation
        second = subprocess.Popen(
            world.restore_cmd(base, *extra, tables=RACE_TABLES),
            env=slow,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        outs = [p.communicate(timeout=WAIT_S) for p in (first, second)]
        codes = [first.returncode, second.returncode]
        print(
            f"trial {i}: offset {offset:.2f} s of {aim:.2f} s: exit codes {codes}, "
            f"{world.sb.store.count(base, 'Interações')} records"
        )
        assert set(codes) <= {0, 75} and 0 in codes, (offset, codes, [e[-1500:] for _, e in outs])
        for code, (out, _err) in zip(codes, outs, strict=True):
            if code == 75:
                err = json.loads(out)["error"]
                assert err["type"] == "lock_held" and base in err["message"], err
        if extra:
            assert codes == [0, 0], (codes, [e[-1500:] for _, e in outs])
        world.assert_exact(base, target, RACE_TABLES)


def _me() -> dict[str, Any]:
    """This process as a restore row records it: pid, host and boot id."""
    import os
    import socket

    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
        boot = f.read().strip()
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot}


def test_a_running_restore_of_a_live_process_is_not_resumed(world: World) -> None:
    base = "appConcurrentRst4"
    world.empty_base(base, seed=104)
    progress = {
        "backup_id": world.backup_id,
        "target_base": base,
        "tables": TABLES,
        "prune_extra": False,
        "mode": "other",
    }
    dead = subprocess.Popen(["true"])  # a pid that existed on this boot and is gone now
    dead.wait(timeout=WAIT_S)
    world.journal.record_restore_run(
        id="restore-alive",
        backup_id=world.backup_id,
        status="running",
        started=2.0,
        progress={**progress, "process": _me()},
    )
    assert find_resumable(world.journal, world.backup_id, base, TABLES, False) is None
    world.journal.record_restore_run(
        id="restore-dead",
        backup_id=world.backup_id,
        status="running",
        started=1.0,
        progress={**progress, "process": {**_me(), "pid": dead.pid}},
    )
    assert find_resumable(world.journal, world.backup_id, base, TABLES, False) == "restore-dead"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_restore_closes_the_run_as_interrupted_and_a_rerun_completes(world: World, sig: int) -> None:
    base = "appConcurrentRst5" if sig == signal.SIGINT else "appConcurrentRst6"
    target = world.empty_base(base, seed=105 if sig == signal.SIGINT else 106)
    env = sandbox_env(world.data, {"latency_ms": 20})  # slow enough for the signal to land mid-run
    proc = subprocess.Popen(world.restore_cmd(base), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while world.sb.store.count(base, "Usuários") == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the base for the first write: the event we wait for
    assert proc.poll() is None, "the restore finished before any record was seen"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + sig, (proc.returncode, err[-1500:])
    assert "Traceback" not in err
    rows = world.journal.query("SELECT status, progress_json FROM restore_runs ORDER BY started DESC")
    mine = [r for r in rows if json.loads(r["progress_json"])["target_base"] == base]
    assert [r["status"] for r in mine] == ["interrupted"]
    lock = world.settings.paths.locks / f"restore-{base}.lock"
    assert not Path(f"{lock}.holder").exists()  # the lock was released with its holder note

    r = run_cli(
        world.env,
        "--json",
        "backup",
        "restore",
        world.backup_id,
        "--tables",
        ",".join(TABLES),
        "--base",
        base,
        "--yes",
        timeout=WAIT_S,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed"] is True
    world.assert_exact(base, target)
