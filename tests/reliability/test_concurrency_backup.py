"""Concurrency suite (issue 15, the method): `backup run` ×2 and `backup cleanup` at random offsets, in a loop.

Per round: every process exits 0 or 75 (the base's backup lock: one at a time, the others give up at
once), at least one wins. End state, exact: the listed backups are the runs that exited 0 minus what
the cleanups removed; every one verifies; a final cleanup keeps exactly what the keep rules keep
(here `keep_last: 2`), and no cleanup ever removed a backup the rules keep; no journal row is left
`running`, and every run that exited 0 has its row `ok`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BESTSTAG = [sys.executable, "-c", "import sys; from beststag_cli.cli import app; app(sys.argv[1:])"]
REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3
TIMEOUT_S = 300


def _env(tmp_path: Path, sample: Path) -> dict[str, str]:
    data = tmp_path / "data"
    (data / "sandbox").mkdir(parents=True)
    shutil.copy(sample, data / "sandbox" / "base.sqlite")
    cfg = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    cfg["backup"]["types"]["critical"]["retention"] = {"keep_last": 2}
    cfg["backup"]["types"]["critical"]["tables"] = ["Usuários"]
    path = tmp_path / "beststag.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    env.update(
        BESTSTAG_DATA_DIR=str(data), BESTSTAG_CONFIG=str(path), BESTSTAG_SANDBOX_FAULTS=json.dumps({"latency_ms": 15})
    )
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BESTSTAG, "--json", *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.slow
def test_runs_and_cleanups_at_random_offsets_leave_an_exact_end_state(_sample_db, tmp_path):
    env = _env(tmp_path, _sample_db)
    rng = random.Random(15)
    made: list[str] = []
    removed: set[str] = set()
    for _ in range(ROUNDS):
        jobs = [
            ("run", "backup", "run", "--type", "critical"),
            ("run", "backup", "run", "--type", "critical"),
            ("cleanup", "backup", "cleanup"),
        ]
        rng.shuffle(jobs)
        procs = []
        for kind, *args in jobs:
            procs.append(
                (
                    kind,
                    subprocess.Popen(
                        [*BESTSTAG, "--json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    ),
                )
            )
            time.sleep(rng.uniform(0.0, 0.4))  # a random offset between starts (not a synchronisation)
        codes = []
        for kind, p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S)
            codes.append(p.returncode)
            assert p.returncode in (0, 75), (kind, p.returncode, err)
            if p.returncode == 75:
                assert "lock" in (out + err).lower(), (out, err)
                continue
            doc = json.loads(out)
            if kind == "run":
                assert doc["status"] == "ok"
                made.append(doc["id"])
            else:
                removed.update(doc["removed"])
        assert 0 in codes, codes
    assert made, "no run ever won"
    # what the rules keep at the end: the 2 newest critical backups; no cleanup removed one of them
    final = _cli(env, "backup", "cleanup")
    assert final.returncode == 0, final.stderr
    removed.update(json.loads(final.stdout)["removed"])
    newest_two = sorted(made)[-2:]
    assert not removed & set(newest_two), (removed, newest_two)
    listed = json.loads(_cli(env, "backup", "list").stdout)
    assert sorted(b["id"] for b in listed) == newest_two
    assert set(made) - removed == set(newest_two)
    verify = _cli(env, "backup", "verify", "--all")
    assert verify.returncode == 0 and len(json.loads(verify.stdout)["verified"]) == 2, verify.stdout + verify.stderr
    with sqlite3.connect(Path(env["BESTSTAG_DATA_DIR"]) / "journal.sqlite") as db:
        rows = dict(db.execute("SELECT id, status FROM backup_runs").fetchall())
    assert "running" not in rows.values(), rows
    assert all(rows[i] == "ok" for i in made), rows
