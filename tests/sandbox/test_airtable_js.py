"""airtable.js 0.12 (Airtable's official JavaScript client) against the sandbox on a real socket.

Runs tests/js/airtable_client.mjs with node and compares what it saw with pyairtable's view of the same
server. Needs node and `npm install` in tests/js (done here when node_modules is missing; scripts/test does
it too). Skipped only when node is absent, or airtable is not installed and `npm install` fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from pyairtable import Api

from beststag_cli.sandbox import SANDBOX_BASE_ID, Sandbox
from beststag_cli.sandbox.server import serve_in_thread

pytestmark = pytest.mark.node

BASE = SANDBOX_BASE_ID
JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "airtable_client.mjs"
FORMULA = "{status} = 'Ativo'"


def _airtable_installed() -> bool:
    return (JS_DIR / "node_modules" / "airtable" / "package.json").is_file()


@pytest.fixture(scope="module")
def node() -> str:
    """Path of node, with airtable installed under tests/js (npm install when missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (airtable.js check needs node and npm)")
    # scripts/test may be running the same install: one npm at a time, then look again
    with FileLock(str(Path(tempfile.gettempdir()) / "beststag-tests-js-npm.lock"), timeout=300):
        if not _airtable_installed():
            npm = shutil.which("npm")
            if npm is None:
                pytest.skip("tests/js/node_modules/airtable is missing and npm is not installed")
            try:
                proc = subprocess.run(
                    [npm, "install", "--no-audit", "--no-fund"],
                    cwd=JS_DIR,
                    capture_output=True,
                    text=True,
                    timeout=240,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                proc = None
            if not _airtable_installed():
                detail = "timed out" if proc is None else f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"
                pytest.skip(f"`npm install` in tests/js failed ({detail})")
    return node


@pytest.fixture
def endpoint(sandbox: Sandbox, request: pytest.FixtureRequest) -> str:
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    return f"http://127.0.0.1:{server.server_address[1]}"


def run_client(node: str, endpoint: str) -> dict[str, Any]:
    env = {**os.environ, "AIRTABLE_ENDPOINT_URL": endpoint, "AIRTABLE_API_KEY": "sandbox", "BASE_ID": BASE}
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):  # node-fetch ignores them anyway
        env.pop(proxy, None)
    proc = subprocess.run(
        [node, str(SCRIPT)], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"airtable_client.mjs failed (exit {proc.returncode}):\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_airtable_js_against_sandbox_serve(node: str, endpoint: str, sandbox: Sandbox) -> None:
    seen: list[tuple[str, str, int]] = []
    sandbox.app.observers.append(lambda m, r, s: seen.append((m, r, s)))
    tasks_before = sandbox.store.count(BASE, "Tarefas")

    out = run_client(node, endpoint)

    # reads: the same records as pyairtable gets from the same server for the same query
    api = Api("sandbox", endpoint_url=endpoint, retry_strategy=None, timeout=(5, 20))
    expected = api.table(BASE, "Usuários").all(formula=FORMULA, sort=["Nome"], fields=["Nome", "status"], page_size=10)
    assert len(expected) > 10
    assert out["filtered"] == [{"id": r["id"], "fields": r["fields"]} for r in expected]
    names = [r["fields"]["Nome"] for r in out["filtered"]]
    assert names == sorted(names, key=str.casefold)
    assert all(r["fields"]["status"] == "Ativo" and set(r["fields"]) <= {"Nome", "status"} for r in out["filtered"])
    n = len(expected)
    assert out["eachPage"]["pages"] == math.ceil(n / 10)
    assert out["eachPage"]["pageSizes"] == [10] * (n // 10) + ([n % 10] if n % 10 else [])
    assert out["eachPage"]["ids"] == [r["id"] for r in expected]
    assert out["firstPage"] == [r["id"] for r in expected[:10]]

    # writes: create 2, PATCH one, PUT the other, batch PATCH, find, delete both
    a, b = out["created"]
    assert a["fields"]["Título"] == "airtable.js: tarefa A" and a["fields"]["prioridade"] == "Alta"
    assert a["fields"]["estimativa (h)"] == 2 and a["fields"]["status"] == "A fazer"
    assert b["fields"]["descrição"] == "criada pelo cliente oficial"
    assert out["updated"]["id"] == a["id"]
    assert out["updated"]["fields"]["status"] == "Em andamento" and out["updated"]["fields"]["estimativa (h)"] == 3.5
    assert out["updated"]["fields"]["prioridade"] == "Alta"  # PATCH keeps what it was not given
    assert out["replaced"]["id"] == b["id"]
    assert out["replaced"]["fields"]["Título"] == "airtable.js: tarefa B substituída"
    assert not {"descrição", "status"} & set(out["replaced"]["fields"])  # PUT clears what it was not given
    assert out["batchUpdated"][0]["fields"]["prioridade"] == "Urgente"
    assert out["found"] == out["batchUpdated"][0]
    assert out["deleted"] == [a["id"], b["id"]]
    assert sandbox.store.count(BASE, "Tarefas") == tasks_before
    assert out["findDeleted"]["statusCode"] == 404 and out["findDeleted"]["error"] == "NOT_FOUND"

    # errors: airtable.js keeps the server's type on 422, relabels 404 with its own (same word here)
    bad = out["errors"]["badFormula"]
    assert bad["statusCode"] == 422 and bad["error"] == "INVALID_FILTER_BY_FORMULA"
    assert bad["message"].startswith("The formula for filtering records is invalid")
    missing = out["errors"]["unknownRecord"]
    assert missing["statusCode"] == 404 and missing["error"] == "NOT_FOUND"

    # every route airtable.js used, as the server saw it (the trailing-slash POST/PATCH included)
    routes = {(m, r, s) for m, r, s in seen}
    for call in [
        ("GET", "list", 200),
        ("POST", "create", 200),
        ("PATCH", "update", 200),
        ("PUT", "update", 200),
        ("GET", "get", 200),
        ("DELETE", "delete", 200),
        ("GET", "list", 422),
        ("GET", "get", 404),
    ]:
        assert call in routes
