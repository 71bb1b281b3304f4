"""A real ping over loopback (issue 19's "done when"): `sandbox serve` plays Airtable, `beststag serve`
receives its signed ping at /webhook/airtable/notify, checks the MAC and pulls; a wrong MAC is 401 and logged.

Proof by end state: an answer `beststag serve` cached before an outside write holds the written record
afterwards, with no TTL passed (only the ping-triggered pull can have told it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyairtable import Api

from beststag_cli.sandbox.sample import SAMPLE_BASE_ID
from tests.served import serve_sandbox

ROOT = Path(__file__).resolve().parents[2]
SECRET = "feed-live-secret-abcdefghijkl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _until(what: str, cond: Any, seconds: float = 60.0) -> None:
    """Wait for a condition another process brings about (not a timing assertion: the bound is generous)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    sb_env = {**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "airtable"), "BESTSTAG_SANDBOX": "1"}
    with serve_sandbox(sb_env) as airtable:
        port = _free_port()
        cfg = yaml.safe_load((ROOT / "config" / "beststag.yaml").read_text(encoding="utf-8"))
        cfg["feed"]["notification_url"] = f"http://127.0.0.1:{port}/webhook/airtable/notify"
        conf = tmp_path / "beststag.yaml"
        conf.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_SANDBOX"))} | {
            "BESTSTAG_CONFIG": str(conf),
            "BESTSTAG_DATA_DIR": str(tmp_path / "var"),
            "BESTSTAG_WEBHOOK_SECRET": SECRET,
            "AIRTABLE_TOKEN": "sandbox",
            "AIRTABLE_BASE_ID": SAMPLE_BASE_ID,
            "AIRTABLE_ENDPOINT_URL": airtable,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "beststag_cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return proc.poll() is not None  # died: fail below with its stderr

        try:
            _until("beststag serve to start", up)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            yield {"url": url, "env": env, "airtable": airtable, "proc": proc, "data": tmp_path / "var"}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _cached_titles(url: str) -> list[str]:
    body = json.dumps({"operation": "get", "table": "Tarefas", "fields": ["Título"]}).encode()
    status, raw = _post(url + "/webhook/airtable/cache", body, {"Authorization": f"Bearer {SECRET}"})
    assert status == 200, raw
    return [r["fields"].get("Título", "") for r in json.loads(raw)["records"]]


def _cursor(env: dict[str, str]) -> int:
    r = _cli(env, "--json", "feed", "status")
    return int(json.loads(r.stdout)["cursor"] or 0)


def test_a_signed_ping_makes_serve_pull_and_a_wrong_mac_is_refused(live: dict[str, Any]) -> None:
    url, env = live["url"], live["env"]
    on = _cli(env, "--json", "feed", "enable")
    assert on.returncode == 0, on.stderr
    assert "macSecret" not in on.stdout and json.loads(on.stdout)["enabled"]
    before = _cached_titles(url)  # cached now (TTL 300 s)
    assert "escrito por fora" not in before
    start = _cursor(env)
    Api("sandbox", endpoint_url=live["airtable"]).table(SAMPLE_BASE_ID, "Tarefas").create(
        {"Título": "escrito por fora"}
    )
    _until("the ping-triggered pull to store its cursor", lambda: _cursor(env) > start)
    after = _cached_titles(url)
    assert "escrito por fora" in after and len(after) == len(before) + 1
    # a forged ping: right ids, wrong MAC
    ping = json.dumps({"base": {"id": SAMPLE_BASE_ID}, "webhook": {"id": json.loads(on.stdout)["webhook_id"]}}).encode()
    status, raw = _post(url + "/webhook/airtable/notify", ping, {"X-Airtable-Content-MAC": "hmac-sha256=" + "0" * 64})
    assert status == 401, raw
    log = (live["data"] / "logs" / "beststag.jsonl").read_text(encoding="utf-8")
    assert "feed.bad_ping" in log
