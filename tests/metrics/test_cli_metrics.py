"""`beststag metrics …` end to end, in-process against the test's sandbox copy."""

from __future__ import annotations

import gzip
import json

import pytest

from beststag_cli import clock
from beststag_cli.config import SANDBOX_BASE_ID, load_config
from beststag_cli.journal import Journal

from .conftest import NOW, T


@pytest.fixture
def pinned():  # type: ignore[no-untyped-def]
    clock.set_now(NOW)
    yield T
    clock.reset()


def _journal() -> Journal:
    return Journal(load_config().paths.journal)


def test_collect_json_shape(cli, pinned) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "metrics", "collect", "--type", "all", "--range", "24h")
    assert r.exit_code == 0, r
    doc = r.json()
    assert {"type", "range", "generated_at", "metrics"} <= set(doc)
    assert (doc["type"], doc["range"], doc["generated_at"]) == ("all", "24h", "2026-03-10T12:30:00Z")
    assert set(doc["metrics"]) == {"usage", "performance", "storage", "backup"}
    assert doc["metrics"]["usage"]["records_total"] == 2000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--type", "bogus"], "unknown metric type 'bogus'"),
        (["--range", "2h"], "unknown time range '2h'"),
        (["--format", "xml"], "unknown format 'xml'"),
    ],
)
def test_bad_input_exits_2(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "metrics", "collect", *args)
    assert r.exit_code == 2, r
    assert message in r.json()["error"]["message"]
    assert r.json()["error"]["hint"]
    r = cli("metrics", "alerts", "--range", "5m")
    assert r.exit_code == 2 and "unknown time range" in r.stderr


def test_no_journal_yet_is_an_empty_explained_result(cli, clean_env) -> None:  # type: ignore[no-untyped-def]
    assert not (clean_env / "journal.sqlite").exists()
    r = cli("--json", "metrics", "collect", "--type", "performance", "--range", "1h")
    assert r.exit_code == 0, r
    doc = r.json()
    assert doc["metrics"]["performance"]["requests_total"] == 0
    assert any("no journal yet" in n for n in doc["notes"])
    assert "no journal yet" in r.stderr


def test_table_output_and_prometheus_format(cli, clean_env, pinned) -> None:  # type: ignore[no-untyped-def]
    r = cli("metrics", "collect", "--type", "all", "--range", "7d")
    assert r.exit_code == 0, r
    # piped (not a terminal): tab-separated rows on stdout, each table's title above them on stderr
    assert "performance — last 7d" in r.stderr and "records / plan limit\t" in r.stdout
    r = cli("metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus")
    assert r.exit_code == 0, r
    prom = clean_env / "metrics" / "beststag.prom"
    # the file also has this run's own job gauges, written when the job ended (after stdout)
    assert [x for x in r.stdout.splitlines() if "beststag_job_" not in x] == [
        x for x in prom.read_text().splitlines() if "beststag_job_" not in x
    ]
    assert "beststag_table_records" in r.stdout  # the usage figures of the earlier run are kept


def test_push_writes_rows_a_later_listing_returns(cli, api, pinned) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "metrics", "collect", "--type", "all", "--range", "30d", "--push")
    assert r.exit_code == 0, r
    pushed = r.json()["pushed"]
    assert pushed["table"] == "Métricas" and len(pushed["records"]) >= 10
    listed = {rec["id"]: rec["fields"] for rec in api.table(SANDBOX_BASE_ID, "Métricas").all()}
    rows = [listed[i] for i in pushed["records"]]
    assert {row["tipo"] for row in rows} == {"usage", "performance", "storage"}
    assert all(row["período"] == "30d" for row in rows)
    assert all(row["coletado em"].startswith("2026-03-10T12:30:00") for row in rows)
    total = next(row for row in rows if row["Nome"] == "registros_total")
    assert (total["valor"], total["unidade"]) == (2000, "registros")
    assert len(listed) == 50 + len(rows)


