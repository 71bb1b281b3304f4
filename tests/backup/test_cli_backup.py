"""`beststag backup …` end to end in-process: run, list, show, verify (corruption), bad input, locks, partial runs."""

from __future__ import annotations

import gzip
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from beststag_cli.backup import runner
from beststag_cli.backup.layout import BlobStore, read_attachment_list


def _run(cli: Any, *args: str) -> dict[str, Any]:
    r = cli("--json", "backup", "run", *args)
    assert r.exit_code == 0, r
    return r.json()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_run_list_show_verify(cli, settings):
    done = _run(cli, "--type", "complete")
    assert done["status"] == "ok" and done["type"] == "complete"
    assert set(done["tables"]) == set(settings.backup.types.complete.tables)
    assert done["tables"]["Interações"]["records"] == 1000
    path = Path(done["path"])
    assert path.parent.parent == settings.paths.backups and path.parent.name == "complete"
    listed = cli("--json", "backup", "list").json()
    assert [b["id"] for b in listed] == [done["id"]]
    shown = cli("--json", "backup", "show", done["id"]).json()
    assert shown["tables"] == done["tables"]
    # a bare timestamp works when it is unambiguous
    assert cli("--json", "backup", "show", done["id"].split("/")[1]).json()["id"] == done["id"]
    r = cli("--json", "backup", "verify", done["id"])
    assert r.exit_code == 0, r
    assert r.json()["verified"][0]["records"] == sum(t["records"] for t in done["tables"].values())
    # human output too
    r = cli("backup", "list")
    assert r.exit_code == 0 and "complete" in r.stdout


def test_files_are_private(cli, settings):
    done = _run(cli, "--type", "critical")
    root = settings.paths.backups
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} is {oct(mode)}"
    assert Path(done["path"], "manifest.json").exists()


def test_incremental_names_its_parent_and_records_the_run(cli, settings, gateway):
    first = _run(cli, "--type", "complete")
    inc = _run(cli, "--type", "incremental")
    assert inc["parent"] == first["id"]
    assert {t["mode"] for t in inc["tables"].values()} == {"incremental"}
    manifest = json.loads(Path(inc["path"], "manifest.json").read_text())
    for t in manifest["tables"].values():
        assert t["parent"] == first["id"] and t["since"] and t["ids_file"].endswith(".ids.gz")
    rows = gateway.journal.query("SELECT id, type, status, records, bytes FROM backup_runs ORDER BY started")
    assert [(r["id"], r["status"]) for r in rows] == [(first["id"], "ok"), (inc["id"], "ok")]
    assert rows[0]["records"] == first["records"] and rows[0]["bytes"] > 0


