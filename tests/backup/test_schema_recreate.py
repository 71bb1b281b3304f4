"""Schema recreation on restore (issue 20): a deleted table, a whole base into a new one, a chain into an
empty base; lost answers and kills create nothing twice; conflicts write nothing; the manual list."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import errors
from beststag_cli.backup import schema_plan
from beststag_cli.backup.restore import NewBase, execute_restore, gateway_for_base, plan_restore
from beststag_cli.backup.runner import run_backup
from beststag_cli.backup.schema_plan import COMPUTED_TYPES, plan_schema, translate_formula
from beststag_cli.config import BESTSTAG_TABLES
from beststag_cli.sandbox import FaultConfig
from tests.served import serve_sandbox

from .conftest import assert_same_state, snapshot

TABLES = list(BESTSTAG_TABLES)
SOURCE = "appBestStagSandbx"
WORKSPACE = "wspRestoreTarget1"


@pytest.fixture
def small(sandbox: Any) -> Any:
    """The sandbox with the sample base at 5% (about 100 records, a few attachments): these tests back up
    and restore whole bases, and the full sample would make each take many seconds."""
    from beststag_cli.sandbox.seed import load_sample

    sandbox.store.drop_base(SOURCE)
    load_sample(sandbox.store, scale=0.05)
    return sandbox


def _mutate(gateway: Any, step: int) -> None:
    """Edits, deletions (links to them go too) and new linked records between two backups."""
    users, inter, tasks = gateway.all("Usuários"), gateway.all("Interações"), gateway.all("Tarefas")
    gateway.create("Tarefas", [{"Título": f"nova {step}-{i}", "responsável": [users[i]["id"]]} for i in range(2)])
    gateway.update("Usuários", [{"id": users[step]["id"], "fields": {"plano": "Pro", "tags": ["vip"]}}])
    gateway.update(
        "Interações",
        [{"id": r["id"], "fields": {"Resumo": f"editado {step}", "user": [users[0]["id"]]}} for r in inter[:3]],
    )
    gateway.delete("Interações", [r["id"] for r in inter[10:12]])
    gateway.delete("Tarefas", [tasks[-1]["id"]])
    gateway.delete("Usuários", [users[-1]["id"]])  # unlinks its interactions and tasks


def _restore(settings: Any, gateway: Any, backup_id: str, **kw: Any) -> Any:
    return execute_restore(settings, gateway, plan_restore(settings, gateway, backup_id, **kw))


def _delete_table(sandbox: Any, base_id: str, name: str, *, links_to_text: bool = False) -> None:
    """Delete a table in the Airtable UI: the link fields of other tables that pointed to it go with it, or
    (``links_to_text``) are left as text fields (what Airtable does to the other side of a deleted link)."""

    def op(b: Any, rng: Any) -> None:
        t = b.table(name)
        b.tables.remove(t)
        for other in b.tables:
            links = [
                f
                for f in other.fields
                if f.type == "multipleRecordLinks" and (f.options or {}).get("linkedTableId") == t.id
            ]
            for f in links:
                if links_to_text:
                    f.type, f.options = "singleLineText", None
                else:
                    other.fields.remove(f)
            other.reindex()

    sandbox.store.alter_schema(base_id, op)


def _fields(gateway: Any) -> dict[str, dict[str, str]]:
    return {t["name"]: {f["name"]: f["type"] for f in t["fields"]} for t in gateway.schema()["tables"]}


def _shape(gateway: Any, tables: list[str]) -> dict[str, dict[str, Any]]:
    """table → field → (type, description, options) for the fields the API can create: choices by name and
    colour, formats, time zones, precision, symbols, the linked table by name and the single-link preference."""
    schema = gateway.schema()["tables"]
    ids = {t["id"]: t["name"] for t in schema}
    out: dict[str, dict[str, Any]] = {}
    for t in schema:
        if t["name"] not in tables:
            continue
        fields = out.setdefault(t["name"], {})
        for f in t["fields"]:
            if f["type"] in COMPUTED_TYPES:
                continue
            opts = dict(f.get("options") or {})
            if "choices" in opts:
                opts["choices"] = [(c["name"], c.get("color")) for c in opts["choices"]]
            if f["type"] == "multipleRecordLinks":
                opts = {"to": ids[opts["linkedTableId"]], "single": opts.get("prefersSingleRecordLink")}
            fields[f["name"]] = (f["type"], f.get("description"), opts)
    return out


def _writable(schema: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {t: {n: ty for n, ty in fs.items() if ty not in COMPUTED_TYPES} for t, fs in schema.items()}


def _comparable(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without the fields Airtable computes (the API cannot create them: they are listed)."""
    out: dict[str, Any] = {}
    for table, recs in snap.items():
        out[table] = {}
        for rid, rec in recs.items():
            keep = {k for k, t in rec["types"].items() if t not in COMPUTED_TYPES}
            out[table][rid] = {
                "fields": {k: v for k, v in rec["fields"].items() if k in keep},
                "types": {k: t for k, t in rec["types"].items() if k in keep},
                "targets": {k: t for k, t in rec["targets"].items() if k in keep},
            }
    return out


