"""`beststag sandbox load --schema FILE | --from-backup ID` and `sandbox info` listing every base.

The proofs: a loaded schema document comes back from `GET …/tables` as given (ids, types, options);
a backup loaded into a new base and backed up again gives the same records and files."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli.sandbox import SANDBOX_BASE_ID, ListParams
from beststag_cli.sandbox.load import LoadError, load_schema
from beststag_cli.sandbox.schema import COMPUTED_TYPES, new_id
from beststag_cli.sandbox.schema_doc import KNOWN_TYPES


@pytest.fixture(autouse=True)
def _cli_on_the_test_sandbox(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """`sandbox …` commands open the data file through admin.open_sandbox; point it at the test's sandbox
    copy, as the `cli` fixture does for get_sandbox (the gateway fixture serves that same copy)."""
    import beststag_cli.sandbox.admin as admin

    monkeypatch.setattr(admin, "open_sandbox", lambda path: sandbox)


DT = {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}, "timeFormat": {"name": "24hour", "format": "HH:mm"}}


def _f(fid: str, name: str, ftype: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ftype, "id": fid, "name": name, **kw}
    if options is not None:
        out["options"] = options
    return out


def rich_doc() -> dict[str, Any]:
    """A schema document as Airtable answers it, with every field type of its field model."""
    t1, t2 = "tblProjects000001", "tblPeople00000002"
    return {
        "tables": [
            {
                "id": t1,
                "name": "Projects",
                "primaryFieldId": "fldName0000000001",
                "description": "What we do",
                "fields": [
                    _f("fldName0000000001", "Name", "singleLineText", description="the name"),
                    _f("fldNotes000000002", "Notes", "multilineText"),
                    _f("fldRich0000000003", "Rich", "richText"),
                    _f("fldMail0000000004", "Mail", "email"),
                    _f("fldSite0000000005", "Site", "url"),
                    _f("fldPhone000000006", "Phone", "phoneNumber"),
                    _f("fldDone0000000007", "Done", "checkbox", {"icon": "check", "color": "greenBright"}),
                    _f("fldCount000000008", "Amount", "number", {"precision": 2}),
                    _f("fldPct00000000009", "Share", "percent", {"precision": 1}),
                    _f("fldCur00000000010", "Budget", "currency", {"precision": 2, "symbol": "R$"}),
                    _f("fldDur00000000011", "Time", "duration", {"durationFormat": "h:mm"}),
                    _f("fldRate0000000012", "Stars", "rating", {"icon": "star", "max": 5, "color": "yellowBright"}),
                    _f(
                        "fldStat0000000013",
                        "Status",
                        "singleSelect",
                        {"choices": [{"id": "selTodo0000000010", "name": "Todo", "color": "blueLight2"}]},
                    ),
                    _f(
                        "fldTags0000000014",
                        "Tags",
                        "multipleSelects",
                        {"choices": [{"id": "selA0000000000010", "name": "a", "color": "redLight2"}]},
                    ),
                    _f("fldDay00000000015", "Day", "date", {"dateFormat": DT["dateFormat"]}),
                    _f("fldWhen0000000016", "When", "dateTime", {**DT, "timeZone": "America/Sao_Paulo"}),
                    _f("fldFile0000000017", "Files", "multipleAttachments", {"isReversed": False}),
                    _f(
                        "fldLead0000000018",
                        "Lead",
                        "multipleRecordLinks",
                        {
                            "linkedTableId": t2,
                            "isReversed": False,
                            "prefersSingleRecordLink": True,
                            "inverseLinkFieldId": "fldProj0000000010",
                        },
                    ),
                    _f(
                        "fldPar00000000019",
                        "Parent",
                        "multipleRecordLinks",
                        {"linkedTableId": t1, "isReversed": False, "prefersSingleRecordLink": False},
                    ),
                    _f(
                        "fldLkp00000000020",
                        "Lead mail",
                        "multipleLookupValues",
                        {
                            "isValid": True,
                            "recordLinkFieldId": "fldLead0000000018",
                            "fieldIdInLinkedTable": "fldPMail000000020",
                            "result": {"type": "email"},
                        },
                    ),
                    _f(
                        "fldRoll0000000021",
                        "Lead count",
                        "rollup",
                        {
                            "isValid": True,
                            "recordLinkFieldId": "fldLead0000000018",
                            "fieldIdInLinkedTable": "fldPMail000000020",
                            "referencedFieldIds": [],
                            "result": {"type": "number", "options": {"precision": 0}},
                        },
                    ),
                    _f(
                        "fldCnt00000000022",
                        "Leads",
                        "count",
                        {"isValid": True, "recordLinkFieldId": "fldLead0000000018"},
                    ),
                    _f(
                        "fldFml00000000023",
                        "Label",
                        "formula",
                        {
                            "isValid": True,
                            "formula": "{Name} & '!'",
                            "referencedFieldIds": ["fldName0000000001"],
                            "result": {"type": "singleLineText"},
                        },
                    ),
                    _f("fldAuto0000000024", "No", "autoNumber"),
                    _f(
                        "fldCrt00000000025",
                        "Created",
                        "createdTime",
                        {"result": {"type": "dateTime", "options": {**DT, "timeZone": "utc"}}},
                    ),
                    _f(
                        "fldMod00000000026",
                        "Modified",
                        "lastModifiedTime",
                        {
                            "isValid": True,
                            "referencedFieldIds": [],
                            "result": {"type": "dateTime", "options": {**DT, "timeZone": "utc"}},
                        },
                    ),
                    _f("fldBy000000000027", "By", "createdBy"),
                    _f("fldMby00000000028", "Edited by", "lastModifiedBy"),
                    _f("fldOwn00000000029", "Owner", "singleCollaborator"),
                    _f("fldTeam0000000030", "Team", "multipleCollaborators"),
                    _f("fldBar00000000031", "Code", "barcode"),
                    _f("fldBtn00000000032", "Open", "button"),
                    _f(
                        "fldAi000000000033",
                        "Summary",
                        "aiText",
                        {
                            "prompt": ["Summarise ", {"field": {"fieldId": "fldNotes000000002"}}],
                            "referencedFieldIds": ["fldNotes000000002"],
                        },
                    ),
                    _f("fldSync0000000034", "Source", "externalSyncSource", {"choices": []}),
                ],
                "views": [
                    {"id": "viwGrid0000000010", "name": "Grid view", "type": "grid"},
                    {"id": "viwKanban00000020", "name": "Board", "type": "kanban"},
                    {"id": "viwForm0000000030", "name": "Form", "type": "form"},
                ],
            },
            {
                "id": t2,
                "name": "People",
                "primaryFieldId": "fldPMail000000020",
                "fields": [
                    _f("fldPName000000010", "Name", "singleLineText"),
                    _f("fldPMail000000020", "Mail", "email"),
                    _f(
                        "fldProj0000000010",
                        "Projects",
                        "multipleRecordLinks",
                        {
                            "linkedTableId": t1,
                            "isReversed": False,
                            "prefersSingleRecordLink": False,
                            "inverseLinkFieldId": "fldLead0000000018",
                        },
                    ),
                ],
                "views": [{"id": "viwPeople00000010", "name": "All", "type": "grid"}],
            },
        ]
    }


def test_rich_doc_covers_every_field_type() -> None:
    types = {f["type"] for t in rich_doc()["tables"] for f in t["fields"]}
    assert types == KNOWN_TYPES


def test_load_schema_round_trips(cli, sandbox, api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = rich_doc()
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(doc))
    r = cli("--json", "sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0001", "--name", "Mine")
    assert r.exit_code == 0, r
    assert r.json()["base_id"] == "appLoadedCopy0001" and r.json()["tables"] == {"Projects": 0, "People": 0}
    got = api.session.get(api.build_url("meta/bases/appLoadedCopy0001/tables")).json()
    assert got == doc  # ids, types, options and order, as given
    assert json.dumps(got, sort_keys=True) == json.dumps(doc, sort_keys=True)
    # pyairtable reads it with its own models, and the base takes records
    schema = api.base("appLoadedCopy0001").schema()
    assert schema.table("Projects").field("fldLead0000000018").name == "Lead"
    proj = api.table("appLoadedCopy0001", "Projects")
    rec = proj.create({"Name": "p", "Amount": 1.5})
    assert proj.get(rec["id"])["fields"]["Amount"] == 1.5
    # and sandbox info lists it with the sample base
    info = cli("--json", "sandbox", "info").json()
    assert {b["id"]: b["name"] for b in info["bases"]} == {SANDBOX_BASE_ID: "BestStag", "appLoadedCopy0001": "Mine"}
    mine = next(b for b in info["bases"] if b["id"] == "appLoadedCopy0001")
    assert mine["records"] == 1 and [t["name"] for t in mine["tables"]] == ["Projects", "People"]


def test_load_refuses_an_existing_base_unless_replace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(rich_doc()))
    assert cli("sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0001").exit_code == 0
    r = cli("sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0001")
    assert r.exit_code == 2 and "already exists" in r.stderr and "--replace" in r.stderr
    r = cli("--json", "sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0001", "--replace")
    assert r.exit_code == 0 and r.json()["replaced"] is True
    # the same ids in another base: refused (ids are unique in a sandbox, as in Airtable)
    r = cli("sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0002")
    assert r.exit_code == 2 and "appLoadedCopy0001" in r.stderr
    for bad in ("[]", '{"tables": []}', "not json", '{"tables": [{"name": "T", "fields": []}]}'):
        path.write_text(bad)
        r = cli("sandbox", "load", "--schema", str(path), "--base", "appLoadedCopy0003")
        assert r.exit_code == 2, (bad, r)
    assert cli("sandbox", "load").exit_code == 2
    assert cli("sandbox", "load", "--schema", str(path), "--base", "nope").exit_code == 2


# ----------------------------------------------------------------------------- generated documents

# lookups need a consistent link and target (the rich document has one; an inconsistent one is refused)
FIELD_TYPES = sorted(KNOWN_TYPES - {"multipleRecordLinks", "multipleLookupValues"})
NAME = st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs"]), min_size=1, max_size=10).filter(
    lambda s: s.strip() == s
)


@st.composite
def docs(draw: st.DrawFn) -> dict[str, Any]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    n_tables = draw(st.integers(1, 4))
    names = draw(st.lists(NAME, min_size=n_tables, max_size=n_tables, unique_by=str.lower))
    ids = [new_id("tbl", rng) for _ in names]
    tables = []
    for tid, tname in zip(ids, names, strict=True):
        fnames = draw(st.lists(NAME, min_size=1, max_size=6, unique_by=str.lower))
        fields = []
        for fname in fnames:
            if draw(st.booleans()) and len(fields) > 0:
                ftype, opts = "multipleRecordLinks", {"linkedTableId": draw(st.sampled_from(ids)), "isReversed": False}
            else:
                ftype = draw(st.sampled_from(FIELD_TYPES))
                # computed fields' options are structural (a formula, its refs, a result; a button has none
                # shown): the rich hand-written document above covers them; here only free-form options
                opts = (
                    None
                    if ftype in COMPUTED_TYPES
                    else draw(st.none() | st.fixed_dictionaries({"precision": st.integers(0, 8)}))
                )
            f: dict[str, Any] = {"type": ftype, "id": new_id("fld", rng), "name": fname}
            if draw(st.booleans()):
                f["description"] = draw(NAME)
            if opts is not None:
                f["options"] = opts
            fields.append(f)
        views = [
            {"id": new_id("viw", rng), "name": draw(NAME), "type": draw(st.sampled_from(["grid", "form", "calendar"]))}
        ]
        tables.append({"id": tid, "name": tname, "primaryFieldId": fields[0]["id"], "fields": fields, "views": views})
    return {"tables": tables}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=docs())
def test_generated_docs_round_trip(sandbox, doc: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    bid = "appGenerated00001"
    load_schema(sandbox.store, doc, bid, "G", replace=True)
    assert sandbox.store.base_schema(bid) == doc
    for t in doc["tables"]:  # and every table answers (no field type or option breaks a read)
        assert sandbox.store.list_records(bid, t["id"], ListParams()) == {"records": []}


def test_an_inconsistent_lookup_is_refused(sandbox) -> None:  # type: ignore[no-untyped-def]
    doc = rich_doc()
    lookup = next(f for f in doc["tables"][0]["fields"] if f["type"] == "multipleLookupValues")
    lookup["options"]["fieldIdInLinkedTable"] = "fldNotThere000000"
    with pytest.raises(LoadError, match="lookup"):
        load_schema(sandbox.store, doc, "appGenerated00002", "G")
    assert not sandbox.store.has_base("appGenerated00002")


# ----------------------------------------------------------------------------- from a backup


def _content(settings, backup_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Every table's records at a backup, with each attachment reduced to its file's content hash."""
    from beststag_cli.backup.chain import backup_index, table_state
    from beststag_cli.backup.layout import BlobStore, find_backup

    root = settings.paths.backups
    info = find_backup(root, backup_id)
    blobs = BlobStore(root)
    out: dict[str, Any] = {}
    assert info.manifest is not None
    for key in info.manifest.tables:
        recs = {}
        for rid, r in table_state(info, key, backup_index(root)).items():
            fields = {}
            for k, v in r["fields"].items():
                if isinstance(v, list) and v and isinstance(v[0], dict) and "sha256" in v[0]:
                    v = [(a["id"], a["filename"], hashlib.sha256(blobs.read(a["sha256"])).hexdigest()) for a in v]
                fields[k] = v
            recs[rid] = (r["createdTime"], fields)
        out[key] = recs
    return out


