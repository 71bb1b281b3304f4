"""What the commands say: reseeds drop cached answers, destructive commands ask first, messages carry
the values, rules, counts and holders an operator needs, and the redactor hides values, not words."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from beststag_cli import clock, logs
from beststag_cli.config import SANDBOX_BASE_ID

ROOT = Path(__file__).resolve().parent.parent.parent
BASE = SANDBOX_BASE_ID


def _run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args],
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
        input=input,
    )


def _flat(text: str) -> str:
    """Output with rich's wrapping at 80 columns undone (piped output is another engineer's point)."""
    return " ".join(text.split())


@pytest.fixture
def seeded(clean_env: Path, _sample_db: Path) -> Path:
    """The data dir with the seeded sample sandbox where a subprocess finds it."""
    (clean_env / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, clean_env / "sandbox" / "base.sqlite")
    return clean_env


def _sandbox_records(data_dir: Path, table: str, **options: Any) -> list[dict[str, Any]]:
    from beststag_cli.sandbox import Sandbox

    sb = Sandbox(data_dir / "sandbox" / "base.sqlite")
    try:
        return sb.api(retry_strategy=None).table(BASE, table).all(**options)
    finally:
        sb.close()


# ---- 1. a reseed or reset drops the base's cached answers


def _comparable(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Id and fields, attachments without their signed URLs (each answer signs them afresh)."""
    fields = {
        k: [{a: b for a, b in x.items() if a not in ("url", "thumbnails")} for x in v]
        if isinstance(v, list) and v and isinstance(v[0], dict) and "url" in v[0]
        else v
        for k, v in record["fields"].items()
    }
    return record["id"], fields


@pytest.mark.parametrize("query", [["--max", "3"], ["--filter", '{"status": "Ativo"}', "--fields", "Nome,status"]])
def test_a_reseed_drops_every_cached_answer_of_the_base(seeded: Path, query: list[str]) -> None:
    first = _run("--json", "cache", "get", "Usuários", *query)
    assert first.returncode == 0, first
    hit = _run("--json", "cache", "get", "Usuários", *query)
    assert json.loads(hit.stdout)["cache"]["status"] == "hit", hit.stdout[:300]  # cached: the next read would be served

    r = _run("sandbox", "seed", "--seed", "7", "--scale", "0.05", "--yes")
    assert r.returncode == 0, r

    after = _run("--json", "cache", "get", "Usuários", *query)
    assert after.returncode == 0, after
    got = json.loads(after.stdout)
    opts: dict[str, Any] = (
        {"max_records": 3} if "--max" in query else {"formula": "{status}='Ativo'", "fields": ["Nome", "status"]}
    )
    truth = _sandbox_records(seeded, "Usuários", **opts)
    assert got["cache"]["status"] != "hit"
    assert [_comparable(x) for x in got["records"]] == [_comparable(x) for x in truth]


def test_a_reset_drops_the_cached_answers_too(seeded: Path) -> None:
    assert _run("--json", "cache", "get", "Usuários", "--max", "2").returncode == 0
    assert _run("sandbox", "reset", "--yes").returncode == 0
    after = _run("--json", "cache", "get", "Usuários", "--max", "2")
    # the base is gone (or seeded afresh on first use): never the answer cached before the reset
    assert after.returncode != 0 or json.loads(after.stdout)["cache"]["status"] != "hit", after


# ---- 2. destructive commands ask on a terminal, need --yes otherwise


def _a_task(data_dir: Path) -> str:
    return _sandbox_records(data_dir, "Tarefas", max_records=1)[0]["id"]


@pytest.mark.parametrize(
    "argv",
    [["sandbox", "seed", "--scale", "0.05"], ["sandbox", "reset"], ["records", "delete", "Tarefas", "--id", "{rid}"]],
)
def test_without_a_terminal_a_destructive_command_needs_yes(seeded: Path, argv: list[str]) -> None:
    rid = _a_task(seeded)
    before = (seeded / "sandbox" / "base.sqlite").stat().st_size
    r = _run(*[a.replace("{rid}", rid) for a in argv], input="y\n")  # stdin is a pipe: not an answer
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --yes" in lines[0], r.stderr
    assert _a_task(seeded) == rid and (seeded / "sandbox" / "base.sqlite").stat().st_size == before


def test_a_first_seed_replaces_nothing_and_asks_nothing(clean_env: Path) -> None:
    r = _run("--json", "sandbox", "seed", "--scale", "0.05")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["tables"]["Usuários"] > 0


def test_records_delete_with_yes_deletes(seeded: Path) -> None:
    rid = _a_task(seeded)
    r = _run("--json", "records", "delete", "Tarefas", "--yes", "--id", rid)
    assert r.returncode == 0 and json.loads(r.stdout)["count"] == 1, r
    assert rid not in {x["id"] for x in _sandbox_records(seeded, "Tarefas")}