def _computed(gateway: Any, tables: list[str]) -> set[tuple[str, str]]:
    return {
        (t["name"], f["name"])
        for t in gateway.schema()["tables"]
        if t["name"] in tables
        for f in t["fields"]
        if f["type"] in COMPUTED_TYPES
    }


# ------------------------------------------------------------------------------------------- the planner


def _doc() -> dict[str, Any]:
    """A schema document with every kind of field a base holds (ids as the metadata API gives them)."""
    return {
        "tables": [
            {
                "id": "tblAAAAAAAAAAAAA1",
                "name": "Pedidos",
                "primaryFieldId": "fldAAAAAAAAAAAA01",
                "fields": [
                    {
                        "id": "fldAAAAAAAAAAAA01",
                        "name": "Código",
                        "type": "formula",
                        "options": {"formula": "CONCATENATE({fldAAAAAAAAAAAA02}, '-', {fldAAAAAAAAAAAA03})"},
                    },
                    {"id": "fldAAAAAAAAAAAA02", "name": "Cliente nome", "type": "singleLineText"},
                    {
                        "id": "fldAAAAAAAAAAAA03",
                        "name": "Valor",
                        "type": "currency",
                        "options": {"precision": 2, "symbol": "R$"},
                    },
                    {
                        "id": "fldAAAAAAAAAAAA04",
                        "name": "Cliente",
                        "type": "multipleRecordLinks",
                        "options": {
                            "linkedTableId": "tblAAAAAAAAAAAAA2",
                            "inverseLinkFieldId": "fldBBBBBBBBBBBB03",
                            "prefersSingleRecordLink": True,
                            "isReversed": False,
                        },
                    },
                    {
                        "id": "fldAAAAAAAAAAAA05",
                        "name": "Email do cliente",
                        "type": "multipleLookupValues",
                        "options": {
                            "recordLinkFieldId": "fldAAAAAAAAAAAA04",
                            "fieldIdInLinkedTable": "fldBBBBBBBBBBBB02",
                        },
                    },
                    {
                        "id": "fldAAAAAAAAAAAA06",
                        "name": "Estado",
                        "type": "singleSelect",
                        "options": {"choices": [{"id": "selAAAAAAAAAAAAA1", "name": "Novo", "color": "blueLight2"}]},
                    },
                    {"id": "fldAAAAAAAAAAAA07", "name": "Nº", "type": "autoNumber"},
                    {"id": "fldAAAAAAAAAAAA08", "name": "Abrir", "type": "button"},
                ],
                "views": [
                    {"id": "viwAAAAAAAAAAAAA1", "name": "Grid view", "type": "grid"},
                    {"id": "viwAAAAAAAAAAAAA2", "name": "Quadro", "type": "kanban"},
                ],
            },
            {
                "id": "tblAAAAAAAAAAAAA2",
                "name": "Clientes",
                "primaryFieldId": "fldBBBBBBBBBBBB01",
                "fields": [
                    {"id": "fldBBBBBBBBBBBB01", "name": "Nome", "type": "singleLineText"},
                    {"id": "fldBBBBBBBBBBBB02", "name": "email", "type": "email"},
                    {
                        "id": "fldBBBBBBBBBBBB03",
                        "name": "Pedidos feitos",
                        "type": "multipleRecordLinks",
                        "options": {"linkedTableId": "tblAAAAAAAAAAAAA1", "inverseLinkFieldId": "fldAAAAAAAAAAAA04"},
                    },
                    {
                        "id": "fldBBBBBBBBBBBB04",
                        "name": "Total",
                        "type": "rollup",
                        "options": {
                            "recordLinkFieldId": "fldBBBBBBBBBBBB03",
                            "fieldIdInLinkedTable": "fldAAAAAAAAAAAA03",
                            "formula": "SUM(values)",
                        },
                    },
                    {
                        "id": "fldBBBBBBBBBBBB05",
                        "name": "Quantos",
                        "type": "count",
                        "options": {"recordLinkFieldId": "fldBBBBBBBBBBBB03"},
                    },
                    {
                        "id": "fldBBBBBBBBBBBB06",
                        "name": "Indicado por",
                        "type": "multipleRecordLinks",
                        "options": {"linkedTableId": "tblAAAAAAAAAAAAA2"},
                    },
                ],
                "views": [{"id": "viwBBBBBBBBBBBBB1", "name": "Grid view", "type": "grid"}],
            },
        ]
    }


