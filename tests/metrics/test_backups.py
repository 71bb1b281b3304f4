"""Backup figures from backup_runs / restore_runs written through Journal.record_backup_run."""

from __future__ import annotations

import pytest

from beststag_cli.metrics.backups import collect_backup
from beststag_cli.metrics.windows import Window

from .conftest import T

H = 3600.0


def _run(journal, id_, type_, status, hours_ago, *, dur=60.0, records=100, bytes_=10_000):  # type: ignore[no-untyped-def]
    started = T - hours_ago * H
    journal.record_backup_run(
        id=id_,
        type=type_,
        status=status,
        started=started,
        finished=None if status == "running" else started + dur,
        records=records,
        bytes=bytes_,
    )


def test_backup_figures_by_hand(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _run(journal, "c1", "critical", "ok", 20, records=150, bytes_=1500)
    _run(journal, "c2", "critical", "failed", 16)
    _run(journal, "c3", "critical", "ok", 12, records=160, bytes_=1600)
    _run(journal, "c4", "critical", "partial", 8)
    _run(journal, "c5", "critical", "failed", 4)
    _run(journal, "c6", "critical", "running", 0.1)
    _run(journal, "i1", "incremental", "ok", 10, records=40, bytes_=400)
    _run(journal, "f0", "complete", "ok", 24 * 6, records=2000, bytes_=50_000)  # outside 24h, still the last good
    (settings.paths.backups / "critical" / "2026-03-10T00-00-00Z").mkdir(parents=True)
    (settings.paths.backups / "critical" / "2026-03-10T00-00-00Z" / "t.jsonl.gz").write_bytes(b"z" * 700)
    b = collect_backup(settings, journal, Window.ending("24h", T))
    assert b["runs_total"] == 6  # the running one is not finished
    assert b["successes_total"] == 3  # c1 c3 i1; partial counts as failed
    assert b["success_ratio"] == 0.5
    crit = b["by_type"]["critical"]
    assert (crit["runs"], crit["successes"], crit["failures"]) == (5, 2, 3)
    assert crit["success_ratio"] == 0.4
    assert crit["bytes_in_range"] == 3100
    assert crit["last_success_id"] == "c3"
    assert crit["last_success_timestamp"] == T - 12 * H + 60
    assert crit["last_success_age_seconds"] == 12 * H - 60
    assert crit["consecutive_failures"] == 2  # c5, c4
    assert crit["last_status"] == "failed"
    assert crit["running"] == 1
    assert crit["storage_bytes"] == 700
    assert b["by_type"]["complete"]["runs"] == 0
    assert b["by_type"]["complete"]["last_success_records"] == 2000
    assert b["storage_bytes"] == 700
    rec = b["recovery"]
    assert rec["backup_type"] == "complete"
    assert rec["records"] == 2000
    assert rec["records_per_second"] == 50.0  # 5 req/s x 10 records a write
    assert rec["estimate_seconds"] == 40.0
    assert "no measured restore" in rec["method"]


def test_recovery_time_from_measured_restores(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _run(journal, "f1", "complete", "ok", 2, records=3000)
    journal.record_restore_run(id="r1", backup_id="f0", status="ok", started=T - 5000, finished=T - 4900, records=1000)
    journal.record_restore_run(id="r2", backup_id="f0", status="ok", started=T - 3000, finished=T - 2700, records=1000)
    journal.record_restore_run(id="r3", backup_id="f0", status="failed", started=T - 900, finished=T - 800, records=10)
    rec = collect_backup(settings, journal, Window.ending("24h", T))["recovery"]
    assert rec["records_per_second"] == 5.0  # 2000 records in 400 s
    assert rec["estimate_seconds"] == pytest.approx(600.0)
    assert rec["method"] == "measured over 2 restore(s)"


def test_interrupted_runs_are_neither_successes_nor_failures(settings, journal) -> None:  # type: ignore[no-untyped-def]
    """A run stopped by SIGINT/SIGTERM (status `interrupted`) is not a failure: not in failures, not in the ratio."""
    _run(journal, "c1", "critical", "ok", 10)
    _run(journal, "c2", "critical", "failed", 8)
    _run(journal, "c3", "critical", "interrupted", 6)
    _run(journal, "c4", "critical", "interrupted", 4)
    b = collect_backup(settings, journal, Window.ending("24h", T))
    crit = b["by_type"]["critical"]
    assert (crit["runs"], crit["successes"], crit["failures"], crit["interrupted"]) == (2, 1, 1, 2)
    assert crit["success_ratio"] == 0.5
    assert (b["failures_total"], b["interrupted_total"]) == (1, 2)
    assert crit["consecutive_failures"] == 1
    assert crit["last_status"] == "interrupted"
    assert crit["last_outcome_status"] == "failed"
