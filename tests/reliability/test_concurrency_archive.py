"""`metrics archive` started two or three times at once (issue 15, the concurrency method).

The end state is checked exactly: every journal row older than the retention is in the monthly
archive files once (no row lost, none twice), none is left in the journal, and every recent row is
still there. Processes are real CLI runs started at random offsets; one may exit 75 (another archive
holds the lock), none may fail otherwise.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from beststag_cli import clock
from beststag_cli.journal import Journal
from beststag_cli.metrics.archive import read_archive
from tests.backup.test_crash import BESTSTAG, _env

OLD_DAYS = (400, 370, 340, 310, 280, 250, 220, 190, 160, 130)  # ten old months (retention is far shorter)
PER_DAY = 1500


def _row_key(r: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()


def _seed(journal_path: Path, now: float) -> tuple[Counter[str], int]:
    """Old request and cache-event rows (each unique) and some recent ones; (old rows by hash, recent count)."""
    old: Counter[str] = Counter()
    requests: list[tuple[float, float]] = []
    events: list[tuple[float, str]] = []
    i = 0
    for days in OLD_DAYS:
        for k in range(PER_DAY):
            ts = now - days * 86400 + k * 2.0
            requests.append((ts, float(i)))
            old[_row_key({"table": "requests", "ts": ts, "duration_ms": float(i)})] += 1
            if k % 4 == 0:
                events.append((ts, f"k{i}"))
                old[_row_key({"table": "cache_events", "ts": ts, "key": f"k{i}"})] += 1
            i += 1
    requests += [(now - 3600 + k, -1.0 - k) for k in range(50)]
    with Journal(journal_path) as j:
        conn = j.conn  # one transaction: the seed is setup, not what is tested
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO requests (ts, base, table_name, method, status, duration_ms, source)"
            " VALUES (?, 'app', 'T', 'GET', 200, ?, 'test')",
            requests,
        )
        conn.executemany("INSERT INTO cache_events (ts, table_name, event, \"key\") VALUES (?, 'T', 'hit', ?)", events)
        conn.execute("COMMIT")
    return old, 50


def _archived(folder: Path) -> Counter[str]:
    got: Counter[str] = Counter()
    for f in sorted(folder.glob("*.jsonl.gz")):
        table = f.name.split("-")[0]
        for r in read_archive(f):
            if table == "requests":
                got[_row_key({"table": "requests", "ts": r["ts"], "duration_ms": r["duration_ms"]})] += 1
            elif table == "cache_events":
                got[_row_key({"table": "cache_events", "ts": r["ts"], "key": r["key"]})] += 1
    return got


@pytest.mark.parametrize("trial", range(3))
def test_two_or_three_archives_at_random_offsets_move_every_old_row_exactly_once(tmp_path: Path, trial: int) -> None:
    rng = random.Random(1500 + trial)
    data = tmp_path / "data"
    env = _env(data)
    now = clock.timestamp()
    old, recent = _seed(data / "journal.sqlite", now)
    n = 2 + trial % 2
    procs = []
    for _ in range(n):
        procs.append(
            subprocess.Popen(
                [*BESTSTAG, "--json", "metrics", "archive"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        time.sleep(rng.uniform(0.0, 0.25))  # a random start offset, not a synchronisation
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = [c for c, _, _ in results]
    assert all(c in (0, 75) for c in codes) and 0 in codes, results
    for c, out, err in results:
        assert "Traceback" not in err and "internal_error" not in out, (c, out, err)
    got = _archived(data / "metrics" / "archive")
    assert got == old, (
        f"{sum((old - got).values())} old rows lost, {sum((got - old).values())} archived twice",
        results,
    )
    with Journal(data / "journal.sqlite") as j:
        assert j.query("SELECT count(*) AS n FROM requests WHERE duration_ms >= 0")[0]["n"] == 0
        assert j.query("SELECT count(*) AS n FROM cache_events")[0]["n"] == 0
        assert j.query("SELECT count(*) AS n FROM requests WHERE duration_ms < 0")[0]["n"] == recent