def test_the_plan_of_an_empty_target_creates_every_creatable_field_and_lists_the_others():
    plan = plan_schema(_doc(), {"tables": []}, ["Pedidos", "Clientes"])

    assert [t.name for t in plan.tables] == ["Pedidos", "Clientes"]
    pedidos = plan.tables[0]
    # the primary is a formula: a text field of its name holds its place, first
    assert pedidos.placeholder_primary and pedidos.fields[0].name == "Código"
    assert pedidos.fields[0].type == "singleLineText"
    assert [f.name for f in pedidos.fields] == ["Código", "Cliente nome", "Valor", "Estado"]
    # choices are named, without the old ids
    assert pedidos.fields[3].options == {"choices": [{"name": "Novo", "color": "blueLight2"}]}
    # links come after both tables, one side of the pair (the other is Airtable's inverse, renamed)
    links = [(f.label(), f.link_to, f.inverse, f.options) for f in plan.fields]
    assert links == [
        ("Pedidos.Cliente", "Clientes", "Pedidos feitos", {"prefersSingleRecordLink": True}),
        ("Clientes.Indicado por", "Clientes", None, None),
    ]
    manual = {(m.table, m.field): m for m in plan.manual}
    assert set(manual) == {
        ("Pedidos", "Código"),
        ("Pedidos", "Email do cliente"),
        ("Pedidos", "Nº"),
        ("Pedidos", "Abrir"),
        ("Clientes", "Total"),
        ("Clientes", "Quantos"),
    }
    assert manual["Pedidos", "Código"].details["formula"] == "CONCATENATE({Cliente nome}, '-', {Valor})"
    assert "change its type to formula" in manual["Pedidos", "Código"].what
    assert manual["Pedidos", "Email do cliente"].details == {
        "link": "Cliente",
        "linked_table": "Clientes",
        "linked_field": "email",
    }
    total = manual["Clientes", "Total"].details
    assert (total["link"], total["linked_table"], total["linked_field"], total["aggregation"]) == (
        "Pedidos feitos",
        "Pedidos",
        "Valor",
        "SUM(values)",
    )
    assert manual["Clientes", "Quantos"].details == {"link": "Pedidos feitos"}
    assert plan.views == {"Pedidos": [{"name": "Quadro", "type": "kanban"}]}


def test_a_field_of_another_type_is_a_conflict_naming_both_types():
    target = {
        "tables": [
            {
                "id": "tblXXXXXXXXXXXXX1",
                "name": "Clientes",
                "fields": [
                    {"id": "fldXXXXXXXXXXXX01", "name": "Nome", "type": "singleLineText"},
                    {"id": "fldXXXXXXXXXXXX02", "name": "email", "type": "url"},
                ],
            }
        ]
    }
    with pytest.raises(errors.SchemaConflict, match=r"Clientes\.email is url there and email in the backup"):
        plan_schema(_doc(), target, ["Clientes"], target_base="appXXXXXXXXXXXXXX")
    assert errors.SchemaConflict("x").exit_code == 2
    # a computed field of the same name with another type is not a conflict: it is never written
    target["tables"][0]["fields"][1]["type"] = "email"
    target["tables"][0]["fields"].append({"id": "fldXXXXXXXXXXXX03", "name": "Total", "type": "number"})
    plan = plan_schema(_doc(), target, ["Clientes"])
    assert [f.name for f in plan.fields] == ["Indicado por"]
    assert ("Clientes", "Total") in {(m.table, m.field) for m in plan.manual}
    # names differing only in case are one name for Airtable
    target["tables"][0]["fields"][1]["name"] = "EMAIL"
    with pytest.raises(errors.SchemaConflict, match="has a field 'EMAIL' there and 'email' in the backup"):
        plan_schema(_doc(), target, ["Clientes"])
    target["tables"][0]["name"] = "clientes"
    with pytest.raises(errors.SchemaConflict, match="a table is named 'clientes' there and 'Clientes'"):
        plan_schema(_doc(), target, ["Clientes"])
    assert any("Pedidos feitos" in w for w in plan.warnings)  # its table is neither restored nor there


