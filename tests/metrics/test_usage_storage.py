"""Usage and storage figures against the sandbox, checked with an independent pyairtable listing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from beststag_cli import clock
from beststag_cli.config import SANDBOX_BASE_ID
from beststag_cli.journal import Journal
from beststag_cli.metrics import collect
from beststag_cli.metrics.usage import parse_created

D = 86400.0


@pytest.fixture
def base_now(api) -> Iterator[float]:  # type: ignore[no-untyped-def]
    """Pin the clock one hour after the newest Interação of the sample base."""
    recs = api.table(SANDBOX_BASE_ID, "Interações").all(fields=["user"])
    newest = max(parse_created(r["createdTime"]) for r in recs)
    clock.set_now(datetime.fromtimestamp(newest + 3600, UTC))
    yield newest + 3600
    clock.reset()


@pytest.fixture
def sj(settings, base_now) -> Iterator[Journal]:  # type: ignore[no-untyped-def]
    j = Journal(settings.paths.journal)
    yield j
    j.close()


def _interacoes(api) -> list[tuple[float, list[str]]]:  # type: ignore[no-untyped-def]
    recs = api.table(SANDBOX_BASE_ID, "Interações").all(fields=["user"])
    return [(parse_created(r["createdTime"]), r["fields"].get("user", [])) for r in recs]


def test_usage_against_the_sandbox(settings, gateway, sandbox, api, sj, base_now) -> None:  # type: ignore[no-untyped-def]
    sj.add_count_snapshot(table_name="Usuários", records=80, ts=base_now - 8 * D)  # before the 7d window
    result = collect(settings, "usage", "7d", gateway=gateway, journal=sj)
    u = result["metrics"]["usage"]
    for name in settings.tables:
        assert u["tables"][name]["records"] == sandbox.store.count(SANDBOX_BASE_ID, name), name
        assert u["tables"][name]["count_method"] == "counted"
    assert u["records_total"] == 2000
    # growth: from the snapshot where there is one, else from createdTime
    us = u["tables"]["Usuários"]
    assert us["growth_method"] == "count_snapshots"
    assert us["growth_pct"] == 25.0  # 80 -> 100
    rows = _interacoes(api)
    start, prev_start = base_now - 7 * D, base_now - 14 * D
    created = sum(1 for t, _ in rows if t >= start)
    before = sum(1 for t, _ in rows if prev_start <= t < start)
    it = u["tables"]["Interações"]
    assert it["growth_method"] == "created_time"
    assert it["created_in_range"] == created
    assert it["growth_pct"] == round((1000 - (1000 - created)) / (1000 - created) * 100, 3)
    act = u["activity"]["Interações"]
    assert (act["created"], act["previous_window"]) == (created, before)
    assert act["per_hour"] == round(created / 168, 3)
    assert act["trend_delta_pct"] == round((created - before) / before * 100, 2)
    assert sum(p["created"] for p in act["series"]) == created
    active = {u_ for t, us_ in rows if t >= start for u_ in us_}
    active_prev = {u_ for t, us_ in rows if prev_start <= t < start for u_ in us_}
    assert u["users"]["active_users"] == len(active)
    assert u["users"]["active_users_previous_window"] == len(active_prev)
    assert u["users"]["users_total"] == 100
    assert u["users"]["active_users_ratio"] == round(len(active) / 100, 4)
    # the exact counts were kept as snapshots at `now`
    snaps = sj.query("SELECT table_name, records FROM count_snapshots WHERE ts = ?", (base_now,))
    assert {r["table_name"]: r["records"] for r in snaps}["Interações"] == 1000
    assert result["type"] == "usage" and result["range"] == "7d"


def test_large_tables_are_estimated_and_sampled(settings, gateway, sj) -> None:  # type: ignore[no-untyped-def]
    settings.metrics.sample_above_records = 150
    first = collect(settings, "usage", "30d", gateway=gateway, journal=sj)
    assert first["metrics"]["usage"]["tables"]["Interações"]["count_method"] == "counted"  # no count yet
    clock.advance(60)
    second = collect(settings, "usage", "30d", gateway=gateway, journal=sj)
    u = second["metrics"]["usage"]
    it = u["tables"]["Interações"]
    assert it["count_method"] == "estimated" and it["records"] == 1000 and "deletions" in it["note"]
    assert u["tables"]["Usuários"]["count_method"] == "counted"  # 100 <= 150
    assert set(u["estimated_tables"]) == {"Interações", "Tarefas", "Eventos", "Memória Contextual"}
    act = u["activity"]["Interações"]
    assert act["sampled"] and act["sample_records"] == 150 and "sampled" in act["note"]
    assert any("estimated record counts" in n for n in second["notes"])
    assert any("activity sampled" in n for n in second["notes"])


def test_storage_against_the_sandbox(settings, gateway, api, sj, base_now) -> None:  # type: ignore[no-untyped-def]
    anexos = []
    for table in api.base(SANDBOX_BASE_ID).schema().tables:
        fields = [f.name for f in table.fields if f.type == "multipleAttachments"]
        if fields:
            anexos += [
                a
                for r in api.table(SANDBOX_BASE_ID, table.name).all(fields=fields)
                for f in fields
                for a in r["fields"].get(f, [])
            ]
    assert anexos, "the sample base has attachments"
    folder = settings.paths.backups / "complete" / "2026-01-01T00-00-00Z"
    folder.mkdir(parents=True)
    (folder / "tables.jsonl.gz").write_bytes(b"b" * 4000)
    settings.paths.cache_dir.mkdir(parents=True)
    (settings.paths.cache_dir / "cache.db").write_bytes(b"c" * 321)
    sj.record_backup_run(
        id="f1", type="complete", status="ok", started=base_now - 100, finished=base_now - 50, records=2000, bytes=4000
    )
    result = collect(settings, "storage", "24h", gateway=gateway, journal=sj)
    s = result["metrics"]["storage"]
    assert set(result["metrics"]) == {"storage", "backup"}
    assert s["records_total"] == 2000
    assert s["usage_ratio"] == 2000 / 50_000
    assert s["tables"]["Tarefas"]["plan_ratio"] == 300 / 50_000
    assert s["attachments_total"] == len(anexos)
    assert s["attachment_bytes"] == sum(a["size"] for a in anexos)
    assert s["backup_bytes_by_type"]["complete"] == 4000
    assert s["backup_bytes"] == 4000
    assert s["cache_bytes"] == 321
    assert s["journal_bytes"] > 0
    assert s["bases"] == {SANDBOX_BASE_ID: {"records": 2000, "usage_ratio": 0.04}}
    # the census's own list requests (the clock is pinned, so they sit at the window's end)
    list_rows = sj.query(
        "SELECT sum(records) AS r, sum(bytes) AS b FROM requests WHERE operation = 'list' AND records > 0 AND ts <= ?",
        (base_now,),
    )[0]
    assert list_rows["r"] == 2000
    assert s["api_bytes_per_record"] == round(list_rows["b"] / list_rows["r"], 1)
    assert s["backup_compression"]["ratio"] == round(list_rows["b"] / list_rows["r"] * 2000 / 4000, 3)
    assert s["backup_compression"]["backup_bytes_per_record"] == 2.0
