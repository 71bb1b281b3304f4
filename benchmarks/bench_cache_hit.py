"""The cache's hit path (issue 6, "fast hit path"): in-process and whole-process, next to baselines.

- in-process: `CacheStore.get` of a 20 KB answer from disk (diskcache) and from the in-memory LRU,
  p50 over many reads; baseline, same run: the stdlib's `json.loads` of the same answer's bytes;
- whole process: `beststag --json cache get …` on a hit (the fast path: no Typer, pydantic,
  pyairtable or requests), median of several runs, and the same with the human table output;
  baselines, same run: `python -c pass` and `beststag --version` (Typer loaded).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, p50_us, ratio


def _answer(target_bytes: int = 20_000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    i = 0
    while len(json.dumps(out)) < target_bytes:
        out.append(
            {
                "id": f"rec{i:014d}",
                "createdTime": "2026-11-20T12:00:00.000Z",
                "fields": {
                    "Nome": f"Usuária número {i}",
                    "email": f"user{i}@example.com",
                    "status": "Ativo",
                    "plano": "Pro",
                    "tokens": i * 3,
                },
            }
        )
        i += 1
    return out


def _proc_median(args: list[str], env: dict[str, str], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(quick: bool) -> dict[str, Any]:
    from beststag_cli.cache.store import CacheStore

    n = 2000 if quick else 20000
    runs = 5 if quick else 15
    records = _answer()
    entry = {"records": records, "stored": 0.0, "ttl": 300.0, "hash": "x"}
    size = len(json.dumps(records).encode())
    with tempfile.TemporaryDirectory(prefix="bench-hit-") as tmp:
        disk = CacheStore(Path(tmp) / "disk")
        disk.set("k", entry, expire_s=600)
        lru = CacheStore(Path(tmp) / "lru", lru_items=100)
        lru.set("k", entry, expire_s=600)
        disk_us = p50_us(lambda: disk.get("k"), n)
        lru_us = p50_us(lambda: lru.get("k"), n)
        blob = json.dumps(entry).encode()
        json_us = p50_us(lambda: json.loads(blob), n)
        disk.close()
        lru.close()

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
        env["BESTSTAG_DATA_DIR"] = str(Path(tmp) / "var")
        cli = [sys.executable, "-m", "beststag_cli"]
        query = ["cache", "get", "Usuários", "--filter", '{"status": "Ativo"}', "--fields", "Nome,email"]
        for _ in range(2):  # the miss (seeds the sandbox), then the settings snapshot and the alias exist
            subprocess.run([*cli, "--json", *query], env=env, stdout=subprocess.DEVNULL, check=True)
        hit_json = _proc_median([*cli, "--json", *query], env, runs)
        hit_table = _proc_median([*cli, *query], env, runs)
        bare = _proc_median([sys.executable, "-c", "pass"], env, runs)
        version = _proc_median([*cli, "--version"], env, runs)
    return {
        "figures": [
            figure(
                "in-process hit, 20 KB answer, from disk (p50)",
                disk_us,
                "µs",
                baseline="json.loads of it",
                ratio=ratio(disk_us, json_us),
                goal="≤ 100 µs",
                ok=disk_us <= 100,
            ),
            figure(
                "in-process hit, 20 KB answer, from the LRU (p50)",
                lru_us,
                "µs",
                baseline="json.loads of it",
                ratio=ratio(lru_us, json_us),
                goal="≤ 10 µs",
                ok=lru_us <= 10,
            ),
            figure("json.loads of the answer (p50)", json_us, "µs", role="baseline"),
            figure(
                "whole process: beststag --json cache get (hit, median)",
                hit_json,
                "ms",
                baseline="python -c pass",
                ratio=ratio(hit_json, bare),
                goal="≤ 100 ms",
                ok=hit_json <= 100,
            ),
            figure(
                "whole process: beststag cache get, table output (hit, median)",
                hit_table,
                "ms",
                baseline="python -c pass",
                ratio=ratio(hit_table, bare),
            ),
            figure("python -c pass (median)", bare, "ms", role="baseline"),
            figure("beststag --version (Typer loaded, median)", version, "ms", role="baseline"),
        ],
        "setup": {"answer bytes": size, "records in the answer": len(records), "reads": n, "process runs": runs},
    }