def _on_a_terminal(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with stdin and stderr on a pseudo-terminal, answering the question with `answer`."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "beststag_cli", *argv],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=os.environ.copy(),
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal: it has exited
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"[y/N]" in seen:
                os.write(master, answer)
                answered = True
        elif proc.poll() is not None:
            break
    rc = proc.wait(timeout=120)
    os.close(master)
    assert proc.stdout is not None
    proc.stdout.close()
    return rc, seen.decode("utf-8", "replace")


def test_on_a_terminal_records_delete_asks_and_no_keeps_the_record(seeded: Path) -> None:
    rid = _a_task(seeded)
    rc, screen = _on_a_terminal(["records", "delete", "Tarefas", "--id", rid], b"n\n")
    assert rc == 2 and "Delete 1 record(s) from Tarefas?" in screen and "nothing changed" in screen, screen
    assert _a_task(seeded) == rid
    rc, screen = _on_a_terminal(["records", "delete", "Tarefas", "--id", rid], b"y\n")
    assert rc == 0, screen
    assert rid not in {x["id"] for x in _sandbox_records(seeded, "Tarefas")}


# ---- 3. messages


def test_records_update_prints_the_values_it_wrote(cli: Any, sandbox: Any) -> None:
    rid = sandbox.api(retry_strategy=None).table(BASE, "Usuários").first()["id"]
    r = cli(
        "records",
        "update",
        "Usuários",
        "--data",
        json.dumps([{"id": rid, "fields": {"status": "Inativo", "Nome": "Zélia Quintas"}}]),
    )
    assert r.exit_code == 0, r
    out = _flat(r.stdout)
    assert "status: Inativo" in out and "Nome: Zélia Quintas" in out, r.stdout


def test_cache_warm_lists_the_queries_not_keys(cli: Any) -> None:
    r = cli("cache", "warm")
    assert r.exit_code == 0, r
    out = _flat(r.stdout)
    assert not re.search(r"[0-9a-f]{32}", r.stdout), r.stdout  # no sha256 keys
    assert "Usuários" in out and '--filter \'{"status": "Ativo"}\'' in out, r.stdout
    w = cli("--json", "cache", "warm").json()["warmed"]
    queries = {x["table"]: x["query"] for x in w}
    assert queries["Usuários"] == '--filter \'{"status": "Ativo"}\''
    assert "--fields user,message,timestamp" in queries["Interações"]
    assert "--sort -timestamp" in queries["Interações"] and "--max 50" in queries["Interações"]


@pytest.fixture
def keep_one_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    cfg["backup"]["types"]["critical"]["retention"] = {"keep_last": 1, "keep_daily": 2}
    cfg["backup"]["types"]["critical"]["tables"] = ["Usuários"]
    path = tmp_path / "beststag.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
    return path


def test_cleanup_dry_run_says_which_rule_keeps_each_backup(
    cli: Any, keep_one_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rows unwrapped, so each backup's row reads as one line
    clock.set_now(clock.now())
    ids = []
    for _ in range(4):
        r = cli("--json", "backup", "run", "--type", "critical")
        assert r.exit_code == 0, r
        ids.append(r.json()["id"])
        clock.advance(86400)
    r = cli("backup", "cleanup", "--dry-run")
    assert r.exit_code == 0, r
    out = r.stdout
    newest, second, *older = ids[::-1]
    assert re.search(re.escape(newest) + r"\W+keep\W+keep-last, daily, last good backup", out), out
    assert re.search(re.escape(second) + r"\W+keep\W+daily", out), out
    for bid in older:
        assert re.search(re.escape(bid) + r"\W+would remove\W+no keep rule", out), out


def test_restore_plan_and_result_count_the_same_writes(cli: Any, settings: Any, gateway: Any) -> None:
    from beststag_cli.backup.runner import run_backup

    bid = run_backup(settings, gateway, "complete", ["Tarefas"]).manifest.id
    tasks = gateway.all("Tarefas")
    with_files = next(t for t in tasks if t["fields"].get("anexos"))
    other = next(t for t in tasks if t["id"] != with_files["id"])
    gateway.update("Tarefas", [{"id": other["id"], "fields": {"Título": "changed after the backup"}}])
    gateway.delete("Tarefas", [with_files["id"]])

    dry = cli("backup", "restore", bid, "--tables", "Tarefas", "--dry-run")
    assert dry.exit_code == 0, dry
    m = re.search(r"restore would make (\d+ writes? \([^)]*\)) in " + BASE, _flat(dry.stdout))
    assert m, dry.stdout
    planned = m.group(1)
    uploads = len(with_files["fields"]["anexos"])
    assert planned.startswith(f"{2 + uploads} writes (1 create, 1 update, {uploads} upload"), planned

    done = cli("backup", "restore", bid, "--tables", "Tarefas", "--yes")
    assert done.exit_code == 0, done
    assert f"restored: {planned} in {BASE}" in _flat(done.stdout), done.stdout


def test_restore_json_plan_and_result_use_the_same_keys(cli: Any, settings: Any, gateway: Any) -> None:
    from beststag_cli.backup.runner import run_backup

    bid = run_backup(settings, gateway, "complete", ["Tarefas"]).manifest.id
    rid = gateway.all("Tarefas", max_records=1)[0]["id"]
    gateway.update("Tarefas", [{"id": rid, "fields": {"Título": "changed"}}])
    plan = cli("--json", "backup", "restore", bid, "--tables", "Tarefas", "--dry-run").json()
    result = cli("--json", "backup", "restore", bid, "--tables", "Tarefas", "--yes").json()
    assert plan["planned_writes"] == result["writes"] == {"create": 0, "update": 1, "delete": 0, "upload": 0}


@pytest.fixture
def held(request: pytest.FixtureRequest, settings: Any) -> Iterator[list[str]]:
    """Hold one job lock in this process; yields the command that must then exit 75."""
    from beststag_cli.backup.runner import base_lock
    from beststag_cli.metrics.archive import archive_lock

    kind = request.param
    if kind == "backup":
        ctx, argv = base_lock(settings, BASE), ["backup", "run", "--type", "critical"]
    elif kind == "cleanup":
        ctx, argv = base_lock(settings, BASE), ["backup", "cleanup"]
    else:
        ctx, argv = archive_lock(settings), ["metrics", "archive"]
    with ctx:
        yield argv


@pytest.mark.parametrize("held", ["backup", "cleanup", "archive"], indirect=True)
def test_a_lock_error_names_the_holder(seeded: Path, held: list[str]) -> None:
    r = _run(*held)
    assert r.returncode == 75, r
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1, r.stderr
    assert re.search(rf"pid {os.getpid()} on {re.escape(socket.gethostname())}, for \d+ s", line), line


def test_an_unreachable_endpoint_is_one_complete_line(seeded: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    cfg["airtable"]["max_retries"] = 0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    env = os.environ.copy()
    env.pop("BESTSTAG_SANDBOX")
    env.update(
        AIRTABLE_TOKEN="pat" + "UNREACHxx12345" + "." + "cd" * 32,
        AIRTABLE_BASE_ID="appBBBBBBBBBBBBBB",
        AIRTABLE_ENDPOINT_URL="http://127.0.0.1:9",
        BESTSTAG_CONFIG=str(path),
    )
    r = _run("query", "run", "Usuários", "--max", "1", env=env)
    assert r.returncode == 4, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cannot connect to http://127.0.0.1:9 (Connection refused)" in lines[0], lines[0]
    assert "HTTPConnection" not in lines[0] and "object at 0x" not in lines[0]


def test_the_401_hint_says_bearer_token(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BESTSTAG_SANDBOX")
    monkeypatch.setenv("AIRTABLE_TOKEN", "pat" + "WRONGxxx123456" + "." + "ef" * 32)  # the sandbox refuses it
    monkeypatch.setenv("AIRTABLE_BASE_ID", BASE)
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", "http://sandbox.beststag.local")
    r = cli("--json", "query", "run", "Usuários", "--max", "1")
    assert r.exit_code == 4, r
    assert "bearer token" in r.json()["error"]["hint"], r.stdout


def test_a_hint_keeps_the_word_token(seeded: Path) -> None:
    r = _run("serve", "--host", "0.0.0.0")  # no webhook secret: refused, with a hint naming the header
    assert r.returncode == 2, r
    assert "bearer token in the Authorization header" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "send the secret as a bearer token in the Authorization header",
            "send the secret as a bearer token in the Authorization header",
        ),
        ("Authorization: Bearer sandbox", "Authorization: Bearer ***"),
        ("curl -H 'Authorization: Bearer s3cr3t-value'", "curl -H 'Authorization: Bearer ***'"),
        ("Bearer abcd1234efgh went out", "Bearer *** went out"),
        ("redis://:hunter2pass@cache.example:6379/0 is down", "redis://:***@cache.example:6379/0 is down"),
        ("https://user:pw99@proxy.example/ refused", "https://user:***@proxy.example/ refused"),
        ("check the token's scopes", "check the token's scopes"),
        # found by a review: other schemes kept their credential, and a Bearer value without a digit showed
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("Authorization: Token abcdef123456", "Authorization: Token ***"),
        ("X-Api-Key: abcdef12345", "X-Api-Key: ***"),
        ("Bearer abcdefghijklmnop", "Bearer ***"),
        ("Bearer abc123:xyzsecret sent", "Bearer *** sent"),
        ("redis://:p@ss@cache.example:6379/0 is down", "redis://:***@cache.example:6379/0 is down"),
    ],
)
def test_the_redactor_hides_values_not_words(text: str, shown: str) -> None:
    assert logs.Redactor().redact(text) == shown


def test_the_redactor_hides_a_header_value_in_fields() -> None:
    r = logs.Redactor()
    assert r.redact_value({"headers": {"Authorization": "Bearer sandbox"}}) == {
        "headers": {"Authorization": "Bearer ***"}
    }