def test_formula_ids_translate_back_to_names():
    names = {"fldAAAAAAAAAAAA02": "Valor"}
    assert translate_formula("{fldAAAAAAAAAAAA02}*2 & {fldZZZZZZZZZZZZ99}", names) == "{Valor}*2 & {fldZZZZZZZZZZZZ99}"


# ------------------------------------------------------------------------------- against the sandbox


@pytest.mark.parametrize("tables", [["Interações"], None], ids=["that table", "every table"])
def test_a_deleted_table_is_recreated_with_its_records_and_the_links_of_other_tables(settings, gateway, small, tables):
    before = snapshot(gateway, ["Usuários", "Interações"])
    schema_before = _fields(gateway)
    shape_before = _shape(gateway, TABLES)
    done = run_backup(settings, gateway, "complete")
    _delete_table(small, SOURCE, "Interações")
    assert "Interações" not in _fields(gateway) and "Interações" not in _fields(gateway)["Usuários"]

    plan = plan_restore(settings, gateway, done.manifest.id, tables=tables)
    summary = plan.summary()
    assert summary["planned_writes"]["table"] == 1 and summary["planned_writes"]["field"] == 1
    assert list(summary["schema"]["create_tables"]) == ["Interações"]
    assert summary["schema"]["create_fields"] == ["Interações.user"]  # its inverse in Usuários comes with it
    assert {(m["table"], m["field"]) for m in summary["schema"]["manual"]} == {("Interações", "Criado em")}
    assert _fields(gateway).get("Interações") is None  # the plan wrote nothing

    result = execute_restore(settings, gateway, plan)

    assert result.status == "ok"
    assert result.created["Interações"] == len(before["Interações"])
    # the schema is back: same fields, same types (the computed one aside, listed for a person)
    after = _fields(gateway)
    assert _writable(after) == _writable(schema_before)
    assert after["Usuários"] == schema_before["Usuários"]
    assert _shape(gateway, TABLES) == shape_before  # options, descriptions, the single-link preference
    # field by field, link by link, on both sides (Usuários' links to the new records come with them)
    assert_same_state(
        _comparable(before), _comparable(snapshot(gateway, ["Usuários", "Interações"])), result.plan.id_map
    )
    # the manual list: a 0600 file in a 0700 folder inside the data dir, named in the summary
    path = result.summary()["manual_file"]
    assert path and path.startswith(str(settings.paths.data_dir))
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    assert [(f["table"], f["field"], f["type"]) for f in doc["fields"]] == [("Interações", "Criado em", "createdTime")]
    assert {v["name"] for v in doc["views"]["Interações"]} == {"Recentes", "Últimos 7 dias", "WhatsApp pendentes"}
    import os

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    # run again: nothing left to create or write
    again = plan_restore(settings, gateway, done.manifest.id, tables=tables)
    assert again.writes == 0 and not again.schema.writes


def test_a_deleted_table_restore_that_fails_half_way_resumes_without_duplicates(settings, gateway, small):
    before = snapshot(gateway, TABLES)
    done = run_backup(settings, gateway, "complete")
    _delete_table(small, SOURCE, "Interações")
    gateway.sleep = lambda s: None
    creates: list[str] = []

    def fail_after_two_batches(method: str, route: str, status: int) -> None:
        if method == "POST" and route == "create" and status == 200:
            creates.append(route)
            if len(creates) == 2:
                small.app.set_faults(FaultConfig(rate_500=1.0, routes=("create",)))

    small.app.observers.append(fail_after_two_batches)
    with pytest.raises(errors.BestStagError, match="500"):
        _restore(settings, gateway, done.manifest.id)
    small.app.observers.clear()
    small.app.set_faults(FaultConfig())
    assert 0 < small.store.count(SOURCE, "Interações") < len(before["Interações"])

    again = plan_restore(settings, gateway, done.manifest.id)
    assert again.resumed and not again.schema.writes  # the table and its link were made by the first run
    result = execute_restore(settings, gateway, again)

    assert small.store.count(SOURCE, "Interações") == len(before["Interações"])
    assert_same_state(_comparable(before), _comparable(snapshot(gateway, TABLES)), result.plan.id_map)