def test_backup_load_backup_gives_the_same_records_and_files(cli, settings, gateway, sandbox) -> None:  # type: ignore[no-untyped-def]
    from beststag_cli.backup.restore import gateway_for_base
    from beststag_cli.backup.runner import run_backup

    first = run_backup(settings, gateway, "complete")
    before = _content(settings, first.manifest.id)
    assert sum(len(v) for v in before.values()) > 1000
    cells = [v for t in before.values() for _, f in t.values() for v in f.values()]
    assert any(isinstance(v, list) and v and isinstance(v[0], tuple) for v in cells)  # files are in it
    # ids are unique in a sandbox: the original goes first (a rehearsal uses its own sandbox file)
    r = cli("sandbox", "load", "--from-backup", "latest", "--base", "appRehearsal00001")
    assert r.exit_code == 2 and SANDBOX_BASE_ID in r.stderr
    sandbox.store.drop_base(SANDBOX_BASE_ID)
    r = cli("--json", "sandbox", "load", "--from-backup", "latest", "--base", "appRehearsal00001")
    assert r.exit_code == 0, r
    assert r.json()["records"] == sum(len(v) for v in before.values()) and r.json()["blobs"] > 0
    second = run_backup(settings, gateway_for_base(gateway, "appRehearsal00001"), "complete")
    assert _content(settings, second.manifest.id) == before
    # the loaded schema is the backup's
    first_schema = json.loads((settings.paths.backups / first.manifest.id / "schema.json").read_text())
    second_schema = json.loads((settings.paths.backups / second.manifest.id / "schema.json").read_text())
    assert second_schema == first_schema


