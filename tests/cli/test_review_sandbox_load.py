"""Adversarial review (issue 18): hostile `sandbox load` inputs are one line and exit 2, and a failed
load never costs the base it was to replace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beststag_cli.sandbox import SANDBOX_BASE_ID


@pytest.fixture(autouse=True)
def _cli_on_the_test_sandbox(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import beststag_cli.sandbox.admin as admin

    monkeypatch.setattr(admin, "open_sandbox", lambda path: sandbox)


def _table(**kw: Any) -> dict[str, Any]:
    t: dict[str, Any] = {
        "id": "tblHostile0000001",
        "name": "T",
        "primaryFieldId": "fldHostile0000001",
        "fields": [{"id": "fldHostile0000001", "name": "Name", "type": "singleLineText"}],
    }
    t.update(kw)
    return t


def _field(**kw: Any) -> dict[str, Any]:
    return {"id": "fldHostile0000001", "name": "Name", "type": "singleLineText", **kw}


HOSTILE: list[Any] = [
    [],
    {"tables": {"a": 1}},
    {"tables": [_table(fields=[_field(options="abc")])]},
    {"tables": [_table(fields=[_field(options=5)])]},
    {"tables": [_table(fields=[_field(options=[1, 2])])]},
    {"tables": [_table(views=5)]},
    {"tables": [_table(primaryFieldId=["x"])]},
    {"tables": [_table(id=["tbl"])]},
    {"tables": [_table(name="\ud800")]},
    {"tables": [_table(fields=[_field(name="\udfff")])]},
    {"tables": [_table(description=["not", "text"])]},
    {"tables": [_table(fields=[_field(description={"a": 1})])]},
    {"tables": [_table(id="fldWrongPrefix001")]},
    {"tables": [_table(), _table(name="U")]},  # the same ids twice
]


@pytest.mark.parametrize("doc", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_a_hostile_schema_document_is_bad_input(cli, sandbox, tmp_path: Path, doc: Any) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    r = cli("sandbox", "load", "--schema", str(path), "--base", "appHostileLoad001")
    assert r.exit_code == 2, r
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert not sandbox.store.has_base("appHostileLoad001")


def test_a_file_that_is_not_utf8_or_a_directory_is_bad_input(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"tables": "\xe9"}')
    for p in (bad, tmp_path):
        r = cli("sandbox", "load", "--schema", str(p), "--base", "appHostileLoad001")
        assert r.exit_code == 2 and "Traceback" not in r.stderr, r


def test_a_damaged_backup_does_not_cost_the_base_it_was_to_replace(cli, settings, gateway, api) -> None:  # type: ignore[no-untyped-def]
    """`--from-backup ID --replace` dropped the base, then found a damaged file and dropped the half-loaded
    copy too: the base was gone, replaced by nothing."""
    import os

    from beststag_cli.backup.layout import BlobStore
    from beststag_cli.backup.runner import run_backup

    backup = run_backup(settings, gateway, "complete")
    blobs = BlobStore(settings.paths.backups)
    damaged = 0
    for root, _, files in os.walk(blobs.path("0" * 64).parent.parent):
        for fn in files:
            p = Path(root) / fn
            p.chmod(0o600)
            p.write_bytes(b"x" * p.stat().st_size)  # same size: only hashing the file finds it
            damaged += 1
    assert damaged
    before = {t: len(api.table(SANDBOX_BASE_ID, t).all()) for t in ("Usuários", "Métricas")}
    r = cli("sandbox", "load", "--from-backup", backup.manifest.id, "--replace")
    assert r.exit_code == 2 and "damaged" in r.stderr, r
    assert {t: len(api.table(SANDBOX_BASE_ID, t).all()) for t in before} == before


def test_a_tampered_backup_is_refused_before_anything_is_loaded(cli, settings, gateway, sandbox) -> None:  # type: ignore[no-untyped-def]
    """`restore` verifies the chain (sha256 of every file) before trusting it; `sandbox load --from-backup`
    read schema.json and the table files unchecked, so an edited backup loaded as if it were whole."""
    from beststag_cli.backup.runner import run_backup

    backup = run_backup(settings, gateway, "complete", ["Usuários"])
    path = settings.paths.backups / backup.manifest.id / "schema.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["tables"][0]["description"] = "edited after the backup"
    path.chmod(0o600)
    path.write_text(json.dumps(doc), encoding="utf-8")
    sandbox.store.drop_base(SANDBOX_BASE_ID)  # its ids would be refused first
    r = cli("sandbox", "load", "--from-backup", backup.manifest.id, "--base", "appTampered000001")
    assert r.exit_code != 0 and "schema.json" in r.stderr and "Traceback" not in r.stderr, r
    assert "this is a bug" not in r.stderr
    assert not sandbox.store.has_base("appTampered000001")


def test_lookups_that_lead_back_to_themselves_are_refused(sandbox) -> None:  # type: ignore[no-untyped-def]
    """One.Look looks up Two.Look, which looks up One.Look: every create and list of either table
    recursed without end (RecursionError, a 500). Airtable cannot build such a base."""
    from beststag_cli.sandbox.load import LoadError, load_schema

    def f(fid: str, name: str, ftype: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"id": fid, "name": name, "type": ftype, **({"options": options} if options else {})}

    def table(tid: str, name: str, me: str, other_tid: str, other: str) -> dict[str, Any]:
        link, inverse = f"fld{me}Link000001", f"fld{other}Link000001"
        return {
            "id": tid,
            "name": name,
            "fields": [
                f(f"fld{me}Name000001", "Name", "singleLineText"),
                f(link, "Link", "multipleRecordLinks", {"linkedTableId": other_tid, "inverseLinkFieldId": inverse}),
                f(
                    f"fld{me}Look000001",
                    "Look",
                    "multipleLookupValues",
                    {"recordLinkFieldId": link, "fieldIdInLinkedTable": f"fld{other}Look000001"},
                ),
            ],
        }

    doc = {
        "tables": [
            table("tblCycleOne000001", "One", "Ones", "tblCycleTwo000001", "Twos"),
            table("tblCycleTwo000001", "Two", "Twos", "tblCycleOne000001", "Ones"),
        ]
    }
    with pytest.raises(LoadError, match="lead back"):
        load_schema(sandbox.store, doc, "appCycleTest00001", "cycle")
    assert not sandbox.store.has_base("appCycleTest00001")
    # the same tables with the lookups pointing at the primary fields load, and answer
    for t, other in zip(doc["tables"], ("Twos", "Ones"), strict=True):
        t["fields"][2]["options"]["fieldIdInLinkedTable"] = f"fld{other}Name000001"
    load_schema(sandbox.store, doc, "appCycleTest00001", "cycle")
    api = sandbox.api(retry_strategy=None)
    a = api.table("appCycleTest00001", "One").create({"Name": "a"})
    api.table("appCycleTest00001", "Two").create({"Name": "b", "Link": [a["id"]]})
    assert api.table("appCycleTest00001", "One").get(a["id"])["fields"]["Look"] == ["b"]
