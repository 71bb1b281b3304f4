"""Restore must be trustworthy under faults: files uploaded once, corrupt blobs refused, lost answers reconciled.

Issue 15, defects 2, 3, 17 and restore's share of 15/16. Each test drives the real sandbox and pyairtable on
a half-size copy of the sample base (50 users, 150 tasks, some with files, 100 events), so a whole restore
takes seconds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import errors
from beststag_cli.backup.layout import iter_records
from beststag_cli.backup.restore import execute_restore, known_mappings, plan_restore, restore_lock
from beststag_cli.backup.runner import run_backup
from beststag_cli.sandbox import FaultConfig

from .conftest import assert_same_state, empty_target, snapshot

TARGET = "appRestoreTrust01"
TABLES = ["Usuários", "Tarefas", "Eventos"]  # links (Tarefas, Eventos → Usuários) and files (Tarefas.anexos)


@pytest.fixture
def sandbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A small sample base (overrides the session's full-size copy for this module)."""
    from beststag_cli.sandbox import Sandbox

    path = tmp_path / "sandbox" / "base.sqlite"
    path.parent.mkdir(parents=True)
    sb = Sandbox(path)
    sb.ensure_sample(seed=42, scale=0.5)
    yield sb
    sb.close()


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every Gateway records its backoff waits instead of sleeping them (faults make many)."""
    from beststag_cli.gateway import api as gw

    waits: list[float] = []
    real_init = gw.Gateway.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        self.sleep = waits.append

    monkeypatch.setattr(gw.Gateway, "__init__", init)
    return waits


class Routes:
    """What the sandbox answered, per (route, status); status 0 is a dropped connection."""

    def __init__(self, sandbox: Any) -> None:
        self.seen: Counter[tuple[str, int]] = Counter()
        sandbox.app.observers.append(lambda method, route, status: self.seen.update([(route, status)]))

    def count(self, route: str, status: int | None = None) -> int:
        return sum(n for (r, s), n in self.seen.items() if r == route and (status is None or s == status))


def _files(snap: dict[str, dict[str, dict[str, Any]]]) -> int:
    return sum(
        len(v)
        for recs in snap.values()
        for r in recs.values()
        for k, v in r["fields"].items()
        if r["types"][k] == "multipleAttachments"
    )


def _fingerprint(snap: dict[str, dict[str, dict[str, Any]]], id_map: dict[str, str]) -> dict[str, Counter[str]]:
    """table → multiset of sha256(field values, links through id_map): every record exactly once."""
    import json

    out: dict[str, Counter[str]] = {}
    for table, recs in snap.items():
        c: Counter[str] = Counter()
        for rec in recs.values():
            fields = {
                k: (sorted(id_map.get(x, x) for x in v) if rec["types"][k] == "multipleRecordLinks" else v)
                for k, v in rec["fields"].items()
                if rec["targets"].get(k, table) in snap
            }
            c[hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()] += 1
        out[table] = c
    return out


def _exact(before: dict[str, Any], target_gw: Any, journal: Any, tables: list[str]) -> None:
    """The target holds every backed-up record once: counts, field hashes, links remapped, files by sha256."""
    id_map = known_mappings(journal, TARGET)
    after = snapshot(target_gw, tables)
    assert {t: len(after[t]) for t in tables} == {t: len(before[t]) for t in tables}
    assert_same_state(before, after, id_map)
    forward = _fingerprint(before, id_map)
    assert _fingerprint(after, {}) == forward


# ---------------------------------------------------------------------------------------------- defect 1


def test_a_restore_into_a_locked_base_exits_75_naming_the_holder_before_reading_anything(
    cli, settings, gateway, sandbox
) -> None:
    import os
    import threading

    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Usuários")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    empty_target(sandbox, gateway, TARGET)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another restore into TARGET (a thread of this process: its own lock descriptor)
        with restore_lock(settings, TARGET):
            held.set()
            release.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(120)
        routes = Routes(sandbox)
        r = cli("--json", "backup", "restore", backup_id, "--tables", "Usuários", "--base", TARGET, "--yes")
        waited = cli(
            "--json", "backup", "restore", backup_id, "--tables", "Usuários", "--base", TARGET, "--yes", "--wait", "0.3"
        )
    finally:
        release.set()
        holder.join(120)

    assert r.exit_code == 75, r
    err = r.json()["error"]
    assert err["type"] == "lock_held"
    assert TARGET in err["message"] and f"pid {os.getpid()}" in err["message"] and "\n" not in err["message"]
    assert waited.exit_code == 75, waited  # --wait is bounded
    assert "waited 0.3 s" in waited.json()["error"]["message"]
    assert sum(routes.seen.values()) == 0  # the lock comes first: neither the target nor the schema was read
    r = cli("--json", "backup", "restore", backup_id, "--tables", "Usuários", "--base", TARGET, "--yes")
    assert r.exit_code == 0, r  # the lock was released with its holder
    assert sandbox.store.count(TARGET, "Usuários") == sandbox.store.count("appBestStagSandbx", "Usuários")


# ---------------------------------------------------------------------------------------------- defect 2


def test_a_resumed_restore_uploads_each_file_exactly_once(no_waits, settings, gateway, sandbox) -> None:
    tables = ["Usuários", "Tarefas"]
    before = snapshot(gateway, tables)
    backup = run_backup(settings, gateway, "complete", tables)
    target = empty_target(sandbox, gateway, TARGET)
    files = _files(before)
    assert files > 5
    # first run: every create succeeds, every upload fails (500)
    sandbox.app.set_faults(FaultConfig(rate_500=1.0, routes=("upload",)))
    with pytest.raises(errors.BestStagError):
        execute_restore(
            settings, gateway, plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=tables)
        )
    sandbox.app.set_faults(FaultConfig())
    assert sandbox.store.count(TARGET, "Usuários") == len(before["Usuários"])
    routes = Routes(sandbox)

    again = plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=tables)
    assert again.resumed
    result = execute_restore(settings, gateway, again)

    assert result.status == "ok"
    assert routes.count("upload") == files  # each planned file uploaded once, none twice
    _exact(before, target, gateway.journal, tables)  # every record holds each file once, same bytes


# ---------------------------------------------------------------------------------------------- defect 3


def test_a_corrupt_blob_stops_the_restore_before_anything_is_written(cli, settings, gateway, sandbox) -> None:
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Usuários,Tarefas")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    empty_target(sandbox, gateway, TARGET)
    tarefas = next(t for t in gateway.schema()["tables"] if t["name"] == "Tarefas")["id"]
    records = iter_records(next((settings.paths.backups / "complete").glob(f"*/tables/*{tarefas}.jsonl.*")))
    shas = sorted({a["sha256"] for rec in records for a in rec["fields"].get("anexos") or []})
    victim = settings.paths.backups / "attachments" / shas[len(shas) // 2][:2] / shas[len(shas) // 2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    victim.write_bytes(bytes(data))
    routes = Routes(sandbox)

    r = cli("--json", "backup", "restore", backup_id, "--tables", "Usuários,Tarefas", "--base", TARGET, "--yes")

    assert r.exit_code == 1, r
    assert "Traceback" not in r.stdout + r.stderr
    err = r.json()["error"]
    assert err["type"] == "backup_broken"
    assert victim.name in err["message"] and "Tarefas" in err["message"] and "anexos" in err["message"]
    assert "\n" not in err["message"]
    assert "beststag backup verify" in err["hint"]
    assert sandbox.store.count(TARGET, "Tarefas") == sandbox.store.count(TARGET, "Usuários") == 0
    assert routes.count("create") == routes.count("update") == routes.count("upload") == 0  # nothing written


# ---------------------------------------------------------------------------------------------- defect 17


@pytest.mark.parametrize("seed", [15, 16, 17])
def test_one_run_restores_everything_exactly_once_under_twenty_percent_faults(
    no_waits, settings, gateway, sandbox, seed: int
) -> None:
    before = snapshot(gateway, TABLES)
    backup = run_backup(settings, gateway, "complete", TABLES)
    assert backup.status == "ok"
    target = empty_target(sandbox, gateway, TARGET)
    routes = Routes(sandbox)
    sandbox.app.set_faults(
        FaultConfig(seed=seed, rate_500=0.05, rate_503=0.04, rate_429=0.03, rate_drop=0.04, rate_drop_after=0.04)
    )  # 20% of every request

    result = execute_restore(
        settings, gateway, plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=TABLES)
    )

    sandbox.app.set_faults(FaultConfig())
    assert result.status == "ok"
    injected = sum(n for (_, s), n in routes.seen.items() if s in (0, 429, 500, 503))
    assert injected >= 10, routes.seen  # the faults did land (seeded: the same ones every run)
    assert any(r == "create" and s in (0, 500) for r, s in routes.seen)  # lost create answers among them
    _exact(before, target, gateway.journal, TABLES)


def test_a_create_whose_answer_was_dropped_after_the_write_is_not_sent_again(
    no_waits, settings, gateway, sandbox
) -> None:
    before = snapshot(gateway, ["Usuários"])
    backup = run_backup(settings, gateway, "complete", ["Usuários"])
    target = empty_target(sandbox, gateway, TARGET)
    drops: list[str] = []

    def one_drop(method: str, route: str, status: int) -> None:
        if route == "create" and status == 0 and not drops:
            drops.append(route)
            sandbox.app.set_faults(FaultConfig())

    sandbox.app.observers.append(one_drop)
    sandbox.app.set_faults(FaultConfig(rate_drop_after=1.0, routes=("create",)))  # applied, then the answer lost

    result = execute_restore(
        settings, gateway, plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=["Usuários"])
    )

    assert drops == ["create"]
    assert result.status == "ok"
    assert sandbox.store.count(TARGET, "Usuários") == len(before["Usuários"])
    _exact(before, target, gateway.journal, ["Usuários"])


# ---------------------------------------------------------------------------------------------- defect 15


def test_a_full_journal_stops_the_restore_with_disk_full_and_a_rerun_completes(settings, gateway, sandbox) -> None:
    before = snapshot(gateway, ["Usuários", "Tarefas"])
    backup = run_backup(settings, gateway, "complete", ["Usuários", "Tarefas"])
    target = empty_target(sandbox, gateway, TARGET)
    plan = plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=["Usuários", "Tarefas"])
    conn = gateway.journal.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL, as on a full disk

    with pytest.raises(errors.DiskFull) as exc:
        execute_restore(settings, gateway, plan)

    assert str(settings.paths.journal) in exc.value.message and "free" in exc.value.message
    assert exc.value.exit_code == 1
    conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    result = execute_restore(
        settings,
        gateway,
        plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=["Usuários", "Tarefas"]),
    )
    assert result.status == "ok"
    _exact(before, target, gateway.journal, ["Usuários", "Tarefas"])


# ---------------------------------------------------------------------------------------------- round 2: A

_SERVE_WITH_CREATE_DROPS = """
import sys
from beststag_cli.sandbox import FaultConfig, Sandbox
from beststag_cli.sandbox.seed import load_sample
from beststag_cli.sandbox.server import make_server