def test_a_deleted_table_whose_links_were_left_as_text(settings, gateway, small):
    before = snapshot(gateway, ["Usuários", "Interações"])
    done = run_backup(settings, gateway, "complete")
    _delete_table(small, SOURCE, "Interações", links_to_text=True)
    # restoring Usuários too would turn its text field back into links: refused, nothing written
    with pytest.raises(errors.SchemaConflict, match=r"Usuários\.Interações is singleLineText there"):
        plan_restore(settings, gateway, done.manifest.id)

    result = _restore(settings, gateway, done.manifest.id, tables=["Interações"])

    assert any("Usuários.Interações is a singleLineText field" in w for w in result.plan.warnings)
    assert _fields(gateway)["Usuários"]["Interações 2"] == "multipleRecordLinks"
    # the links are all there, on both sides; the inverse has Airtable's new name until a person renames it
    after = snapshot(gateway, ["Usuários", "Interações"])
    for rec in after["Usuários"].values():
        rec["fields"].pop("Interações", None)  # the text left by the deletion
        if "Interações 2" in rec["fields"]:
            rec["fields"]["Interações"] = rec["fields"].pop("Interações 2")
        rec["types"]["Interações"] = "multipleRecordLinks"
        rec["targets"]["Interações"] = "Interações"
    assert_same_state(_comparable(before), _comparable(after), result.plan.id_map)


def _new_base_restore(settings: Any, gateway: Any, backup_id: str, name: str, **kw: Any) -> Any:
    plan = plan_restore(settings, gateway, backup_id, new_base=NewBase(name, WORKSPACE), **kw)
    return plan, execute_restore(settings, gateway, plan)


def _check_whole_base(gateway: Any, target: Any, before: dict[str, Any], result: Any, tables: list[str]) -> None:
    """Every writable field with its type, every record field by field, every link (remapped) and every
    attachment's bytes (sha256); the manual list is exactly the computed fields of the source."""
    schema = {t["name"]: t for t in gateway.schema()["tables"]}
    ids = {t["id"]: t["name"] for t in schema.values()}
    outside = {  # links to tables not restored cannot be made (the plan warns)
        (t, f["name"])
        for t in tables
        for f in schema[t]["fields"]
        if f["type"] == "multipleRecordLinks" and ids[f["options"]["linkedTableId"]] not in tables
    }
    got, want = _shape(target, tables), _shape(gateway, tables)
    want = {t: {n: ty for n, ty in want[t].items() if (t, n) not in outside} for t in tables}
    assert {t: got.get(t) for t in tables} == want
    assert_same_state(
        {t: v for t, v in _comparable(before).items() if t in tables},
        _comparable(snapshot(target, tables)),
        result.plan.id_map,
    )
    doc = json.loads(Path(result.manual_file).read_text(encoding="utf-8"))
    assert {(f["table"], f["field"]) for f in doc["fields"]} == _computed(gateway, tables)
    if "Tarefas" in tables:
        lookup = next(f for f in doc["fields"] if f["type"] == "multipleLookupValues")
        details = lookup["details"]
        assert (details["link"], details["linked_table"], details["linked_field"]) == (
            "responsável",
            "Usuários",
            "email",
        )


def test_a_whole_base_into_a_new_one(settings, gateway, small):
    before = snapshot(gateway, TABLES)
    done = run_backup(settings, gateway, "complete")
    assert done.manifest.attachments_count > 0

    plan, result = _new_base_restore(settings, gateway, done.manifest.id, "BestStag (restaurada)")

    # the dry run's plan: every table, made in an empty base
    assert set(plan.summary()["schema"]["create_tables"]) == set(TABLES)
    assert plan.summary()["target_base"] == "new base 'BestStag (restaurada)'"
    assert result.status == "ok" and result.dropped_links == 0
    new_id = result.plan.target_base
    assert new_id != SOURCE and small.store.has_base(new_id)
    assert result.summary()["schema"]["done"]["tables_created"] == TABLES
    _check_whole_base(gateway, gateway_for_base(gateway, new_id), before, result, TABLES)
    # a second run finds the base it made (the journal kept its id): nothing is made twice
    again = plan_restore(settings, gateway, done.manifest.id, new_base=NewBase("BestStag (restaurada)", WORKSPACE))
    assert again.target_base == new_id and again.writes == 0
    assert [b["name"] for b in small.store.list_bases()].count("BestStag (restaurada)") == 1