def test_attachments_are_stored_once(cli, settings):
    a = _run(cli, "--type", "complete")
    b = _run(cli, "--type", "complete")
    store = BlobStore(settings.paths.backups)
    blobs = list(store.all())
    assert len(blobs) == len({x["sha256"] for x in read_attachment_list(Path(a["path"]))})
    assert read_attachment_list(Path(a["path"])) == read_attachment_list(Path(b["path"]))


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing_attachment", "missing_table", "bad_line"])
def test_verify_names_the_broken_file(cli, settings, damage):
    done = _run(cli, "--type", "critical")
    path = Path(done["path"])
    table_file = next((path / "tables").glob("interacoes-*.jsonl.gz"))
    if damage == "flip":
        data = bytearray(table_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        table_file.write_bytes(bytes(data))
        expect = table_file.name
    elif damage == "truncate":
        table_file.write_bytes(table_file.read_bytes()[:-20])
        expect = table_file.name
    elif damage == "missing_table":
        table_file.unlink()
        expect = table_file.name
    elif damage == "bad_line":
        # a re-compressed file with a bad line and a manifest that agrees with its checksum
        lines = gzip.decompress(table_file.read_bytes()).decode().splitlines()
        lines[5] = "{not json"
        table_file.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        m = json.loads((path / "manifest.json").read_text())
        from beststag_cli.backup.layout import sha256_file

        size, sha = sha256_file(table_file)
        m["tables"]["Interações"].update(sha256=sha, bytes=size)
        (path / "manifest.json").write_text(json.dumps(m))
        expect = table_file.name
    else:
        att = read_attachment_list(path)[0]
        BlobStore(settings.paths.backups).path(att["sha256"]).unlink()
        expect = att["sha256"]
    r = cli("backup", "verify", done["id"])
    assert r.exit_code == 1, r
    assert expect in r.stderr and done["id"] in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("--json", "backup", "verify", "--all")
    assert r.exit_code == 1
    assert expect in r.json()["broken"][0]["file"]


@pytest.mark.parametrize(
    "args",
    [
        ("show", "complete/2020-01-01T00-00-00Z"),
        ("show", "../../etc/passwd"),
        ("show", "complete/../../x"),
        ("verify", "nope"),
        ("restore", "complete/2020-01-01T00-00-00Z", "--yes"),
        ("restore", "../complete", "--yes"),
        ("run", "--type", "weekly"),
        ("run", "--type", "complete", "--tables", "Usuarios"),
        ("run", "--type", "complete", "--tables", "../Usuários"),
        ("run", "--type", "complete", "--tables", "Usuários,Usuários"),
        ("verify",),
    ],
)
def test_bad_input_is_exit_2_one_line_nothing_written(cli, settings, args):
    before = _tree(settings.paths.backups)
    r = cli("backup", *args)
    assert r.exit_code == 2, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _tree(settings.paths.backups) == before
    assert not (settings.paths.backups / "complete").exists()


def test_restore_bad_input_writes_nothing(cli, settings, sandbox):
    done = _run(cli, "--type", "critical")
    count = sandbox.store.count("appBestStagSandbx", "Usuários")
    cases = [
        (("--tables", "Tarefas"), "no table 'Tarefas'"),
        (("--tables", "../Usuários"), "no table"),
        (("--base", "app../../x"), "not a base id"),
    ]
    # a field the target has with another type is never converted (tables and fields it lacks are created)
    fields = [
        {"name": "Nome", "type": "singleLineText"},
        {"name": "email", "type": "number", "options": {"precision": 0}},
    ]
    sandbox.store.create_base(
        {"name": "Other", "tables": [{"name": "Usuários", "fields": fields}]}, "appNoSchemaBase00", seed=3
    )
    cases += [(("--base", "appNoSchemaBase00"), "field Usuários.email is number there and email in the backup")]
    for extra, needle in cases:
        r = cli("backup", "restore", done["id"], "--yes", *extra)
        assert r.exit_code == 2, (extra, r)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
    assert sandbox.store.count("appNoSchemaBase00", "Usuários") == 0
    assert sandbox.store.count("appBestStagSandbx", "Usuários") == count


def test_restore_needs_yes_without_a_terminal_and_dry_run_writes_nothing(cli, sandbox, gateway):
    done = _run(cli, "--type", "critical")
    gateway.delete("Usuários", [r["id"] for r in gateway.all("Usuários", max_records=2)])
    r = cli("--json", "backup", "restore", done["id"], "--dry-run")
    assert r.exit_code == 0, r
    plan = r.json()
    assert plan["dry_run"] and plan["tables"]["Usuários"]["create"] == 2
    assert sandbox.store.count("appBestStagSandbx", "Usuários") == 98
    r = cli("backup", "restore", done["id"])
    assert r.exit_code == 2 and "--yes" in r.stderr
    assert sandbox.store.count("appBestStagSandbx", "Usuários") == 98
    r = cli("--json", "backup", "restore", done["id"], "--yes")
    assert r.exit_code == 0, r
    assert r.json()["tables"]["Usuários"]["created"] == 2
    assert sandbox.store.count("appBestStagSandbx", "Usuários") == 100


def test_a_second_run_while_one_holds_the_lock_exits_75(cli, settings):
    with runner.base_lock(settings, settings.base_id):
        r = cli("backup", "run", "--type", "critical")
    assert r.exit_code == 75, r
    assert "another backup" in r.stderr
    assert cli("backup", "run", "--type", "critical").exit_code == 0


def test_partial_success_keeps_good_tables_and_exits_3(cli, settings, sandbox, monkeypatch):
    monkeypatch.setattr(runner, "_DOWNLOAD_BACKOFF_S", 0.0)
    # Tarefas' attachment files vanish upstream: that table fails, Interações is kept
    sandbox.store._db.execute("DELETE FROM blobs")
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Tarefas,Interações")
    assert r.exit_code == 3, r
    data = r.json()
    assert data["status"] == "partial"
    assert data["tables"]["Tarefas"]["status"] == "failed" and "attachment" in data["tables"]["Tarefas"]["error"]
    assert data["tables"]["Interações"]["status"] == "ok"
    listed = cli("--json", "backup", "list").json()
    assert listed[0]["status"] == "partial"
    assert cli("backup", "verify", data["id"]).exit_code == 0
    assert "partial" in r.stderr
    # every table failing keeps nothing and is an error
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Tarefas")
    assert r.exit_code in (1, 4), r
    assert len(cli("--json", "backup", "list").json()) == 1


def test_upstream_down_is_exit_4_and_nothing_listed(cli, settings, sandbox, monkeypatch):
    import time

    from beststag_cli.sandbox import FaultConfig

    monkeypatch.setattr(time, "sleep", lambda s: None)  # the gateway's retry waits
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    r = cli("backup", "run", "--type", "critical")
    assert r.exit_code == 4, r
    assert cli("--json", "backup", "list").json() == []
