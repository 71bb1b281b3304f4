"""Eight processes miss the same key at once: one upstream request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
from beststag_cli.cache.manager import CacheManager
from beststag_cli.config import load_config
from beststag_cli.query.spec import QuerySpec

start = float(sys.argv[1])
m = CacheManager(load_config(), source="test")
m.schema()  # schema from the disk cache the parent filled
while time.time() < start:
    time.sleep(0.001)
r = m.get(QuerySpec.parse({"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]}))
print(json.dumps({"status": r.status, "n": len(r.records)}))
"""


def test_eight_processes_one_upstream_request(tmp_path: Path, clean_env: Path) -> None:
    from beststag_cli.cache.manager import CacheManager
    from beststag_cli.config import load_config

    prep = CacheManager(load_config())
    prep.schema()  # seeds the sandbox and caches the schema on disk
    prep.close()
    env = {**os.environ, "BESTSTAG_SANDBOX_FAULTS": json.dumps({"latency_ms": 300})}
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, e in outs]
    assert sorted(r["status"] for r in results).count("miss") == 1, (results, [e[-500:] for _, e in outs])
    assert len({r["n"] for r in results}) == 1
    from beststag_cli.journal import Journal

    rows = Journal(load_config().paths.journal).query(
        "SELECT COUNT(*) AS n FROM requests WHERE operation = 'list' AND table_name = 'Usuários'"
    )
    assert rows[0]["n"] == 1