def test_a_new_base_is_made_once_when_the_run_is_killed_and_answers_are_lost(settings, gateway, small, monkeypatch):
    tables = ["Usuários", "Interações"]
    before = snapshot(gateway, tables)
    done = run_backup(settings, gateway, "critical")
    gateway.sleep = lambda s: None
    bases = len(small.store.list_bases())
    # killed right after Airtable applied the create-base request, before its answer was read
    real = type(gateway).create_base

    def applied_then_killed(self: Any, *args: Any, **kw: Any) -> Any:
        real(self, *args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(gateway), "create_base", applied_then_killed)
    with pytest.raises(KeyboardInterrupt):
        _new_base_restore(settings, gateway, done.manifest.id, "Outra")
    monkeypatch.setattr(type(gateway), "create_base", real)
    assert len(small.store.list_bases()) == bases + 1
    # the next run finds that base; every metadata write it makes has its answer lost as well
    small.app.set_faults(FaultConfig(rate_drop_after=1.0, routes=("meta_write",)))
    _, result = _new_base_restore(settings, gateway, done.manifest.id, "Outra")
    small.app.set_faults(FaultConfig())

    assert result.status == "ok"
    assert [b["name"] for b in small.store.list_bases()].count("Outra") == 1
    assert result.summary()["schema"]["done"]["found"] == ["Interações.user"]
    _check_whole_base(gateway, gateway_for_base(gateway, result.plan.target_base), before, result, tables)


def test_a_base_name_that_exists_is_refused_before_anything_is_written(settings, gateway, small):
    done = run_backup(settings, gateway, "critical")
    bases = small.store.list_bases()
    with pytest.raises(errors.BadInput, match="exists already"):
        _new_base_restore(settings, gateway, done.manifest.id, bases[0]["name"])
    assert small.store.list_bases() == bases


def test_a_chain_into_an_empty_base(settings, gateway, small):
    run_backup(settings, gateway, "complete")
    for step in range(2):
        _mutate(gateway, step)
        last = run_backup(settings, gateway, "incremental")
    assert last.manifest.parent is not None
    before = snapshot(gateway, TABLES)
    # an empty base: Airtable's bases always hold a table; this one has nothing of the backup's
    small.store.create_base(
        {"name": "Vazia", "tables": [{"name": "Table 1", "fields": [{"name": "Name", "type": "singleLineText"}]}]},
        "appEmptyTarget000",
        seed=11,
    )

    result = _restore(settings, gateway, last.manifest.id, target_base="appEmptyTarget000")

    assert result.status == "ok"
    _check_whole_base(
        gateway, gateway_for_base(gateway, "appEmptyTarget000"), before, result, list(last.manifest.tables)
    )


def test_lost_answers_and_a_kill_create_no_table_or_field_twice(settings, gateway, small, monkeypatch):
    before = snapshot(gateway, TABLES)
    done = run_backup(settings, gateway, "complete")
    small.store.create_base(
        {"name": "Vazia", "tables": [{"name": "Table 1", "fields": [{"name": "Name", "type": "singleLineText"}]}]},
        "appEmptyTarget000",
        seed=11,
    )
    gateway.sleep = lambda s: None
    # every metadata write is applied, then its answer is lost
    small.app.set_faults(FaultConfig(rate_drop_after=1.0, routes=("meta_write",)))
    # ... and the first run dies at its third table's create (as a kill would: after the write)
    calls = {"n": 0}
    real = schema_plan._once

    def dies_at_the_third_table(tgw: Any, what: str, send: Any, find: Any) -> Any:
        if what.startswith("create table"):
            calls["n"] += 1
            if calls["n"] == 3:
                try:
                    send()
                except errors.WriteOutcomeUnknown:
                    raise KeyboardInterrupt from None
        return real(tgw, what, send, find)

    monkeypatch.setattr(schema_plan, "_once", dies_at_the_third_table)
    with pytest.raises(KeyboardInterrupt):
        _restore(settings, gateway, done.manifest.id, target_base="appEmptyTarget000")
    target = gateway_for_base(gateway, "appEmptyTarget000")
    assert len(_fields(target)) == 1 + 3  # Table 1 and three tables, the last one whose answer was lost
    monkeypatch.setattr(schema_plan, "_once", real)

    result = _restore(settings, gateway, done.manifest.id, target_base="appEmptyTarget000")

    small.app.set_faults(FaultConfig())
    assert result.status == "ok"
    # the second run planned what the first left out; every create's answer was lost, and each was found
    done_schema = result.summary()["schema"]["done"]
    planned = [t.name for t in result.plan.schema.tables] + [f.label() for f in result.plan.schema.fields]
    assert len(planned) >= 3 and done_schema["tables_created"] == [] and done_schema["fields_created"] == []
    assert done_schema["found"] == planned
    # exactly the source's tables and fields: no duplicate, no numbered inverse ("Usuários 2")
    got = _fields(target)
    assert sorted(got) == sorted(["Table 1", *TABLES])
    assert _writable({t: got[t] for t in TABLES}) == _writable({t: _fields(gateway)[t] for t in TABLES})
    assert_same_state(_comparable(before), _comparable(snapshot(target, TABLES)), result.plan.id_map)


