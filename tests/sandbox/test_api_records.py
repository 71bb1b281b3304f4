"""pyairtable 3.5 against the sandbox: every records endpoint, pagination, schema, uploads."""

from __future__ import annotations

import base64

import pytest
import requests

from beststag_cli import clock
from beststag_cli.sandbox import SANDBOX_BASE_ID, SANDBOX_ENDPOINT

BASE = SANDBOX_BASE_ID


@pytest.fixture
def calls(sandbox):  # type: ignore[no-untyped-def]
    seen: list[tuple[str, str, int]] = []
    sandbox.app.observers.append(lambda m, r, s: seen.append((m, r, s)))
    return seen


def test_iterates_over_more_than_1000_records_in_pages(api, sandbox, calls) -> None:
    table = api.table(BASE, "Interações")
    total = sandbox.store.count(BASE, "Interações")
    assert total >= 1000
    records = table.all()
    assert len(records) == total
    assert len({r["id"] for r in records}) == total
    assert len(calls) == -(-total // 100)  # one request per page of 100
    pages = list(table.iterate(page_size=37))
    assert [len(p) for p in pages[:-1]] == [37] * (len(pages) - 1)
    assert sum(len(p) for p in pages) == total


def test_default_order_is_creation_order_and_max_records_caps_pages(api, calls) -> None:
    table = api.table(BASE, "Usuários")
    ids = [r["id"] for r in table.all()]
    first = table.all(max_records=30, page_size=7)
    assert [r["id"] for r in first] == ids[:30]
    assert len(calls) == 1 + 5  # the full listing, then 5 pages of 7 capped at 30


def test_fields_sort_and_formula(api) -> None:
    table = api.table(BASE, "Usuários")
    rows = table.all(formula="{status} = 'Ativo'", fields=["Nome", "status"], sort=["Nome"])
    assert rows and all(set(r["fields"]) <= {"Nome", "status"} for r in rows)
    assert all(r["fields"]["status"] == "Ativo" for r in rows)
    names = [r["fields"]["Nome"] for r in rows]
    assert names == sorted(names, key=str.casefold)
    everyone = table.all(fields=["status"])
    assert len(rows) == sum(1 for r in everyone if r["fields"].get("status") == "Ativo")
    desc = table.all(sort=["-ID"], fields=["ID"], max_records=3)
    assert [r["fields"]["ID"] for r in desc] == sorted((r["fields"]["ID"] for r in desc), reverse=True)


def test_long_formula_goes_by_post_list_records(api, calls) -> None:
    table = api.table(BASE, "Usuários")
    wanted = [r["id"] for r in table.all(max_records=40)]
    calls.clear()
    formula = (
        "OR("
        + ",".join(f"RECORD_ID()='{rid}'" for rid in wanted)
        + ","
        + ",".join(f"{{Nome}}='nobody-{i:05d}-{'x' * 60}'" for i in range(200))
        + ")"
    )
    assert len(formula) > 16000
    rows = table.all(formula=formula, page_size=15)
    assert sorted(r["id"] for r in rows) == sorted(wanted)
    assert calls and all(m == "POST" and r == "list" for m, r, _ in calls)
    assert len(calls) == 3


def test_get_one_record_and_unknown_record(api) -> None:
    table = api.table(BASE, "Tarefas")
    rec = table.first()
    assert rec is not None
    assert table.get(rec["id"]) == rec
    with pytest.raises(requests.HTTPError) as e:
        table.get("rec00000000000000")
    assert e.value.response.status_code == 404
    assert e.value.response.json() == {"error": "NOT_FOUND"}


def test_batch_create_update_upsert_delete(api, sandbox, calls) -> None:
    table = api.table(BASE, "Tarefas")
    before = sandbox.store.count(BASE, "Tarefas")
    created = table.batch_create([{"Título": f"Tarefa {i}", "estimativa (h)": i} for i in range(12)])
    assert len(created) == 12 and len(calls) == 2  # chunks of 10
    assert sandbox.store.count(BASE, "Tarefas") == before + 12
    updated = table.batch_update([{"id": r["id"], "fields": {"estimativa (h)": 100}} for r in created])
    assert all(r["fields"]["estimativa (h)"] == 100 and r["fields"]["Título"].startswith("Tarefa") for r in updated)
    # PUT replaces: fields not sent are cleared
    replaced = table.update(created[0]["id"], {"Título": "Só título"}, replace=True)
    assert "estimativa (h)" not in replaced["fields"]
    result = table.batch_upsert(
        [{"fields": {"Título": "Tarefa 3", "estimativa (h)": 7}}, {"fields": {"Título": "Nova", "concluída": True}}],
        key_fields=["Título"],
    )
    assert result["updatedRecords"] == [created[3]["id"]]
    assert len(result["createdRecords"]) == 1
    assert table.get(created[3]["id"])["fields"]["estimativa (h)"] == 7
    ids = [r["id"] for r in created] + result["createdRecords"]
    deleted = table.batch_delete(ids)
    assert all(d["deleted"] for d in deleted) and len(deleted) == 13
    assert sandbox.store.count(BASE, "Tarefas") == before


def test_upsert_with_two_matches_fails_whole_request(api, sandbox) -> None:
    table = api.table(BASE, "Tarefas")
    table.batch_create([{"Título": "dup"}, {"Título": "dup"}])
    n = sandbox.store.count(BASE, "Tarefas")
    with pytest.raises(requests.HTTPError) as e:
        table.batch_upsert(
            [{"fields": {"Título": "dup", "estimativa (h)": 1}}, {"fields": {"Título": "z"}}], key_fields=["Título"]
        )
    assert e.value.response.status_code == 422
    assert sandbox.store.count(BASE, "Tarefas") == n


def test_empty_values_are_omitted_and_checkbox_false_disappears(api) -> None:
    table = api.table(BASE, "Tarefas")
    rec = table.create({"Título": "x", "descrição": "", "concluída": False, "tags": []})
    assert set(rec["fields"]) >= {"Título"}
    assert "descrição" not in rec["fields"] and "concluída" not in rec["fields"] and "tags" not in rec["fields"]
    rec = table.update(rec["id"], {"concluída": True})
    assert rec["fields"]["concluída"] is True
    rec = table.update(rec["id"], {"concluída": False})
    assert "concluída" not in rec["fields"]


def test_links_keep_inverse_in_sync_and_lookups_follow(api) -> None:
    users = api.table(BASE, "Usuários")
    tasks = api.table(BASE, "Tarefas")
    u = users.create({"Nome": "Ana D'Ávila", "email": "ana@example.com"})
    t = tasks.create({"Título": "ligar", "responsável": [u["id"]]})
    assert t["fields"]["responsável"] == [u["id"]]
    assert t["fields"]["Email do responsável"] == ["ana@example.com"]
    assert t["id"] in users.get(u["id"])["fields"]["Tarefas"]
    tasks.update(t["id"], {"responsável": []})
    assert "Tarefas" not in users.get(u["id"])["fields"]
    tasks.update(t["id"], {"responsável": [u["id"]]})
    users.delete(u["id"])
    assert "responsável" not in tasks.get(t["id"])["fields"]


def test_computed_fields_created_modified_autonumber(api) -> None:
    clock.set_now("2026-01-10T10:00:00Z")
    users = api.table(BASE, "Usuários")
    u = users.create({"Nome": "Bia"})
    assert u["createdTime"] == "2026-01-10T10:00:00.000Z"
    assert u["fields"]["Criado em"] == "2026-01-10T10:00:00.000Z"
    assert isinstance(u["fields"]["ID"], int)
    clock.set_now("2026-01-11T12:30:00Z")
    u2 = users.update(u["id"], {"status": "Ativo"})
    assert u2["fields"]["Modificado em"] == "2026-01-11T12:30:00.000Z"
    assert users.all(formula="IS_SAME(LAST_MODIFIED_TIME({status}), '2026-01-11', 'day')", fields=["Nome"]) == [
        {"id": u["id"], "createdTime": u["createdTime"], "fields": {"Nome": "Bia"}}
    ]
    created_ids = {r["id"] for r in users.all(formula="CREATED_TIME() = DATETIME_PARSE('2026-01-10T10:00:00Z')")}
    assert created_ids == {u["id"]}


def test_typecast_coerces_and_creates_choices(api, sandbox) -> None:
    table = api.table(BASE, "Tarefas")
    with pytest.raises(requests.HTTPError) as e:
        table.create({"Título": "x", "prioridade": "Altíssima"})
    assert "INVALID_MULTIPLE_CHOICE_OPTIONS" in str(e.value)
    rec = table.create(
        {
            "Título": 12,
            "prioridade": "Altíssima",
            "estimativa (h)": "3.5",
            "concluída": "true",
            "vencimento": "2026-03-04T10:00:00Z",
        },
        typecast=True,
    )
    f = rec["fields"]
    assert f["Título"] == "12" and f["prioridade"] == "Altíssima" and f["estimativa (h)"] == 3.5
    assert f["concluída"] is True and f["vencimento"] == "2026-03-04"
    choices = api.base(BASE).schema().table("Tarefas").field("prioridade").options.choices
    assert "Altíssima" in [c.name for c in choices]


def test_schema_bases_and_whoami(api) -> None:
    bases = api.bases()
    assert [b.id for b in bases] == [BASE]
    schema = api.base(BASE).schema()
    names = [t.name for t in schema.tables]
    for name in ("Usuários", "Interações", "Tarefas", "Eventos", "Memória Contextual", "Logs do Sistema"):
        assert name in names
    usr = schema.table("Usuários")
    assert usr.primary_field_id == usr.field("Nome").id
    status = usr.field("status")
    assert status.type == "singleSelect" and [c.name for c in status.options.choices] == ["Ativo", "Inativo"]
    inter = schema.table("Interações")
    link = inter.field("user")
    assert link.options.linked_table_id == usr.id
    assert usr.field(link.options.inverse_link_field_id).options.inverse_link_field_id == link.id
    assert all(v.id.startswith("viw") and len(v.id) == 17 for t in schema.tables for v in t.views)
    assert api.whoami()["id"].startswith("usr")


def test_accented_table_names_and_table_ids(api, sandbox) -> None:
    by_name = api.table(BASE, "Memória Contextual").all()
    tid = api.base(BASE).schema().table("Memória Contextual").id
    by_id = api.table(BASE, tid).all()
    assert by_name == by_id and len(by_name) == sandbox.store.count(BASE, "Memória Contextual")
    s = requests.Session()
    sandbox.mount(s)
    r = s.get(
        f"{SANDBOX_ENDPOINT}/v0/{BASE}/Mem%C3%B3ria%20Contextual?pageSize=1",
        headers={"Authorization": "Bearer sandbox"},
    )
    assert r.status_code == 200 and len(r.json()["records"]) == 1


def test_return_fields_by_field_id_and_views(api) -> None:
    table = api.table(BASE, "Usuários")
    schema = api.base(BASE).schema().table("Usuários")
    rec = table.first(use_field_ids=True)
    assert rec is not None and all(k.startswith("fld") for k in rec["fields"])
    assert schema.field("Nome").id in rec["fields"]
    views = [v.name for v in schema.views]
    assert len(views) >= 1
    for v in views:
        assert isinstance(table.all(view=v, max_records=5), list)


def test_cell_format_string(api) -> None:
    rows = api.table(BASE, "Interações").all(
        cell_format="string",
        time_zone="America/Sao_Paulo",
        user_locale="pt-br",
        max_records=3,
        fields=["user", "timestamp"],
    )
    assert rows and all(isinstance(v, str) for r in rows for v in r["fields"].values())
    assert all(not v.startswith("rec") for r in rows for k, v in r["fields"].items() if k == "user")


def test_upload_attachment_and_download_url_expires(api, sandbox) -> None:
    table = api.table(BASE, "Tarefas")
    rec = table.create({"Título": "com anexo"})
    content = b"%PDF-1.4 sandbox \x00\xff bytes"
    out = table.upload_attachment(rec["id"], "anexos", "nota.pdf", content=content, content_type="application/pdf")
    field_id = api.base(BASE).schema().table("Tarefas").field("anexos").id
    att = out["fields"][field_id][0]
    assert att["filename"] == "nota.pdf" and att["size"] == len(content) and att["type"] == "application/pdf"
    got = api.session.get(att["url"])
    assert got.status_code == 200 and got.content == content
    # attachments can be copied to another record by URL, as Airtable fetches URLs
    copy = table.create({"Título": "cópia", "anexos": [{"url": att["url"]}]})
    assert api.session.get(copy["fields"]["anexos"][0]["url"]).content == content
    clock.advance(2 * 3600 + 5)
    assert api.session.get(att["url"]).status_code == 410
    fresh = table.get(rec["id"])["fields"]["anexos"][0]["url"]
    assert api.session.get(fresh).content == content


def test_sample_attachments_download(api) -> None:
    rows = api.table(BASE, "Usuários").all(formula="{avatar}", fields=["avatar"])
    assert rows
    att = rows[0]["fields"]["avatar"][0]
    data = api.session.get(att["url"]).content
    assert len(data) == att["size"] > 0


def test_raw_upload_body_shape(sandbox) -> None:
    s = requests.Session()
    sandbox.mount(s)
    h = {"Authorization": "Bearer sandbox"}
    rec = s.post(f"{SANDBOX_ENDPOINT}/v0/{BASE}/Tarefas", json={"fields": {"Título": "raw"}}, headers=h).json()
    body = {"contentType": "text/plain", "file": base64.b64encode(b"ola").decode(), "filename": "a.txt"}
    r = s.post(f"{SANDBOX_ENDPOINT}/v0/{BASE}/{rec['id']}/anexos/uploadAttachment", json=body, headers=h)  # own host
    assert r.status_code == 200
    assert r.json()["id"] == rec["id"] and next(iter(r.json()["fields"])).startswith("fld")


def test_two_bases_from_one_spec_never_share_rows(sandbox, api) -> None:
    from beststag_cli.sandbox.seed import load_sample

    load_sample(sandbox.store, base_id="appSecondBase0000", with_records=False)  # the same seed as the sample
    first = {t.id for t in api.base(BASE).schema().tables}
    second = {t.id for t in api.base("appSecondBase0000").schema().tables}
    assert not first & second
    assert api.table("appSecondBase0000", "Usuários").all() == []
    api.table("appSecondBase0000", "Usuários").create({"Nome": "só na segunda"})
    assert len(api.table(BASE, "Usuários").all()) == 100
