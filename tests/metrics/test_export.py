"""The Prometheus textfile: parses with prometheus_client, follows its naming rules, written atomically."""

from __future__ import annotations

import stat

import pytest

from beststag_cli.metrics import collect, write_prometheus
from beststag_cli.metrics.export import sparkline, summary_rows

from .conftest import T

prom_parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is in the [test] extra")


def _journal_with_traffic(journal) -> None:  # type: ignore[no-untyped-def]
    for i in range(10):
        journal.record_request(
            base="appX",
            table_name="Usuários",
            method="GET",
            operation="list",
            status=200 if i else 429,
            duration_ms=100.0 + i,
            records=100,
            bytes=9000,
            retries=1 if i == 1 else 0,
            ts=T - 600 - i,
        )
    journal.record_cache_event(event="hit", table_name="Usuários", age_s=3, ts=T - 100)
    journal.record_cache_event(event="miss", table_name="Usuários", ts=T - 90)
    journal.record_backup_run(
        id="b1", type="critical", status="ok", started=T - 300, finished=T - 200, records=10, bytes=1000
    )


def test_textfile_parses_and_follows_the_conventions(settings, gateway, journal) -> None:  # type: ignore[no-untyped-def]
    _journal_with_traffic(journal)
    collect(settings, "all", "24h", gateway=gateway, journal=journal)
    text = write_prometheus(journal, settings.paths.prom_file)
    assert settings.paths.prom_file.read_text() == text
    assert stat.S_IMODE(settings.paths.prom_file.stat().st_mode) == 0o644  # node_exporter reads it (issue 16)
    assert [p.name for p in settings.paths.prom_file.parent.iterdir()] == ["beststag.prom"]  # no temp left

    families = {f.name: f for f in prom_parser.text_string_to_metric_families(text)}
    for name, fam in families.items():
        assert name.startswith("beststag_")
        assert fam.type in ("gauge", "counter", "histogram"), name
        if fam.type == "counter":
            assert all(s.name == name + "_total" for s in fam.samples), name
        else:
            assert not name.endswith("_total"), f"{name}: _total is for counters"
        for unit in ("_ms", "_milliseconds", "_kb", "_mb", "_percent", "_pct"):
            assert unit not in name, f"{name}: use base units"

    def value(name: str, **labels: str) -> float:
        for s in families[name].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"no sample {name} {labels}")

    assert value("beststag_requests") == journal.query("SELECT count(*) AS n FROM requests")[0]["n"]
    assert value("beststag_requests_rate_limited") == 1
    assert value("beststag_request_retries") == 1
    assert value("beststag_cache_events", event="hit") == 1
    # window figures are left to rate() over the counters and the duration histogram (issue 16)
    count = [s.value for s in families["beststag_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert count == [value("beststag_requests")]
    assert value("beststag_backup_last_success_timestamp_seconds", type="critical") == T - 200
    assert value("beststag_storage_usage_ratio") == 0.04
    assert value("beststag_table_records", table="Interações") == 1000
    # every type has its series from the start: 0 until its first success (issue 16)
    assert value("beststag_backup_last_success_timestamp_seconds", type="incremental") == 0


def test_sections_collected_at_different_times_are_all_in_the_file(settings, gateway, journal) -> None:  # type: ignore[no-untyped-def]
    collect(settings, "usage", "24h", gateway=gateway, journal=journal)
    collect(settings, "performance", "1h", gateway=None, journal=journal)
    text = write_prometheus(journal, settings.paths.prom_file)
    names = {f.name for f in prom_parser.text_string_to_metric_families(text)}
    assert {"beststag_table_records", "beststag_api_budget_requests_per_second"} <= names
    assert 'beststag_metrics_generated_timestamp_seconds{section="performance"}' in text


def test_label_values_are_escaped() -> None:
    from beststag_cli.metrics.export import PromWriter

    w = PromWriter()
    w.add("beststag_x", "gauge", 'help with "quotes"', 1, table='a"b\\c\nd')
    fam = next(prom_parser.text_string_to_metric_families(w.render()))
    assert fam.samples[0].labels["table"] == 'a"b\\c\nd'


def test_summary_rows_and_sparklines(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _journal_with_traffic(journal)
    result = collect(settings, "performance", "24h", journal=journal)
    rows = summary_rows(result)["performance"]
    assert rows[0][:2] == ["requests", "10"]
    assert sparkline([1, None, 3]) == "▁ █"
    assert len(sparkline(list(range(300)))) == 24
