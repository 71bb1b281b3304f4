"""16 threads in 2 processes against `beststag sandbox serve --rate-limit`: no 429, ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

WORKER = r"""
import json, sys, threading, time
from beststag_cli.config import load_config
from beststag_cli.gateway.api import Gateway

gw = Gateway(load_config(), source="test")
stamps, errors = [], []
def work():
    for _ in range(3):
        try:
            gw.table("Métricas").first()
            stamps.append(time.time())
        except Exception as e:  # reported to the parent, which fails the test
            errors.append(repr(e))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"stamps": stamps, "errors": errors}))
"""


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "server")}
    proc = subprocess.Popen([sys.executable, "-m", "beststag_cli", "sandbox", "serve", "--port", "0",
                             "--rate-limit"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("sandbox serving http://"), line + (proc.stderr.read() if proc.stderr else "")
    url = line.split()[2]
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_two_processes_sixteen_threads_never_get_a_429(served: str, tmp_path: Path) -> None:
    env = {**os.environ, "AIRTABLE_TOKEN": "sandbox", "AIRTABLE_BASE_ID": "appBestStagSandbx",
           "AIRTABLE_ENDPOINT_URL": served, "BESTSTAG_DATA_DIR": str(tmp_path / "client")}
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    elapsed = time.time() - t0
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert all(not r["errors"] for r in results), results
    stamps = sorted(s for r in results for s in r["stamps"])
    assert len(stamps) == 48
    with urllib.request.urlopen(served + "/_sandbox/stats") as resp:
        stats = json.load(resp)
    assert stats["rate_limited"] == 0 and "429" not in stats["statuses"], stats
    # the requests were spread out, not merely lucky: 48 requests at 5/s take at least ~8.6 s
    assert elapsed >= (48 - 5) / 5