def test_alerts_exit_1_while_firing_then_0(cli, pinned) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "metrics", "alerts")
    assert r.exit_code == 1, r
    doc = r.json()  # the document comes first, whole; the error goes to stderr
    firing = {a["name"] for a in doc["alerts"] if a["firing"]}
    assert firing == {"backup_failure"}  # a fresh install has no backup yet
    assert all({"name", "firing", "value", "threshold"} <= set(a) for a in doc["alerts"])
    assert "1 alert(s) firing: backup_failure" in r.stderr
    j = _journal()
    for t in ("incremental", "complete", "critical"):
        j.record_backup_run(id=t, type=t, status="ok", started=T - 100, finished=T - 50)
    j.close()
    r = cli("metrics", "alerts", "--range", "24h")
    assert r.exit_code == 0, r
    assert "FIRING" not in r.stdout and "backup_failure" in r.stdout


def test_report_is_self_contained(cli, tmp_path, pinned) -> None:  # type: ignore[no-untyped-def]
    j = _journal()
    for i in range(50):
        j.record_request(
            base=SANDBOX_BASE_ID,
            table_name="Tarefas",
            method="GET",
            operation="list",
            status=200 if i % 10 else 500,
            duration_ms=80.0 + i,
            ts=T - i * 3000,
        )
        j.record_cache_event(event="hit" if i % 3 else "miss", table_name="Tarefas", ts=T - i * 3000)
    j.close()
    out = tmp_path / "report.html"
    r = cli("--json", "metrics", "report", "--out", str(out), "--range", "7d")
    assert r.exit_code == 0, r
    page = out.read_text()
    assert page.count("<svg") >= 6
    assert "<script" not in page  # pygal's tooltips JS is off: nothing to fetch
    for attr in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http"):
        assert attr not in page
    assert "Records per table" in page and "Cache hit ratio" in page
    assert r.json()["path"] == str(out)


def test_archive_moves_old_rows_and_keeps_figures(cli, clean_env, pinned) -> None:  # type: ignore[no-untyped-def]
    j = _journal()
    old = T - 100 * 86400  # older than the 90-day retention
    for i in range(5):
        j.record_request(base=None, table_name="Tarefas", method="GET", status=200, duration_ms=10.0, ts=old + i)
        j.record_cache_event(event="hit", table_name="Tarefas", ts=old + i)
    j.record_request(base=None, table_name="Tarefas", method="GET", status=200, duration_ms=10.0, ts=T - 60)
    j.close()
    r = cli("--json", "metrics", "archive", "--dry-run")
    assert r.json()["tables"] == {"requests": 5, "cache_events": 5, "count_snapshots": 0}
    assert r.json()["files"] == []
    r = cli("--json", "metrics", "archive")
    assert r.exit_code == 0, r
    doc = r.json()
    assert doc["tables"]["requests"] == 5
    month = "2025-11"  # 100 days before 2026-03-10
    f = clean_env / "metrics" / "archive" / f"requests-{month}.jsonl.gz"
    assert str(f) in doc["files"]
    with gzip.open(f, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert [row["ts"] for row in rows] == [old + i for i in range(5)]
    j = _journal()
    assert j.query("SELECT count(*) AS n FROM requests")[0]["n"] == 1
    j.close()
    r = cli("--json", "metrics", "collect", "--type", "performance", "--range", "30d")
    assert r.json()["metrics"]["performance"]["requests_total"] == 1
    prom = cli("metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus").stdout
    assert "beststag_requests_total 6" in prom  # lifetime counters come from the kept rollups
    # a second archive of the same month appends a gzip member; reading gives every row
    j = _journal()
    j.record_request(base=None, table_name="Tarefas", method="GET", status=200, duration_ms=10.0, ts=old + 99)
    j.close()
    cli("metrics", "archive")
    from beststag_cli.metrics import read_archive

    assert len(read_archive(f)) == 6
