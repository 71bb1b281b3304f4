"""crontab.example, the config and `beststag schedule show | crontab` agree; every line is valid cron."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter

from beststag_cli.config import JOB_NAMES, load_config, validate_cron
from beststag_cli.ops.schedule import (
    DEFAULT_ENV_FILE,
    DEFAULT_HOME,
    lock_collisions,
    next_runs,
    parse_crontab,
    render_crontab,
    scheduled_jobs,
)
from beststag_cli.ops.simulate import cron_events, job_name

from .conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "crontab.example"
SHIPPED = ROOT / "config" / "beststag.yaml"
REGENERATE = "regenerate it: .venv/bin/beststag schedule crontab --home /opt/beststag > crontab.example"


def _shipped() -> Any:
    return load_config(SHIPPED)


def test_every_line_of_crontab_example_is_valid_cron() -> None:
    entries = parse_crontab(EXAMPLE.read_text(encoding="utf-8"))
    assert len(entries) == 12
    for e in entries:
        assert croniter.is_valid(e.cron), e.line
        assert validate_cron(e.cron) == e.cron  # our own config validator agrees
        assert e.line.split()[5] == f"{DEFAULT_HOME}/scripts/cron-job"  # absolute path placeholder
        assert e.env_file == DEFAULT_ENV_FILE
        assert "%" not in e.line  # cron would cut the command at a bare %


def test_crontab_example_and_the_config_agree() -> None:
    """Parse both and compare schedule and command per job, then the text as a whole (no drift)."""
    from_file = [(job_name(e.args), e.cron, e.args) for e in parse_crontab(EXAMPLE.read_text(encoding="utf-8"))]
    from_config = [(j.name, j.cron, j.args) for j in scheduled_jobs(_shipped())]
    assert from_file == from_config, REGENERATE
    assert EXAMPLE.read_text(encoding="utf-8") == render_crontab(_shipped()), REGENERATE


def test_the_schedules_are_the_specs() -> None:
    by_name = {j.name: j for j in scheduled_jobs(_shipped())}
    assert list(by_name) == list(JOB_NAMES)
    start = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    nxt = {n: next_runs(j.cron, start, 3) for n, j in by_name.items()}

    def gaps(name: str) -> set[float]:
        return {(b - a).total_seconds() / 3600 for a, b in zip(nxt[name], nxt[name][1:], strict=False)}

    assert [t.hour for t in nxt["backup-incremental"]] == [0, 0, 0]  # daily at 00:00
    assert nxt["backup-incremental"][0] == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    assert all(t.weekday() == 6 and (t.hour, t.minute) == (2, 0) for t in nxt["backup-complete"])  # Sun 02:00
    assert gaps("backup-critical") == {4}  # every 4 hours
    assert gaps("metrics-performance") == gaps("cache-prune") == {1}
    assert gaps("metrics-usage") == gaps("backup-cleanup") == {24}
    assert gaps("metrics-storage") == {7 * 24}
    assert gaps("alerts") == {0.25}
    assert all(t.day == 1 for t in nxt["metrics-archive"])  # monthly
    # the ranges each collection covers are the spec's
    assert by_name["metrics-usage"].args[-3:-2] == ("24h",)
    assert by_name["metrics-performance"].args[-3:-2] == ("1h",)
    assert by_name["metrics-storage"].args[-3:-2] == ("7d",)


def test_no_two_jobs_sharing_the_backup_lock_start_in_the_same_minute() -> None:
    assert lock_collisions(scheduled_jobs(_shipped()), datetime(2026, 1, 1, tzinfo=UTC), days=400) == []


def test_a_colliding_schedule_is_found(tmp_path: Path) -> None:
    # the spec read literally: critical at 0 */4 starts with the 00:00 incremental every day
    cfg = write_config(
        tmp_path,
        "backup:\n  types:\n    critical:\n      tables: [Usuários, Interações]\n"
        "      schedule: '0 */4 * * *'\n      retention: {keep_last: 12}\n",
    )
    found = lock_collisions(scheduled_jobs(load_config(cfg)), datetime(2026, 6, 1, tzinfo=UTC), days=7)
    assert len(found) == 7
    assert found[0] == (datetime(2026, 6, 1, 0, 0, tzinfo=UTC), ["backup-incremental", "backup-critical"])


def test_cron_events_expand_a_week_in_time_then_crontab_order() -> None:
    entries = parse_crontab(EXAMPLE.read_text(encoding="utf-8"))
    start = datetime(2026, 6, 1, tzinfo=UTC)
    events = cron_events(entries, start, datetime(2026, 6, 8, tzinfo=UTC))
    counts: dict[str, int] = {}
    for e in events:
        counts[e.name] = counts.get(e.name, 0) + 1
    assert counts == {
        "backup-incremental": 7,
        "backup-complete": 1,
        "backup-critical": 42,
        "metrics-usage": 7,
        "metrics-performance": 168,
        "metrics-storage": 1,
        "alerts": 672,
        "cache-prune": 168,
        "backup-cleanup": 7,
        "metrics-archive": 1,
        "feed-refresh": 7,
        "backup-drill": 1,
    }
    assert [e.name for e in events[:3]] == ["backup-incremental", "metrics-performance", "alerts"]
    assert events == sorted(events, key=lambda e: (e.at, e.order))


def test_parse_crontab_rejects_what_cron_or_the_wrapper_would_not_run() -> None:
    assert parse_crontab("MAILTO=ops@example.com\n# comment\n\n") == []
    with pytest.raises(ValueError, match="invalid cron"):
        parse_crontab("0 25 * * * /opt/beststag/scripts/cron-job cache prune\n")
    with pytest.raises(ValueError, match="5 time fields"):
        parse_crontab("@hourly /opt/beststag/scripts/cron-job cache prune\n")
    with pytest.raises(ValueError, match="does not call"):
        parse_crontab("0 * * * * /usr/bin/beststag cache prune\n")


# ---- the CLI


def test_schedule_show_lists_next_runs_from_the_pinned_clock(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("BESTSTAG_FAKE_NOW", "2026-06-06T23:00:00Z")  # a Saturday
    r = cli("--json", "schedule", "show", "--count", "2")
    assert r.exit_code == 0, r
    data = r.json()
    jobs = {j["name"]: j for j in data["jobs"]}
    assert list(jobs) == list(JOB_NAMES)
    assert jobs["backup-complete"]["next"] == ["2026-06-07T02:00+00:00", "2026-06-14T02:00+00:00"]
    assert jobs["backup-critical"]["next"] == ["2026-06-07T00:30+00:00", "2026-06-07T04:30+00:00"]
    assert jobs["backup-critical"]["command"] == "backup run --type critical"
    assert jobs["backup-cleanup"]["lock"] == "backup" and jobs["alerts"]["lock"] is None
    assert data["lock_collisions"] == []
    human = cli("schedule", "show")
    assert human.exit_code == 0 and "backup-incremental" in human.stdout and "warning" not in human.stderr


def test_schedule_show_warns_about_colliding_backups(cli: Any, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "jobs:\n  schedules:\n    backup_cleanup: '0 0 * * *'\n")
    r = cli("--config", str(cfg), "schedule", "show")
    assert r.exit_code == 0
    assert "warning:" in r.stderr and "backup-incremental, backup-cleanup" in r.stderr


def test_schedule_crontab_fills_in_this_installation(cli: Any, tmp_path: Path) -> None:
    r = cli("schedule", "crontab", "--env-file", "/srv/beststag.env")
    assert r.exit_code == 0, r
    entries = parse_crontab(r.stdout)
    assert {e.line.split()[5] for e in entries} == {str(ROOT / "scripts" / "cron-job")}
    assert {e.env_file for e in entries} == {"/srv/beststag.env"}
    assert [e.args for e in entries] == [j.args for j in scheduled_jobs(_shipped())]
    placeholder = cli("schedule", "crontab", "--home", DEFAULT_HOME)
    assert placeholder.stdout == EXAMPLE.read_text(encoding="utf-8"), REGENERATE
    assert "does not exist" in placeholder.stderr
    bad = cli("schedule", "crontab", "--env-file", "relative.env")
    assert bad.exit_code == 2 and "absolute" in bad.stderr
    as_json = cli("--json", "schedule", "crontab")
    assert as_json.json()["entries"][0] == {"schedule": "0 0 * * *", "args": ["backup", "run", "--type", "incremental"]}


def test_schedule_show_prints_next_runs_with_their_month(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Fri 01 04:40, Mon 01 04:40` said neither month: each run reads `Sun 2026-06-07 02:00`."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("BESTSTAG_FAKE_NOW", "2026-06-06T23:00:00Z")
    monkeypatch.setenv("COLUMNS", "300")  # the runs column whole, however piped output gets wrapped
    r = subprocess.run(
        [sys.executable, "-m", "beststag_cli", "schedule", "show", "--count", "2"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r
    assert "Sun 2026-06-07 02:00, Sun 2026-06-14 02:00" in r.stdout, r.stdout
