"""The sample BestStag base: schema shape, determinism and the invariants the storage relies on."""

from __future__ import annotations

import re
import struct
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli import clock
from beststag_cli.sandbox import sample
from beststag_cli.sandbox.sample import (
    BASE_COUNTS,
    SAMPLE_BASE_ID,
    SAMPLE_BASE_NAME,
    SampleAttachment,
    SampleData,
    SampleRecord,
    generate_sample,
    sample_schema,
)

NOW = datetime(2025, 3, 15, 14, 30, 12, 345678, tzinfo=UTC)
LOCAL = timezone(timedelta(hours=-3))
WINDOW = timedelta(days=60)

ALLOWED_OPTIONS: dict[str, set[str]] = {
    "singleLineText": set(),
    "multilineText": set(),
    "email": set(),
    "url": set(),
    "phoneNumber": set(),
    "number": {"precision"},
    "percent": {"precision"},
    "currency": {"precision", "symbol"},
    "date": {"dateFormat"},
    "dateTime": {"dateFormat", "timeFormat", "timeZone"},
    "checkbox": {"icon", "color"},
    "singleSelect": {"choices"},
    "multipleSelects": {"choices"},
    "multipleAttachments": {"isReversed"},
    "multipleRecordLinks": {"linkedTable", "inverseField", "prefersSingleRecordLink"},
    "multipleLookupValues": {"recordLinkField", "fieldInLinkedTable"},
    "createdTime": set(),
    "lastModifiedTime": {"referencedFields"},
    "autoNumber": set(),
}
READ_ONLY = {"createdTime", "lastModifiedTime", "autoNumber", "multipleLookupValues"}
TEXT_TYPES = {"singleLineText", "multilineText", "email", "url", "phoneNumber"}
# Fields that record something that already happened; the rest (due dates, event times, expiry)
# may look ahead.
PAST_FIELDS = {
    ("Usuários", "data de cadastro"),
    ("Usuários", "último acesso"),
    ("Interações", "timestamp"),
    ("Logs do Sistema", "timestamp"),
    ("Métricas", "coletado em"),
}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def data() -> SampleData:
    return generate_sample(seed=42, scale=1, now=NOW)


def _tables(schema: dict) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in schema["tables"]}


def _fields(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in table["fields"]}


def _parse_dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _all_strings(data: SampleData) -> list[str]:
    out: list[str] = []
    for records in data.tables.values():
        for record in records:
            for value in record.fields.values():
                if isinstance(value, str):
                    out.append(value)
    return out


def _total(data: SampleData) -> int:
    return sum(len(records) for records in data.tables.values())


# -- schema ----------------------------------------------------------------------------------------


def test_identity_constants() -> None:
    assert SAMPLE_BASE_ID == "appBestStagSandbx"
    assert len(SAMPLE_BASE_ID) == 17 and SAMPLE_BASE_ID.startswith("app")
    assert SAMPLE_BASE_NAME == "BestStag"
    assert sample_schema()["name"] == SAMPLE_BASE_NAME


def test_schema_is_a_fresh_copy() -> None:
    first = sample_schema()
    first["tables"][0]["fields"].clear()
    assert sample_schema()["tables"][0]["fields"]


def test_seven_tables_in_order() -> None:
    names = [t["name"] for t in sample_schema()["tables"]]
    assert names == [
        "Usuários",
        "Interações",
        "Tarefas",
        "Eventos",
        "Memória Contextual",
        "Logs do Sistema",
        "Métricas",
    ]
    assert names == list(BASE_COUNTS)


def test_field_types_and_options_are_allowed() -> None:
    for table in sample_schema()["tables"]:
        names = [f["name"] for f in table["fields"]]
        assert len(names) == len(set(names)), table["name"]
        for field in table["fields"]:
            assert set(field) <= {"name", "type", "description", "options"}, field
            assert field["type"] in ALLOWED_OPTIONS, field
            options = field.get("options", {})
            assert set(options) <= ALLOWED_OPTIONS[field["type"]], field
            if "precision" in options:
                assert 0 <= options["precision"] <= 8
            if field["type"] in ("singleSelect", "multipleSelects"):
                choices = [c["name"] for c in options["choices"]]
                assert choices and len(choices) == len(set(choices))
            if field["type"] == "dateTime":
                assert options["timeZone"] == "America/Sao_Paulo"


def test_primary_field_is_first_and_text() -> None:
    for table in sample_schema()["tables"]:
        primary = table["fields"][0]
        assert primary["type"] == "singleLineText", table["name"]
        assert table["description"]


