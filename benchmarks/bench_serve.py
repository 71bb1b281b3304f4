"""Webhook server: cache-hit latency over loopback from a separate load process, next to misses.

Setup: `beststag serve` in a subprocess (its own data dir, the in-process sandbox), one uvicorn
worker. This process is the load generator: keep-alive HTTP/1.1 connections (http.client), one
request at a time (latency, not throughput). Measured:

- hit: the spec's Teste 1 body (`{"operation": "get", "table": "Usuários", "filters": {"status":
  "Ativo"}, "cacheTTL": 300}`) after one warming call;
- miss (the baseline, same run, same server): the same body with `"refresh": true`, which makes the
  server fetch from the sandbox (Airtable's in-process stand-in, no network latency) every time;
- healthz-free floor: `GET /openapi.json`-less `POST` of an invalid body (422), the framework's own
  cost of a request that does no cache work.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

SECRET = "bench-secret-0123456789abcdef"
BODY = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}, "cacheTTL": 300}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def _timed_posts(port: int, body: dict[str, Any], n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/webhook/airtable/cache", body=payload, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status >= 500:
            raise RuntimeError(f"server answered {resp.status}")
    conn.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    n_hit = 300 if quick else 3000
    n_miss = 30 if quick else 200
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        port = _free_port()
        env = {**os.environ, "BESTSTAG_DATA_DIR": str(Path(tmp) / "var"), "BESTSTAG_WEBHOOK_SECRET": SECRET}
        for k in ("AIRTABLE_TOKEN", "AIRTABLE_API_KEY", "AIRTABLE_ENDPOINT_URL", "BESTSTAG_SANDBOX_FAULTS"):
            env.pop(k, None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "beststag_cli", "--quiet", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.time() + 60
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError("server did not start: " + (proc.stderr.read() if proc.stderr else ""))
                time.sleep(0.1)
            _timed_posts(port, BODY, 20)  # warm: the miss, imports, LRU
            hits = _timed_posts(port, BODY, n_hit)
            misses = _timed_posts(port, {**BODY, "refresh": True}, n_miss)
            floor = _timed_posts(port, {"operation": "nope", "table": "Usuários"}, n_hit // 3)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    hp50, hp99 = statistics.median(hits), _percentile(hits, 99)
    mp50, mp99 = statistics.median(misses), _percentile(misses, 99)
    fp50 = statistics.median(floor)
    return {
        "figures": [
            figure("cache hit p50", hp50, "ms", baseline="miss p50", ratio=ratio(hp50, mp50)),
            figure(
                "cache hit p99",
                hp99,
                "ms",
                baseline="miss p99",
                ratio=ratio(hp99, mp99),
                goal="p99 < 5 ms",
                ok=hp99 < 5.0,
            ),
            figure("cache miss p50 (refresh from the sandbox)", mp50, "ms", role="baseline"),
            figure("cache miss p99", mp99, "ms", role="baseline"),
            figure(
                "422 answer p50 (framework floor)",
                fp50,
                "ms",
                role="baseline",
                note="a request that does no cache work",
            ),
        ],
        "setup": {
            "hit requests": n_hit,
            "miss requests": n_miss,
            "records per answer": 66,
            "server": "beststag serve, 1 uvicorn worker, in-process sandbox",
        },
        "notes": ["latency measured from a separate process over loopback, keep-alive, one request at a time"],
    }
