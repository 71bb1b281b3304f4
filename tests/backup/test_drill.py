"""`backup drill`: a backup restored into a scratch sandbox base, compared, recorded, removed (issue 20).

Every drill here is the real one: the sample base backed up through the gateway, the backup verified,
its schema.json built into a sandbox database of the drill's own, restored by `backup/restore.py`,
read back and compared. Damage is real damage to the files on disk; differences are real edits of
the restored base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.backup import drill as drill_mod
from beststag_cli.backup.drill import (
    DRILLS_DIR,
    compare_restored,
    drill_base,
    resolve_drill_backup,
    restore_into,
    run_drill,
    schema_requests,
)
from beststag_cli.backup.layout import BlobStore, find_backup, iter_records
from beststag_cli.backup.runner import run_backup
from beststag_cli.errors import BackupBroken, BadInput, DrillFailed, NotFound

H = 3600.0


def _drills_left(settings: Any) -> list[str]:
    root = settings.paths.data_dir / DRILLS_DIR
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


#: a complete backup of two tables keeps the tests fast: links both ways, attachments in both (the
#: first test drills the whole sample base)
SMALL = ["Usuários", "Tarefas"]


def _complete(settings: Any, gateway: Any, tables: list[str] | None = SMALL) -> Any:
    result = run_backup(settings, gateway, "complete", tables)
    assert result.status == "ok"
    return result.manifest


def test_a_drill_passes_on_a_good_complete_backup(settings, gateway, sandbox):
    m = _complete(settings, gateway, None)
    bases_before = sandbox.store.base_ids()
    served = sandbox.app.stats.requests

    result = run_drill(settings, gateway.journal, m.id)

    assert result.passed, result.problem
    assert result.failure() is None
    # every record and every attachment of the backup was compared in the restored base
    assert result.records == sum(t.records for t in m.tables.values())
    assert result.tables["Usuários"]["records"] == sandbox.store.count("appBestStagSandbx", "Usuários")
    assert result.attachments == m.attachments_count > 0
    assert result.links > 0
    # what a real restore needs: the creates (10 a request), the uploads, the reads, the schema
    creates = sum(-(-t.records // 10) for t in m.tables.values())
    assert result.requests_by_route["create"] == creates
    assert result.requests_by_route["upload"] == m.attachments_count
    assert result.restore_requests == sum(result.requests_by_route.values())
    assert result.schema_requests == schema_requests(
        json.loads((find_backup(settings.paths.backups, m.id).path / "schema.json").read_text())
    )
    assert result.estimate_s == pytest.approx(result.requests / 5)
    # nothing reached the operator's sandbox, nor the operator's journal's restores; the drill base is gone
    assert sandbox.app.stats.requests == served
    assert sandbox.store.base_ids() == bases_before
    assert gateway.journal.query("SELECT count(*) AS n FROM restore_runs")[0]["n"] == 0
    assert _drills_left(settings) == []
    rows = gateway.journal.drills()
    assert len(rows) == 1
    row = rows[0]
    assert (row["id"], row["backup_id"], row["backup_type"], row["status"]) == (result.id, m.id, "complete", "passed")
    assert (row["records"], row["attachments"], row["requests"]) == (
        result.records,
        result.attachments,
        result.restore_requests,
    )
    assert row["schema_requests"] == result.schema_requests and row["problem"] is None
    assert row["estimate_s"] == pytest.approx(result.estimate_s) and row["finished"] is not None


def test_a_drill_passes_on_a_complete_and_incremental_chain(settings, gateway, sandbox):
    clock.set_now(clock.now())
    complete = _complete(settings, gateway)
    clock.advance(H)
    users = gateway.all("Usuários")
    tasks = gateway.all("Tarefas")
    gateway.update("Usuários", [{"id": u["id"], "fields": {"plano": "Pro", "tags": ["vip"]}} for u in users[:5]])
    gateway.delete("Tarefas", [t["id"] for t in tasks[:3]])
    gateway.create("Tarefas", [{"Título": f"nova {i}", "responsável": [users[i]["id"]]} for i in range(4)])
    clock.advance(H)
    inc = run_backup(settings, gateway, "incremental", SMALL)
    assert inc.manifest.parent == complete.id
    assert inc.manifest.tables["Tarefas"].mode == "incremental"

    result = run_drill(settings, gateway.journal, "latest", backup_type="incremental")

    assert result.backup_id == inc.manifest.id
    assert result.passed, result.problem
    # the point-in-time state: the new tasks in, the deleted ones out
    assert result.tables["Tarefas"]["records"] == sandbox.store.count("appBestStagSandbx", "Tarefas") == 300 + 4 - 3
    assert set(result.tables) == set(inc.manifest.tables)
    # links into the tables the incremental type does not hold cannot be restored: said, not a difference
    assert any("does not hold" in w or "not restored" in w for w in result.warnings)


def _table_file(settings: Any, backup_id: str, table: str) -> Path:
    info = find_backup(settings.paths.backups, backup_id)
    assert info.manifest is not None
    return info.path / str(info.manifest.tables[table].file)


def test_a_corrupted_table_file_fails_the_drill_naming_it(settings, gateway):
    m = _complete(settings, gateway)
    victim = _table_file(settings, m.id, "Tarefas")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))

    result = run_drill(settings, gateway.journal, m.id)

    assert result.status == "failed"
    assert result.broken is not None and result.broken.file == str(m.tables["Tarefas"].file)
    err = result.failure()
    assert isinstance(err, BackupBroken) and err.exit_code == 1
    assert str(m.tables["Tarefas"].file) in err.message and result.id in err.message
    assert result.drill_base == ""  # nothing was built from a backup that does not verify
    assert _drills_left(settings) == []
    row = gateway.journal.drills(backup_id=m.id)[0]
    assert row["status"] == "failed" and str(m.tables["Tarefas"].file) in row["problem"]


def test_a_corrupted_attachment_fails_the_drill_naming_the_file(settings, gateway):
    m = _complete(settings, gateway)
    tasks = _table_file(settings, m.id, "Tarefas")
    shas = sorted({a["sha256"] for r in iter_records(tasks) for a in r["fields"].get("anexos") or []})
    sha = shas[len(shas) // 2]
    victim = BlobStore(settings.paths.backups).path(sha)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only hashing finds it
    victim.write_bytes(bytes(data))

    result = run_drill(settings, gateway.journal, m.id)

    assert result.status == "failed"
    assert result.broken is not None and sha in result.broken.file
    assert "does not match its sha256" in result.broken.problem
    assert sha in str(result.failure())
    assert _drills_left(settings) == []


def test_the_comparer_names_the_first_difference_of_a_base_edited_after_the_restore(settings, gateway):
    m = _complete(settings, gateway)
    info = find_backup(settings.paths.backups, m.id)
    store = BlobStore(settings.paths.backups)
    with drill_base(settings, "drill-test-compare", info) as base:
        restored = restore_into(base, info)
        id_map = restored.plan.id_map
        tables = [t.name for t in restored.plan.tables]
        assert compare_restored(base, info, tables, id_map, store) is None
        users = sorted(base.gateway.all("Usuários"), key=lambda r: r["createdTime"])
        backup_users = list(drill_mod.table_state(info, "Usuários", drill_mod.backup_index(settings.paths.backups)))
        src = backup_users[3]
        dst = id_map[src]
        assert dst in {u["id"] for u in users}

        # a value edited: table, record (both ids), field, and both values are named
        base.gateway.update("Usuários", [{"id": dst, "fields": {"Nome": "não é o backup"}}])
        diff = compare_restored(base, info, tables, id_map, store)
        assert diff is not None
        assert (diff.table, diff.record, diff.target_record, diff.field) == ("Usuários", src, dst, "Nome")
        assert diff.actual == "não é o backup"
        assert "Usuários" in diff.describe() and src in diff.describe() and "'Nome'" in diff.describe()

        # a link moved: compared through the id map (on whichever side of the pair comes first)
        original = drill_mod.table_state(info, "Usuários", drill_mod.backup_index(settings.paths.backups))[src]
        base.gateway.update("Usuários", [{"id": dst, "fields": {"Nome": original["fields"]["Nome"]}}])
        assert compare_restored(base, info, tables, id_map, store) is None
        task = next(t for t in base.gateway.all("Tarefas") if t["fields"].get("responsável"))
        other = next(u["id"] for u in users if u["id"] not in task["fields"]["responsável"])
        base.gateway.update("Tarefas", [{"id": task["id"], "fields": {"responsável": [other]}}])
        diff = compare_restored(base, info, tables, id_map, store)
        assert diff is not None and diff.problem == "differs"
        assert task["id"] in [*diff.expected, *diff.actual] or diff.actual == [other]

    assert _drills_left(settings) == []


def test_the_comparer_finds_a_swapped_file_a_missing_and_an_extra_record(settings, gateway):
    m = _complete(settings, gateway)
    info = find_backup(settings.paths.backups, m.id)
    store = BlobStore(settings.paths.backups)
    with drill_base(settings, "drill-test-files", info) as base:
        restored = restore_into(base, info)
        id_map, tables = restored.plan.id_map, [t.name for t in restored.plan.tables]
        with_files = next(r for r in base.gateway.all("Tarefas") if r["fields"].get("anexos"))
        att = with_files["fields"]["anexos"][0]
        # same name, same size, other bytes: only the sha256 of what the base serves tells
        content = base.gateway.api.session.get(att["url"], headers={"Authorization": None}).content
        forged = bytes(b ^ 0xFF for b in content)
        keep = [{"id": a["id"]} for a in with_files["fields"]["anexos"][1:]]
        base.gateway.update("Tarefas", [{"id": with_files["id"], "fields": {"anexos": keep}}])
        base.gateway.upload_attachment(
            "Tarefas", with_files["id"], "anexos", att["filename"], content=forged, content_type=att["type"]
        )
        diff = compare_restored(base, info, tables, id_map, store)
        assert diff is not None and (diff.table, diff.target_record, diff.field) == (
            "Tarefas",
            with_files["id"],
            "anexos",
        )

    with drill_base(settings, "drill-test-records", info) as base:
        restored = restore_into(base, info)
        id_map, tables = restored.plan.id_map, [t.name for t in restored.plan.tables]
        victim = base.gateway.all("Tarefas")[5]
        base.gateway.delete("Tarefas", [victim["id"]])
        # (compared alone: with Usuários, the first difference is the inverse link the deletion cut there)
        diff = compare_restored(base, info, ["Tarefas"], id_map, store)
        assert diff is not None and diff.table == "Tarefas" and diff.target_record == victim["id"]
        assert diff.field is None and "missing" in diff.problem

    with drill_base(settings, "drill-test-extra", info) as base:
        restored = restore_into(base, info)
        id_map, tables = restored.plan.id_map, [t.name for t in restored.plan.tables]
        extra = base.gateway.create("Tarefas", [{"Título": "não está no backup"}])[0]
        diff = compare_restored(base, info, tables, id_map, store)
        assert diff is not None and diff.table == "Tarefas" and diff.target_record == extra["id"]
        assert "does not have" in diff.problem
    assert _drills_left(settings) == []


def test_a_difference_fails_the_drill_naming_it(settings, gateway, monkeypatch):
    """run_drill end to end with a restore that loses a value: the drill fails on that field, exit 1."""
    m = _complete(settings, gateway)
    real = drill_mod.restore_into

    def lossy(base: Any, info: Any, progress: Any = None) -> Any:
        result = real(base, info, progress)
        first = base.gateway.all("Usuários")[0]
        base.gateway.update("Usuários", [{"id": first["id"], "fields": {"email": "perdido@example.com"}}])
        return result

    monkeypatch.setattr(drill_mod, "restore_into", lossy)
    result = run_drill(settings, gateway.journal, m.id)
    assert result.status == "failed" and result.difference is not None
    assert (result.difference.table, result.difference.field) == ("Usuários", "email")
    err = result.failure()
    assert isinstance(err, DrillFailed) and err.exit_code == 1 and "'email'" in err.message
    assert gateway.journal.drills()[0]["problem"] == result.difference.describe()
    assert _drills_left(settings) == []


def test_which_backup_a_drill_takes(settings, gateway):
    with pytest.raises(NotFound):
        resolve_drill_backup(settings, "latest", "complete")
    crit = run_backup(settings, gateway, "critical").manifest
    clock.set_now(clock.now())
    clock.advance(5)
    comp = _complete(settings, gateway)
    assert resolve_drill_backup(settings, "latest", "complete").id == comp.id
    assert resolve_drill_backup(settings, "latest", "critical").id == crit.id
    assert resolve_drill_backup(settings).id == comp.id  # a restore's latest: the whole base
    with pytest.raises(BadInput, match="not a complete backup"):
        resolve_drill_backup(settings, crit.id, "complete")
    with pytest.raises(BadInput, match="unknown backup type"):
        resolve_drill_backup(settings, "latest", "weekly")


def test_a_killed_drills_folder_is_removed_by_the_next_drill_and_nothing_else(settings, gateway):
    import os

    m = _complete(settings, gateway)
    root = settings.paths.data_dir / DRILLS_DIR
    stale, fresh, other = root / "drill-old", root / "drill-recent", root / "notes"
    for p in (stale, fresh, other):
        p.mkdir(parents=True)
        (p / "x").write_text("x")
    old = clock.timestamp() - 3 * 24 * H
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert run_drill(settings, gateway.journal, m.id).passed
    assert _drills_left(settings) == ["drill-recent", "notes"]


# --------------------------------------------------------------------------------------------
# the command


def test_cli_drill_json_and_exit_codes(cli, settings):
    assert cli("backup", "run", "--type", "complete", "--tables", ",".join(SMALL)).exit_code == 0
    r = cli("--json", "backup", "drill", "latest", "--type", "complete")
    assert r.exit_code == 0, r
    d = r.json()
    assert d["status"] == "passed" and d["passed"] is True and d["backup_type"] == "complete"
    assert d["requests"]["total"] == d["requests"]["restore"] + d["requests"]["schema"] > 0
    assert d["recovery_estimate"]["seconds"] == pytest.approx(d["requests"]["total"] / 5, abs=0.1)
    human = cli("backup", "drill")
    assert human.exit_code == 0, human
    assert "passed" in human.stdout and "a real restore needs" in human.stdout

    bid = d["backup_id"]
    victim = _table_file(settings, bid, "Usuários")
    victim.write_bytes(victim.read_bytes()[:-7])
    bad = cli("--json", "backup", "drill", bid)
    assert bad.exit_code == 1, bad
    out = bad.json()  # one JSON document: the result; the error line goes to stderr
    assert out["status"] == "failed" and out["broken"]["file"] in bad.stderr
    assert out["broken"]["file"].startswith("tables/")
    assert cli("backup", "drill", bid).exit_code == 1

    assert cli("backup", "drill", "latest", "--type", "weekly").exit_code == 2
    assert cli("backup", "drill", "incremental/latest").exit_code == 2  # none yet: not found


def test_a_drill_sends_nothing_to_airtable_with_a_real_token_configured(cli, monkeypatch, settings, wire_trap):
    """Configured for production (a real-looking token, a base): the drill still talks only to its sandbox.

    The wire trap fails the test on any request to a non-loopback host (Airtable's included)."""
    assert cli("backup", "run", "--type", "critical").exit_code == 0
    bid = cli("--json", "backup", "list").json()[-1]["id"]
    token = "patDrillNoWire01." + "a" * 64
    monkeypatch.delenv("BESTSTAG_SANDBOX", raising=False)
    monkeypatch.setenv("AIRTABLE_TOKEN", token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appProductionBas1")
    mark = wire_trap.mark()

    r = cli("--json", "backup", "drill", bid)

    assert r.exit_code == 0, r
    assert r.json()["passed"] is True
    assert wire_trap.hits_since(mark) == []
    assert token not in r.stdout + r.stderr
    journal = settings.paths.journal
    from beststag_cli.journal import Journal

    j = Journal(journal)
    try:
        assert j.query("SELECT count(*) AS n FROM requests WHERE base = 'appProductionBas1'")[0]["n"] == 0
        assert j.drills()[0]["status"] == "passed"
    finally:
        j.close()


# --------------------------------------------------------------------------------------------
# the backup alert and the recovery time


def _backup_row(journal: Any, bid: str, finished: float) -> None:
    journal.record_backup_run(id=bid, type="complete", status="ok", started=finished - 60, finished=finished)


def _drill_row(journal: Any, did: str, bid: str, status: str, at: float, requests: int = 500) -> None:
    journal.record_drill(
        id=did,
        backup_id=bid,
        backup_type="complete",
        status=status,
        started=at - 30,
        finished=at,
        duration_s=30,
        records=4000,
        requests=requests,
        schema_requests=20,
        rate_per_s=5,
        estimate_s=(requests + 20) / 5,
        problem=None if status == "passed" else "table 'Usuários', record rec1, field 'Nome': differs",
    )


def _drill_alert(settings: Any, journal: Any) -> Any:
    from beststag_cli.metrics.alerts import evaluate

    alert = next(a for a in evaluate(settings, journal) if a.name == "backup_failure")
    return alert, alert.detail["failing"].get("drill")


def test_the_backup_alert_fires_and_clears_by_drill_age(settings):
    from datetime import UTC, datetime

    from beststag_cli.journal import Journal

    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC).timestamp()
    assert settings.backup.drill_max_age_h == 48
    j = Journal(settings.paths.journal, source="test")
    try:
        clock.set_now(datetime.fromtimestamp(t0, UTC))
        assert _drill_alert(settings, j)[1] is None  # no complete backup: the type's own line says so
        _backup_row(j, "complete/2026-03-01T02-00-00Z", t0)
        clock.set_now(datetime.fromtimestamp(t0 + 47 * H, UTC))
        assert _drill_alert(settings, j)[1] is None  # young enough to wait for its drill
        clock.set_now(datetime.fromtimestamp(t0 + 49 * H, UTC))
        alert, why = _drill_alert(settings, j)
        assert alert.firing and "no passing drill of complete/2026-03-01T02-00-00Z" in why
        _drill_row(j, "drill-a", "complete/2026-03-01T02-00-00Z", "passed", t0 + 49 * H)
        assert _drill_alert(settings, j)[1] is None
        # a newer complete backup starts the wait again; a drill of an older one does not prove it
        _backup_row(j, "complete/2026-03-08T02-00-00Z", t0 + 7 * 24 * H)
        clock.set_now(datetime.fromtimestamp(t0 + 7 * 24 * H + 50 * H, UTC))
        assert "2026-03-08" in _drill_alert(settings, j)[1]
        # its drill failed: the alert fires at once, naming the difference
        _drill_row(j, "drill-b", "complete/2026-03-08T02-00-00Z", "failed", t0 + 7 * 24 * H + 50 * H)
        why = _drill_alert(settings, j)[1]
        assert "drill-b" in why and "failed" in why and "'Nome'" in why
        _drill_row(j, "drill-c", "complete/2026-03-08T02-00-00Z", "passed", t0 + 7 * 24 * H + 51 * H)
        clock.set_now(datetime.fromtimestamp(t0 + 7 * 24 * H + 51 * H, UTC))
        assert _drill_alert(settings, j)[1] is None
    finally:
        j.close()


def test_recovery_time_comes_from_the_newest_passing_drill(settings):
    from beststag_cli.journal import Journal
    from beststag_cli.metrics.backups import collect_backup
    from beststag_cli.metrics.export import journal_figures, prometheus_text
    from beststag_cli.metrics.windows import Window

    j = Journal(settings.paths.journal, source="test")
    try:
        now = clock.timestamp()
        _backup_row(j, "complete/2026-03-01T02-00-00Z", now - 5 * H)
        rec = collect_backup(settings, j, Window.ending("24h", now))["recovery"]
        assert rec["source"] == "budget"  # nothing measured yet: the API budget
        _drill_row(j, "drill-old", "complete/2026-03-01T02-00-00Z", "passed", now - 3 * H, requests=980)
        _drill_row(j, "drill-new", "complete/2026-03-01T02-00-00Z", "passed", now - 2 * H, requests=480)
        _drill_row(j, "drill-bad", "complete/2026-03-01T02-00-00Z", "failed", now - 1 * H, requests=10)
        rec = collect_backup(settings, j, Window.ending("24h", now))["recovery"]
        assert (rec["source"], rec["drill_id"], rec["requests"]) == ("drill", "drill-new", 500)
        assert rec["estimate_seconds"] == 100.0  # 500 requests at 5 req/s
        text = prometheus_text({}, journal_figures(j, now))
        assert "beststag_backup_drill_restore_requests 500" in text
        line = next(x for x in text.splitlines() if x.startswith("beststag_backup_drill_last_success_timestamp"))
        assert float(line.split()[1]) == pytest.approx(now - 2 * H)
        assert "beststag_backup_drill_failing 1" in text  # the newest complete backup's last drill failed
    finally:
        j.close()
