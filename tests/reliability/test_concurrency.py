"""Concurrency: a backup, the webhook server under load and cron cache prunes at once, on one data dir,
against a `sandbox serve --rate-limit` on loopback (Airtable's 5 req/s and 30 s penalty): no lock errors
surface, no request is rate-limited, nothing is lost."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import BASE, BESTSTAG, run_cli, sandbox_env, seeded_data_dir

pytestmark = pytest.mark.slow
SECRET = "concurrency-secret-0123456789"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as e:
            if getattr(e, "code", None):  # an HTTP answer: it is up
                return
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def _post(url: str, body: dict) -> tuple[int, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_backup_webhook_load_and_prune_at_once(_sample_db: Path, tmp_path: Path) -> None:
    upstream_dir = seeded_data_dir(_sample_db, tmp_path / "upstream")
    data = tmp_path / "data"
    sport, wport = _port(), _port()
    sb_env = sandbox_env(upstream_dir)
    sb_env.pop("BESTSTAG_SANDBOX_FAULTS")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sandbox = subprocess.Popen(
            [*BESTSTAG, "sandbox", "serve", "--port", str(sport), "--rate-limit"],
            env=sb_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(sandbox)
        _wait_http(f"http://127.0.0.1:{sport}/_sandbox/stats", sandbox)
        env = sandbox_env(
            data,
            AIRTABLE_TOKEN="sandbox",
            AIRTABLE_BASE_ID=BASE,
            AIRTABLE_ENDPOINT_URL=f"http://127.0.0.1:{sport}",
            BESTSTAG_WEBHOOK_SECRET=SECRET,
        )
        env.pop("BESTSTAG_SANDBOX_FAULTS")
        server = subprocess.Popen(
            [*BESTSTAG, "serve", "--port", str(wport)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append(server)
        _wait_http(f"http://127.0.0.1:{wport}/healthz", server)
        backup = subprocess.Popen(
            [*BESTSTAG, "--json", "-v", "backup", "run", "--type", "critical"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{wport}/webhook/airtable/cache"
        bodies = [
            {"operation": "get", "table": t, "filters": f, "maxRecords": 20}
            for t, f in (
                ("Usuários", {"status": "Ativo"}),
                ("Usuários", {"plano": "Pro"}),
                ("Tarefas", {"prioridade": "Alta"}),
                ("Eventos", None),
            )
        ]
        prunes: list[subprocess.CompletedProcess[str]] = []
        answers: list[tuple[int, str]] = []
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(_post, url, {k: v for k, v in bodies[i % len(bodies)].items() if v is not None})
                for i in range(200)
            ]
            while backup.poll() is None or len(prunes) < 3:
                prunes.append(run_cli(env, "--quiet", "cache", "prune"))
                if len(prunes) % 3 == 0:
                    answers.append(_post(url, {"operation": "invalidate", "table": "Usuários"}))
            answers += [f.result() for f in futures]
        out, err = backup.communicate(timeout=120)
        assert backup.returncode == 0, out + err
        for p in prunes:
            assert p.returncode == 0, p.stderr
            assert "lock" not in (p.stdout + p.stderr).lower()
        statuses = [s for s, _ in answers]
        assert set(statuses) == {200}, [a for a in answers if a[0] != 200][:3]
        assert all("lock" not in t.lower() for _, t in answers if '"error"' in t)
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{sport}/_sandbox/stats").read())
        assert stats["rate_limited"] == 0, stats
        verify = run_cli(env, "--json", "backup", "verify", "--all")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        done = json.loads(out)
        counts = {t: info["records"] for t, info in done["tables"].items()}
        from beststag_cli.sandbox import Sandbox

        sb = Sandbox(upstream_dir / "sandbox" / "base.sqlite")
        assert counts == {t: sb.store.count(BASE, t) for t in counts}  # nothing lost
        sb.close()
        print(
            f"\nconcurrency: {len(answers)} webhook answers (all 200), {len(prunes)} prunes, "
            f"{stats['requests']} upstream requests, {stats['rate_limited']} rate-limited"
        )
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
