"""The real server on a free loopback port, driven by the spec's four curl examples (host changed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SECRET = "live-secret-abcdefghijklmnop"

TESTE_1 = """curl -X POST {url}/webhook/airtable/cache \\
  -H "Content-Type: application/json" \\
  -d '{{
    "operation": "get",
    "table": "Usuários",
    "filters": {{"status": "Ativo"}},
    "cacheTTL": 300
  }}'"""
TESTE_2 = """curl -X POST {url}/webhook/airtable/cache \\
  -H "Content-Type: application/json" \\
  -d '{{
    "operation": "get",
    "table": "Interações",
    "filters": {{
      "timestamp": {{
        "operator": "date_after",
        "days": -7
      }}
    }},
    "fields": ["user", "message", "timestamp"],
    "sort": [{{"field": "timestamp", "direction": "desc"}}],
    "maxRecords": 50
  }}'"""
TESTE_3 = """curl -X POST {url}/webhook/airtable/backup \\
  -H "Content-Type: application/json" \\
  -d '{{
    "backup_type": "incremental",
    "tables": ["Usuários", "Interações"]
  }}'"""
TESTE_4 = """curl -X POST {url}/webhook/airtable/metrics \\
  -H "Content-Type: application/json" \\
  -d '{{
    "metric_type": "usage",
    "time_range": "24h"
  }}'"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = _free_port()
    env = {**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "var"), "BESTSTAG_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beststag_cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("server did not start: " + (proc.stderr.read() if proc.stderr else ""))
    yield url, env
    proc.terminate()
    proc.wait(timeout=10)


def _curl(template: str, url: str) -> dict:  # type: ignore[type-arg]
    cmd = template.format(url=url).replace("curl -X POST", f'curl -s -H "Authorization: Bearer {SECRET}" -X POST')
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_spec_examples_verbatim(live) -> None:  # type: ignore[no-untyped-def]
    url, env = live
    first = _curl(TESTE_1, url)
    assert first["cache"]["status"] == "miss" and first["records"]  # "Primeira chamada: cache miss"
    second = _curl(TESTE_1, url)
    assert second["cache"]["status"] == "hit" and second["records"] == first["records"]  # "Segunda: cache hit"
    recent = _curl(TESTE_2, url)
    assert 0 < len(recent["records"]) <= 50
    job = _curl(TESTE_3, url)
    assert job["status"] == "running"
    req = urllib.request.Request(url + job["status_url"], headers={"Authorization": f"Bearer {SECRET}"})
    for _ in range(300):
        with urllib.request.urlopen(req, timeout=5) as r:
            st = json.load(r)
        if st["status"] != "running":
            break
        time.sleep(0.1)
    assert st["status"] == "ok", st
    backup_id = st["result"]["id"]
    verify = subprocess.run(
        [sys.executable, "-m", "beststag_cli", "--json", "backup", "verify", backup_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    metrics = _curl(TESTE_4, url)
    usage = metrics["metrics"]["usage"]
    assert metrics["type"] == "usage" and usage
    assert "Usuários" in json.dumps(usage, ensure_ascii=False)


def test_refuses_a_public_address_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BESTSTAG_WEBHOOK_SECRET"}
    env["BESTSTAG_DATA_DIR"] = str(tmp_path / "var")
    out = subprocess.run(
        [sys.executable, "-m", "beststag_cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "without a webhook secret" in out.stderr and "Traceback" not in out.stderr