def test_links_lookups_and_references_resolve() -> None:
    tables = _tables(sample_schema())
    inverse_seen: Counter[tuple[str, str]] = Counter()
    for table in tables.values():
        fields = _fields(table)
        for field in table["fields"]:
            options = field.get("options", {})
            if field["type"] == "multipleRecordLinks":
                target = tables[options["linkedTable"]]
                # The storage creates the inverse field: it must not clash with a declared field.
                assert options["inverseField"] not in _fields(target), field
                inverse_seen[(target["name"], options["inverseField"])] += 1
                assert isinstance(options["prefersSingleRecordLink"], bool)
            elif field["type"] == "multipleLookupValues":
                link = fields[options["recordLinkField"]]
                assert link["type"] == "multipleRecordLinks"
                target = _fields(tables[link["options"]["linkedTable"]])
                assert options["fieldInLinkedTable"] in target
            elif field["type"] == "lastModifiedTime":
                for name in options.get("referencedFields", []):
                    assert name in fields
    assert all(count == 1 for count in inverse_seen.values()), inverse_seen


def test_views() -> None:
    for table in sample_schema()["tables"]:
        fields = _fields(table)
        views = table["views"]
        assert views[0] == {"name": "Grid view", "type": "grid"}
        assert len({v["name"] for v in views}) == len(views)
        for view in views:
            assert view["type"] == "grid"
            for spec in view.get("sort", []):
                assert spec["field"] in fields, (table["name"], view["name"])
                assert spec["direction"] in ("asc", "desc")
            for name in re.findall(r"\{([^}]*)\}", view.get("filter", "")):
                assert name in fields, (table["name"], view["name"], name)


def test_spec_fields() -> None:
    tables = _tables(sample_schema())
    users = _fields(tables["Usuários"])
    assert users["status"]["type"] == "singleSelect"
    assert [c["name"] for c in users["status"]["options"]["choices"]] == ["Ativo", "Inativo"]
    interactions = _fields(tables["Interações"])
    assert interactions["timestamp"]["type"] == "dateTime"
    assert interactions["user"]["type"] == "multipleRecordLinks"
    assert interactions["user"]["options"]["linkedTable"] == "Usuários"
    assert interactions["user"]["options"]["prefersSingleRecordLink"] is True
    assert interactions["message"]["type"] in TEXT_TYPES
    tasks = _fields(tables["Tarefas"])
    assert tasks["Email do responsável"]["options"] == {"recordLinkField": "responsável", "fieldInLinkedTable": "email"}
    assert _fields(tables["Memória Contextual"])["relevância"]["type"] == "percent"
    assert [c["name"] for c in _fields(tables["Métricas"])["tipo"]["options"]["choices"]] == [
        "usage",
        "performance",
        "storage",
    ]
    assert [c["name"] for c in _fields(tables["Métricas"])["período"]["options"]["choices"]] == [
        "1h",
        "24h",
        "7d",
        "30d",
    ]


# -- generation ------------------------------------------------------------------------------------


def test_deterministic() -> None:
    a = generate_sample(seed=7, scale=0.3, now=NOW)
    b = generate_sample(seed=7, scale=0.3, now=NOW)
    assert a == b
    c = generate_sample(seed=8, scale=0.3, now=NOW)
    assert c != a
    assert [r.fields for r in c.tables["Interações"]] != [r.fields for r in a.tables["Interações"]]


def test_default_now_comes_from_the_clock() -> None:
    clock.set_now(NOW)
    try:
        assert generate_sample(scale=0.05) == generate_sample(scale=0.05, now=NOW)
    finally:
        clock.reset()


def test_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert generate_sample(scale=0.05, now=naive) == generate_sample(scale=0.05, now=NOW)


def test_scale_must_be_positive() -> None:
    with pytest.raises(ValueError):
        generate_sample(scale=0)


def test_schema_matches(data: SampleData) -> None:
    assert data.schema == sample_schema()
    assert list(data.tables) == [t["name"] for t in data.schema["tables"]]


def test_sizes(data: SampleData) -> None:
    assert 1800 <= _total(data) <= 2200
    assert {name: len(records) for name, records in data.tables.items()} == BASE_COUNTS
    small = generate_sample(scale=0.1, now=NOW)
    assert 180 <= _total(small) <= 220
    tiny = generate_sample(scale=0.0001, now=NOW)
    assert all(len(records) == 1 for records in tiny.tables.values())
    _check_invariants(tiny, NOW)


def test_invariants_at_scale_1(data: SampleData) -> None:
    _check_invariants(data, NOW)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    scale=st.floats(0.001, 0.08),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_invariants_hold_for_any_input(seed: int, scale: float, now: datetime) -> None:
    _check_invariants(generate_sample(seed=seed, scale=scale, now=now), now)