def test_a_whole_base_into_a_new_one_over_http(tmp_path, monkeypatch):
    """The same, through `sandbox serve` (the metadata writes as HTTP requests, the wire trap watching)."""
    import os

    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.sandbox import Sandbox

    server = tmp_path / "server"
    (server / "sandbox").mkdir(parents=True)
    sb = Sandbox(server / "sandbox" / "base.sqlite")
    sb.ensure_sample(scale=0.05)  # small: about 100 records
    sb.close()
    with serve_sandbox({**os.environ, "BESTSTAG_DATA_DIR": str(server)}) as url:
        monkeypatch.setenv("BESTSTAG_SANDBOX", "")
        monkeypatch.setenv("AIRTABLE_TOKEN", "sandbox")
        monkeypatch.setenv("AIRTABLE_BASE_ID", SOURCE)
        monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", url)
        settings = load_config()
        gateway = Gateway(settings, source="test")
        try:
            assert gateway.sandbox is None  # HTTP, not the in-process sandbox
            before = snapshot(gateway, TABLES)
            done = run_backup(settings, gateway, "complete")
            assert done.manifest.attachments_count > 0
            _, result = _new_base_restore(settings, gateway, done.manifest.id, "Recuperada")
            assert result.status == "ok"
            target = gateway_for_base(gateway, result.plan.target_base)
            _check_whole_base(gateway, target, before, result, TABLES)
            assert [b["name"] for b in gateway.list_bases()].count("Recuperada") == 1
        finally:
            gateway.close()


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_dry_run_shows_the_schema_plan_and_the_restore_prints_the_manual_list(cli, settings, small):
    r = cli("--json", "backup", "run", "--type", "critical")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    bases = len(small.store.list_bases())
    records = small.store.count(SOURCE, "Usuários") + small.store.count(SOURCE, "Interações")
    # a new base: the plan against an empty base, nothing written
    r = cli("--json", "backup", "restore", backup_id, "--new-base", "Nova", "--workspace", WORKSPACE, "--dry-run")
    assert r.exit_code == 0, r
    plan = r.json()
    assert plan["dry_run"] and plan["mode"] == "new base" and plan["target_base"] == "new base 'Nova'"
    assert set(plan["schema"]["create_tables"]) == {"Usuários", "Interações"}
    assert plan["planned_writes"]["table"] == 2 and plan["planned_writes"]["create"] == records
    assert {m["field"] for m in plan["schema"]["manual"]} == {"Criado em", "Modificado em", "ID"}
    assert len(small.store.list_bases()) == bases
    r = cli("backup", "restore", backup_id, "--new-base", "Nova", "--workspace", WORKSPACE, "--dry-run")
    assert r.exit_code == 0 and "Usuários\tcreate table\tNome, email" in r.stdout, r
    assert "Interações\tcreate field\tuser" in r.stdout and "Usuários\tID\tautoNumber\t" in r.stdout, r
    # bad targets: one line, exit 2, nothing written
    for extra, needle in [
        (("--new-base", "Nova"), "needs --workspace"),
        (("--workspace", WORKSPACE), "goes with --new-base"),
        (("--new-base", "Nova", "--workspace", "wsp1"), "not a workspace id"),
        (("--new-base", "Nova", "--workspace", WORKSPACE, "--base", "appBestStagSandbx"), "two targets"),
        (("--new-base", "", "--workspace", WORKSPACE), "not a base name"),
    ]:
        r = cli("backup", "restore", backup_id, "--yes", *extra)
        assert r.exit_code == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r)
    assert len(small.store.list_bases()) == bases

    r = cli("--json", "backup", "restore", backup_id, "--new-base", "Nova", "--workspace", WORKSPACE, "--yes")
    assert r.exit_code == 0, r
    out = r.json()
    assert out["status"] == "ok" and out["writes"]["table"] == 2 and out["writes"]["create"] == records
    assert out["schema"]["done"]["tables_created"] == ["Usuários", "Interações"]
    manual = json.loads(Path(out["manual_file"]).read_text(encoding="utf-8"))
    assert {f["field"] for f in manual["fields"]} == {"Criado em", "Modificado em", "ID"}
    assert small.store.count(out["target_base"], "Interações") == small.store.count(SOURCE, "Interações")
    # run again: the same base, nothing to do
    r = cli("--json", "backup", "restore", backup_id, "--new-base", "Nova", "--workspace", WORKSPACE, "--yes")
    assert r.exit_code == 0 and r.json()["target_base"] == out["target_base"] and r.json()["records"] == 0, r