def test_from_backup_into_its_own_base_with_replace(cli, settings, gateway, api) -> None:  # type: ignore[no-untyped-def]
    """The rehearsal of a restore: yesterday's backup replaces the base it was taken of, edits since go."""
    from beststag_cli.backup.runner import run_backup

    first = run_backup(settings, gateway, "complete", ["Usuários"])
    table = api.table(SANDBOX_BASE_ID, "Usuários")
    rec = table.first()
    assert rec is not None
    table.update(rec["id"], {"Nome": "edited after the backup"})
    extra = table.create({"Nome": "made after the backup"})
    r = cli("sandbox", "load", "--from-backup", first.manifest.id)
    assert r.exit_code == 2 and "--replace" in r.stderr
    r = cli("--json", "sandbox", "load", "--from-backup", first.manifest.id, "--replace")
    assert r.exit_code == 0 and r.json()["base_id"] == SANDBOX_BASE_ID and r.json()["replaced"] is True
    assert table.get(rec["id"])["fields"].get("Nome") == rec["fields"].get("Nome")
    assert extra["id"] not in {x["id"] for x in table.all()}
    # only Usuários was in the backup: the other tables are back, empty
    assert r.json()["tables"]["Usuários"] == len(table.all()) and r.json()["tables"]["Métricas"] == 0


def test_from_backup_errors(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("sandbox", "load", "--from-backup", "latest")
    assert r.exit_code == 2 and "no backup" in r.stderr
    assert cli("sandbox", "load", "--from-backup", "x", "--schema", "y").exit_code == 2


@pytest.mark.parametrize("args", [("sandbox", "load", "--help")])
def test_help_has_an_example(cli, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    assert "Example:" in r.stdout
