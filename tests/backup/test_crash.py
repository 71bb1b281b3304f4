"""Crash safety: SIGKILL `beststag backup run` at random moments; nothing half-written is ever listed as good."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: kills that must land mid-run (a kill that lands after the rename is fine too, and not counted)
KILLS = 10
MAX_ATTEMPTS = 20
BESTSTAG = [sys.executable, "-c", "import sys; from beststag_cli.cli import app; app(sys.argv[1:])"]


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    env["BESTSTAG_DATA_DIR"] = str(data)
    env["BESTSTAG_SANDBOX_FAULTS"] = json.dumps({"latency_ms": 20})  # slow enough for kills to land mid-run
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BESTSTAG, *args], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_good_looking_partial(_sample_db, tmp_path):
    data = tmp_path / "data"
    (data / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, data / "sandbox" / "base.sqlite")  # seeded once, before the kills
    env = _env(data)
    rng = random.Random(20261125)
    partial = data / "backups" / ".partial"

    def start_and_wait_for_partial() -> tuple[subprocess.Popen[str], float]:
        before = set(partial.iterdir()) if partial.exists() else set()
        t = time.monotonic()
        proc = subprocess.Popen([*BESTSTAG, "--json", "backup", "run", "--type", "complete"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not (partial.exists() and set(partial.iterdir()) - before):
            time.sleep(0.005)
        return proc, time.monotonic() - t

    # how long the writing part of one run takes here (the second run: attachments already stored),
    # so the kills spread over all of it
    listed_ids: set[str] = set()
    finished = data / "backups" / "complete"
    for _ in range(2):
        done_before = set(finished.iterdir()) if finished.exists() else set()
        proc, _startup = start_and_wait_for_partial()
        t0 = time.monotonic()
        while not (finished.exists() and set(finished.iterdir()) - done_before) and proc.poll() is None:
            time.sleep(0.005)
        work = time.monotonic() - t0  # from the partial folder's creation to its rename
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        listed_ids.add(json.loads(out)["id"])
    killed_mid_run = 0
    attempts = 0
    while killed_mid_run < KILLS and attempts < MAX_ATTEMPTS:
        attempts += 1
        proc, _ = start_and_wait_for_partial()
        time.sleep(rng.uniform(0.0, work))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        listed = json.loads(_cli(env, "--json", "backup", "list").stdout)
        # a run killed before its rename is never listed; one killed after it is complete and
        # verified (checked below with verify --all); nothing listed is ever anything but ok
        assert {b["status"] for b in listed} == {"ok"}
        now_ids = {b["id"] for b in listed}
        assert listed_ids <= now_ids and len(now_ids - listed_ids) <= 1
        if now_ids == listed_ids:
            killed_mid_run += 1
        listed_ids = now_ids
    assert killed_mid_run >= KILLS
    leftovers = list(partial.iterdir())
    assert len(leftovers) >= killed_mid_run  # the killed runs' folders, for cleanup (and forensics) later
    after = _cli(env, "--json", "backup", "run", "--type", "incremental")
    assert after.returncode == 0, after.stderr
    verify = _cli(env, "--json", "backup", "verify", "--all")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert len(json.loads(verify.stdout)["verified"]) == len(listed_ids) + 1
    # the killed runs are marked interrupted in the journal (those killed before their first
    # journal row have none), never ok; no id was reused
    import sqlite3

    rows = sqlite3.connect(data / "journal.sqlite").execute("SELECT status, COUNT(*) FROM backup_runs GROUP BY 1")
    statuses = dict(rows.fetchall())
    assert statuses.get("ok") == len(listed_ids) + 1
    assert set(statuses) <= {"ok", "running", "interrupted"}
    assert statuses.get("interrupted", 0) >= KILLS // 2