def _check_invariants(data: SampleData, now: datetime) -> None:
    tables = _tables(data.schema)
    keys = {name: {r.key for r in records} for name, records in data.tables.items()}
    lo = now - WINDOW
    lo_day, hi_day = lo.astimezone(LOCAL).date(), now.astimezone(LOCAL).date()
    for name, records in data.tables.items():
        assert len(keys[name]) == len(records), f"duplicate keys in {name}"
        fields = _fields(tables[name])
        created = [r.created_time for r in records]
        assert created == sorted(created)
        for record in records:
            assert isinstance(record, SampleRecord)
            assert record.key.startswith(f"{name}:")
            assert record.created_time.utcoffset() == timedelta(0)
            assert lo <= record.created_time <= record.modified_time <= now
            primary = tables[name]["fields"][0]["name"]
            assert isinstance(record.fields.get(primary), str) and record.fields[primary]
            for field_name, value in record.fields.items():
                field = fields[field_name]
                assert field["type"] not in READ_ONLY, (name, field_name)
                _check_value(field, value, keys)
                if field["type"] == "dateTime":
                    moment = _parse_dt(value)
                    if (name, field_name) in PAST_FIELDS:
                        assert lo <= moment <= now, (name, field_name, value)
                    else:
                        assert lo <= moment <= now + timedelta(days=90), (name, field_name, value)
                elif field["type"] == "date":
                    day = date.fromisoformat(value)
                    if (name, field_name) in PAST_FIELDS:
                        assert lo_day <= day <= hi_day, (name, field_name, value)
                    else:
                        assert lo_day <= day <= hi_day + timedelta(days=91), (name, field_name, value)


def _check_value(field: dict[str, Any], value: Any, keys: dict[str, set[str]]) -> None:
    kind = field["type"]
    options = field.get("options", {})
    if kind in TEXT_TYPES:
        assert isinstance(value, str) and value.strip()
        if kind == "singleLineText":
            assert "\n" not in value
        if kind == "email":
            assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9.-]+\.[a-z]+", value), value
        if kind == "url":
            assert value.startswith("https://")
        if kind == "phoneNumber":
            assert re.fullmatch(r"\+55 \d{2} 9\d{4}-\d{4}", value), value
    elif kind in ("number", "percent", "currency"):
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert round(value, options["precision"] if kind != "percent" else 2) == value
        if kind == "percent":
            assert 0 <= value <= 1
        else:
            assert value >= 0
    elif kind == "checkbox":
        assert value is True
    elif kind == "singleSelect":
        assert value in {c["name"] for c in options["choices"]}
    elif kind == "multipleSelects":
        assert isinstance(value, list) and value and len(value) == len(set(value))
        assert set(value) <= {c["name"] for c in options["choices"]}
    elif kind == "date":
        assert ISO_DATE.match(value), value
    elif kind == "dateTime":
        assert ISO_DATETIME.match(value), value
    elif kind == "multipleRecordLinks":
        assert isinstance(value, list) and value and len(value) == len(set(value))
        if options["prefersSingleRecordLink"]:
            assert len(value) == 1
        assert set(value) <= keys[options["linkedTable"]]
    elif kind == "multipleAttachments":
        assert isinstance(value, list) and value
        for attachment in value:
            assert isinstance(attachment, SampleAttachment)
            assert isinstance(attachment.data, bytes) and 200 <= len(attachment.data) <= 2000
            assert attachment.filename and "/" in attachment.content_type
    else:  # pragma: no cover - a type the checks above forgot
        pytest.fail(f"unchecked type {kind}")


# -- realism and tricky values ---------------------------------------------------------------------


def test_users(data: SampleData) -> None:
    users = data.tables["Usuários"]
    active = sum(r.fields["status"] == "Ativo" for r in users) / len(users)
    assert 0.55 <= active <= 0.85
    emails = [r.fields["email"] for r in users]
    assert len(emails) == len(set(emails))
    with_avatar = sum("avatar" in r.fields for r in users)
    assert 3 <= with_avatar <= 30
    assert any("telefone" not in r.fields for r in users)  # optional fields are sometimes empty
    for record in users:
        plan = record.fields["plano"]
        assert record.fields["mensalidade"] == sample.PLANS[plan]
        assert record.fields["data de cadastro"] == record.created_time.astimezone(LOCAL).date().isoformat()
        if "último acesso" in record.fields:
            assert _parse_dt(record.fields["último acesso"]) >= record.created_time - timedelta(seconds=3)