def test_every_creatable_type_is_recreated_with_its_options(settings, gateway, sandbox):
    """Each field type the API can create, with the options a base shows, through the sandbox's create
    endpoints; the recreated schema shows the same options (choices by name and colour)."""
    fields: list[dict[str, Any]] = [
        {"name": "Nome", "type": "singleLineText", "description": "o primário"},
        {"name": "Notas", "type": "multilineText"},
        {"name": "Rico", "type": "richText"},
        {"name": "Email", "type": "email"},
        {"name": "Site", "type": "url"},
        {"name": "Fone", "type": "phoneNumber"},
        {"name": "Código", "type": "barcode"},
        {"name": "Qtd", "type": "number", "options": {"precision": 3}},
        {"name": "Preço", "type": "currency", "options": {"precision": 2, "symbol": "€"}},
        {"name": "Taxa", "type": "percent", "options": {"precision": 1}},
        {"name": "Tempo", "type": "duration", "options": {"durationFormat": "h:mm:ss"}},
        {"name": "Nota", "type": "rating", "options": {"icon": "heart", "max": 10, "color": "redBright"}},
        {"name": "Feito", "type": "checkbox", "options": {"icon": "star", "color": "yellowBright"}},
        {"name": "Dia", "type": "date", "options": {"dateFormat": {"name": "european", "format": "D/M/YYYY"}}},
        {
            "name": "Quando",
            "type": "dateTime",
            "options": {
                "dateFormat": {"name": "us", "format": "M/D/YYYY"},
                "timeFormat": {"name": "12hour", "format": "h:mma"},
                "timeZone": "Europe/Lisbon",
            },
        },
        {
            "name": "Cor",
            "type": "singleSelect",
            "options": {"choices": [{"id": "selAAAAAAAAAAAAA1", "name": "azul", "color": "blueBright"}]},
        },
        {
            "name": "Cores",
            "type": "multipleSelects",
            "options": {
                "choices": [
                    {"id": "selAAAAAAAAAAAAA2", "name": "a", "color": "greenLight1"},
                    {"id": "selAAAAAAAAAAAAA3", "name": "b", "color": "grayDark1"},
                ]
            },
        },
        {"name": "Anexos", "type": "multipleAttachments", "options": {"isReversed": False}},
        {"name": "Dono", "type": "singleCollaborator"},
        {"name": "Equipe", "type": "multipleCollaborators"},
    ]
    for i, f in enumerate(fields):
        f["id"] = f"fld{i:014d}"
    doc = {"tables": [{"id": "tbl00000000000001", "name": "Tudo", "primaryFieldId": fields[0]["id"], "fields": fields}]}
    sandbox.store.create_base(
        {"name": "Vazia", "tables": [{"name": "Table 1", "fields": [{"name": "Name", "type": "singleLineText"}]}]},
        "appEveryTypeBase0",
        seed=5,
    )
    target = gateway_for_base(gateway, "appEveryTypeBase0")
    plan = plan_schema(doc, target.schema(), ["Tudo"])
    assert not plan.manual and [len(t.fields) for t in plan.tables] == [len(fields)]

    outcome = schema_plan.execute_schema(target, plan)

    assert outcome.tables_created == ["Tudo"]
    made = {f["name"]: f for f in next(t for t in target.schema()["tables"] if t["name"] == "Tudo")["fields"]}
    for f in fields:
        got = made[f["name"]]
        assert (got["type"], got.get("description")) == (f["type"], f.get("description")), f["name"]
        want, have = dict(f.get("options") or {}), dict(got.get("options") or {})
        if "choices" in want:
            want["choices"] = [(c["name"], c["color"]) for c in want["choices"]]
            have["choices"] = [(c["name"], c["color"]) for c in have["choices"]]
        assert have == want, f["name"]
    assert plan_schema(doc, target.schema(), ["Tudo"]).writes == 0  # nothing left to create