sb = Sandbox(sys.argv[1])
sb.ensure_sample(seed=42, scale=0.5)
load_sample(sb.store, base_id=sys.argv[2], with_records=False, seed=7)
sb.app.set_faults(FaultConfig(rate_drop_after=1.0, routes=("create",), seed=3))  # written, then the answer lost
server = make_server(sb.app, "127.0.0.1", 0)
print(f"serving http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever(poll_interval=0.05)
"""


@pytest.fixture
def served_with_create_drops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A sandbox in its own process (Airtable's clock is that process's real clock, not this one's) whose
    every create is applied and then its answer dropped; TARGET is an empty base with the sample schema."""
    import os
    import subprocess
    import sys

    db = tmp_path / "server" / "base.sqlite"
    db.parent.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    env["BESTSTAG_DATA_DIR"] = str(tmp_path / "server")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_WITH_CREATE_DROPS, str(db), TARGET],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("serving http://"), line + (proc.stderr.read() if proc.stderr else "")
        monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", line.split()[1])
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _people(gw: Any) -> Counter[tuple[Any, Any]]:
    return Counter((r["fields"].get("Nome"), r["fields"].get("email")) for r in gw.all("Usuários"))


@pytest.mark.parametrize("ahead_s", [86400, 300], ids=["a-day-ahead", "five-minutes-ahead"])
def test_a_host_clock_ahead_of_airtable_does_not_duplicate_creates_whose_answer_was_lost(
    served_with_create_drops, no_waits, monkeypatch: pytest.MonkeyPatch, ahead_s: int
) -> None:
    from datetime import UTC, datetime, timedelta

    from beststag_cli.backup.restore import gateway_for_base
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway

    monkeypatch.setenv("BESTSTAG_FAKE_NOW", (datetime.now(UTC) + timedelta(seconds=ahead_s)).isoformat())
    settings = load_config()
    gateway = Gateway(settings, source="test")
    try:
        source = _people(gateway)
        assert sum(source.values()) > 20
        backup = run_backup(settings, gateway, "complete", ["Usuários"])
        assert backup.status == "ok"

        result = execute_restore(
            settings,
            gateway,
            plan_restore(settings, gateway, backup.manifest.id, target_base=TARGET, tables=["Usuários"]),
        )

        assert result.status == "ok"
        assert _people(gateway_for_base(gateway, TARGET)) == source  # every record exactly once
        assert set(known_mappings(gateway.journal, TARGET)) == {r["id"] for r in gateway.all("Usuários")}
    finally:
        gateway.close()


# ---------------------------------------------------------------------------------------------- round 2: B


@pytest.mark.parametrize("planted", ["symlink", "folder"])
def test_a_symlink_or_folder_at_the_restore_lock_path_is_refused_in_one_line_exit_2(
    cli, settings, planted: str, tmp_path: Path
) -> None:
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Usuários")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    settings.paths.locks.mkdir(parents=True, exist_ok=True)
    lock = settings.paths.locks / f"restore-{TARGET}.lock"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    if planted == "symlink":
        lock.symlink_to(victim)
    else:
        lock.mkdir()

    r = cli("--json", "backup", "restore", backup_id, "--tables", "Usuários", "--base", TARGET, "--yes")

    assert r.exit_code == 2, r
    err = r.json()["error"]
    assert err["type"] == "unsafe_path", err
    assert str(lock) in err["message"] and "\n" not in err["message"]
    assert "Traceback" not in r.stdout + r.stderr and "internal_error" not in r.stdout + r.stderr
    assert victim.read_text() == "keep me"  # the link's target is not truncated
    assert lock.is_symlink() if planted == "symlink" else lock.is_dir()  # nothing removed behind the user's back
