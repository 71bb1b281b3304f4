"""A real `beststag serve` process in front of a served sandbox (`sandbox serve` plays Airtable), for the
feed's live tests (the ping's and the poll loop's): start-up, the HTTP helpers, the stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
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

from beststag_cli.sandbox.sample import SAMPLE_BASE_ID
from tests.served import serve_sandbox

ROOT = Path(__file__).resolve().parents[2]
SECRET = "feed-live-secret-abcdefghijkl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def until(what: str, cond: Any, seconds: float = 60.0) -> None:
    """Wait for a condition another process brings about (not a timing assertion: the bound is generous)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


@contextlib.contextmanager
def live_serve(tmp_path: Path, **feed: Any) -> Iterator[dict[str, Any]]:
    """`beststag serve` (its stderr in `<tmp>/serve.err`) with the repo's config and `feed` overrides;
    `feed.notification_url` may name `{port}`, serve's own port. Terminated on exit if still running."""
    sb_env = {**os.environ, "BESTSTAG_DATA_DIR": str(tmp_path / "airtable"), "BESTSTAG_SANDBOX": "1"}
    with serve_sandbox(sb_env) as airtable:
        port = free_port()
        cfg = yaml.safe_load((ROOT / "config" / "beststag.yaml").read_text(encoding="utf-8"))
        for k, v in feed.items():
            cfg["feed"][k] = v.format(port=port) if isinstance(v, str) else v
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
        err = tmp_path / "serve.err"
        with err.open("w", encoding="utf-8") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "beststag_cli", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err_file,
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
            until("beststag serve to start", up)
            assert proc.poll() is None, err.read_text(encoding="utf-8")
            yield {"url": url, "env": env, "airtable": airtable, "proc": proc, "data": tmp_path / "var", "err": err}
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def cached_titles(url: str) -> list[str]:
    body = json.dumps({"operation": "get", "table": "Tarefas", "fields": ["Título"]}).encode()
    status, raw = post(url + "/webhook/airtable/cache", body, {"Authorization": f"Bearer {SECRET}"})
    assert status == 200, raw
    return [r["fields"].get("Título", "") for r in json.loads(raw)["records"]]


def cursor(env: dict[str, str]) -> int:
    r = cli(env, "--json", "feed", "status")
    return int(json.loads(r.stdout)["cursor"] or 0)