def test_interactions(data: SampleData) -> None:
    interactions = data.tables["Interações"]
    users = {r.key: r for r in data.tables["Usuários"]}
    recent = sum(r.created_time > NOW - timedelta(days=30) for r in interactions)
    assert recent > 0.6 * len(interactions)  # denser in recent days
    daytime = sum(7 <= _parse_dt(r.fields["timestamp"]).astimezone(LOCAL).hour < 23 for r in interactions)
    assert daytime > 0.85 * len(interactions)
    per_user: Counter[str] = Counter()
    for record in interactions:
        assert set(record.fields) >= {"Resumo", "user", "message", "timestamp", "canal"}
        (user_key,) = record.fields["user"]
        per_user[user_key] += 1
        # Nobody writes before signing up.
        assert users[user_key].created_time <= record.created_time
        stamp = _parse_dt(record.fields["timestamp"])
        assert record.created_time - timedelta(seconds=3) <= stamp <= record.created_time
    last = {
        key: max(_parse_dt(r.fields["timestamp"]) for r in interactions if r.fields["user"] == [key])
        for key in per_user
    }
    for key, user in users.items():
        if key in last:
            assert _parse_dt(user.fields["último acesso"]) == last[key]
        else:
            assert "último acesso" not in user.fields
    modified_later = sum(r.modified_time > r.created_time for r in interactions) / len(interactions)
    assert 0.2 <= modified_later <= 0.4


def test_tasks_and_events_are_consistent(data: SampleData) -> None:
    for record in data.tables["Tarefas"]:
        assert ("concluída" in record.fields) == (record.fields["status"] == "Concluída")
    assert any("responsável" not in r.fields for r in data.tables["Tarefas"])
    assert any("anexos" in r.fields for r in data.tables["Tarefas"])
    for record in data.tables["Eventos"]:
        assert 1 <= len(record.fields["participantes"]) <= 4
        assert _parse_dt(record.fields["início"]) < _parse_dt(record.fields["fim"])
        assert ("url" in record.fields) <= ("local" in record.fields)


def test_metrics_cover_every_type(data: SampleData) -> None:
    records = data.tables["Métricas"]
    assert {r.fields["tipo"] for r in records} == {"usage", "performance", "storage"}
    units = {(r.fields["Nome"], r.fields["unidade"]) for r in records}
    assert len({name for name, _ in units}) == len(units)  # each metric keeps one unit


def test_tricky_values_present(data: SampleData) -> None:
    texts = _all_strings(data)
    names = [r.fields["Nome"] for r in data.tables["Usuários"]]
    assert any("'" in n for n in names)
    assert any('"' in n for n in names)
    assert any(c in "ÁÉÍÓÚÂÊÔÃÕÇáéíóúâêôãõçë" for n in names for c in n)
    assert any("\\" in t for t in texts)
    assert any('"' in t and "'" in t for t in texts)
    assert any(ord(c) > 0xFFFF for t in texts for c in t)  # emojis outside the BMP
    assert any("{" in r.fields["message"] for r in data.tables["Interações"])  # braces, as in formulas
    assert any("\n" in r.fields["message"] for r in data.tables["Interações"])
    assert any("usuário" not in r.fields for r in data.tables["Logs do Sistema"])


def test_attachments_are_well_formed(data: SampleData) -> None:
    attachments = [
        a
        for records in data.tables.values()
        for r in records
        for v in r.fields.values()
        if isinstance(v, list)
        for a in v
        if isinstance(a, SampleAttachment)
    ]
    assert attachments
    kinds = Counter(a.content_type for a in attachments)
    assert kinds["image/png"] > 0
    for attachment in attachments:
        if attachment.content_type == "image/png":
            assert attachment.filename.endswith(".png")
            blob = attachment.data
            assert blob.startswith(b"\x89PNG\r\n\x1a\n")
            length, tag = struct.unpack(">I4s", blob[8:16])
            assert tag == b"IHDR" and length == 13
            width, height = struct.unpack(">II", blob[16:24])
            assert 12 <= width == height <= 24
            assert struct.unpack(">I", blob[29:33])[0] == zlib.crc32(blob[12:29])
            assert blob.endswith(b"IEND\xaeB`\x82")
        elif attachment.content_type == "application/pdf":
            assert attachment.filename.endswith(".pdf")
            assert attachment.data.startswith(b"%PDF-1.4") and attachment.data.endswith(b"%%EOF\n")
        else:
            assert attachment.content_type == "text/csv" and attachment.filename.endswith(".csv")
            attachment.data.decode("utf-8")
