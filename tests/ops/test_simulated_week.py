"""A week of cron from crontab.example against the sandbox while a workload writes (issue 10).

The clock is pinned to each job's start time (`clock.set_now`, what BESTSTAG_FAKE_NOW does for a
process) and every job runs through the CLI's own entry, in-process. One simulation (module
fixture) is checked from several angles: every run's exit code and log lines, the backups kept
against the keep rules (derived by hand below), metrics for every hour, the alerts, and two
restore drills that must reproduce the base exactly as it was when the backup ran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.ops.schedule import parse_crontab
from beststag_cli.ops.simulate import Event, Run, WeekReport, cron_events, simulate
from tests.backup.conftest import assert_same_state, snapshot

from .conftest import job_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 6, 1, tzinfo=UTC)  # Monday 00:00 UTC; the week ends Sunday 23:59
END = START + timedelta(days=7)
INSTALL = START - timedelta(hours=1)  # the operator's first backups, Sunday 23:00
WED_NOON = datetime(2026, 6, 3, 12, tzinfo=UTC)
THU_DRILL = datetime(2026, 6, 4, 10, 0, tzinfo=UTC)
CRITICAL = ["Usuários", "Interações"]


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H-%M-%SZ")


class Week:
    """Everything the checks read: the report, snapshots, drills, and the final data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.report: WeekReport | None = None
        self.snapshots: dict[str, Any] = {}  # critical backup id -> the base's critical tables right after it
        self.drills: dict[str, dict[str, Any]] = {}
        self.cli_out: list[tuple[list[str], int, str]] = []
        self.final: Any = None  # the critical tables at the end of the week


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    import beststag_cli.sandbox as sbmod
    from beststag_cli.backup.restore import gateway_for_base
    from beststag_cli.cli.main import run
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal
    from beststag_cli.sandbox import Sandbox
    from beststag_cli.sandbox.seed import load_sample

    # Module scope outlives the first test's clean_env: set and undo the environment by hand.
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("week") / "var"
    removed = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    os.environ["BESTSTAG_DATA_DIR"] = str(data)
    cwd = Path.cwd()
    os.chdir(ROOT)  # ./config/beststag.yaml: the shipped config, as on a server
    clock.set_now(INSTALL)
    data.joinpath("sandbox").mkdir(parents=True)
    sb = Sandbox(data / "sandbox" / "base.sqlite")
    mp.setattr(sbmod, "get_sandbox", lambda path: sb)
    w = Week(data)

    def cli(*args: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run(list(args))
        w.cli_out.append((list(args), code, err.getvalue() + out.getvalue()[-500:]))
        return code, out.getvalue()

    try:
        # install day: the sample base is seeded now (first use); one backup of each type by hand
        for t in ("complete", "critical", "incremental"):
            assert cli("--quiet", "backup", "run", "--type", t)[0] == 0, w.cli_out[-1]
        # and the first complete backup drilled (docs/operations.md), or the backup alert fires 48 h later
        assert cli("--quiet", "backup", "drill", "latest", "--type", "complete")[0] == 0, w.cli_out[-1]
        settings = load_config()
        gw = Gateway(settings, sandbox=sb, source="test")

        def after(ev: Event, r: Run | None) -> None:
            if r is not None and r.name == "backup-critical" and ev.at.date() == WED_NOON.date():
                w.snapshots[f"critical/{_ts(ev.at)}"] = snapshot(gw, CRITICAL)

        def drill(label: str, base_id: str, seed: int) -> None:
            """The operator's restore drill: the critical backup closest to Wednesday 12:00, into a new base."""
            code, out = cli("--json", "backup", "list", "--type", "critical")
            assert code == 0
            ids = [b["id"] for b in json.loads(out)]
            closest = min(
                ids,
                key=lambda i: abs(
                    datetime.strptime(i.split("/")[1], "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC) - WED_NOON
                ),
            )
            load_sample(sb.store, base_id=base_id, with_records=False, seed=seed)
            code, out = cli("--json", "--quiet", "backup", "restore", closest, "--base", base_id, "--yes")
            assert code == 0, w.cli_out[-1]
            restore_id = json.loads(out)["id"]
            journal = Journal(settings.paths.journal)
            id_map = {
                r["src"]: r["dst"]
                for r in journal.query(
                    "SELECT src, dst FROM restore_items WHERE restore_id = ? AND phase = 'create'", (restore_id,)
                )
            }
            journal.close()
            w.drills[label] = {
                "backup": closest,
                "restored": snapshot(gateway_for_base(gw, base_id), CRITICAL),
                "id_map": id_map,
                "at": clock.now(),
            }

        entries = parse_crontab((ROOT / "crontab.example").read_text(encoding="utf-8"))
        w.report = simulate(
            entries, START, 7, after=after, calls=[(THU_DRILL, lambda at: drill("thursday", "appDrillThursday1", 7))]
        )
        clock.set_now(END)  # Monday 00:00: the week is over
        drill("end of week", "appDrillEndOfWeek", 8)
        w.final = snapshot(gw, CRITICAL)
        gw.close()
        yield w
    finally:
        clock.reset()
        sb.close()
        mp.undo()
        os.chdir(cwd)
        os.environ.pop("BESTSTAG_DATA_DIR", None)
        os.environ.update(removed)


def test_every_scheduled_run_succeeded(week: Week) -> None:
    assert week.report is not None
    entries = parse_crontab((ROOT / "crontab.example").read_text(encoding="utf-8"))
    expected = cron_events(entries, START, END)
    runs = week.report.runs
    assert [(r.at, r.name) for r in runs] == [(e.at, e.name) for e in expected]
    # ... + feed-refresh (daily) + backup-drill (weekly)
    assert len(runs) == 7 + 1 + 42 + 7 + 168 + 1 + 672 + 168 + 7 + 1 + 7 + 1
    failed = [(r.at.isoformat(), r.name, r.exit_code, r.stderr) for r in runs if r.exit_code != 0]
    assert failed == []  # no 75 either: no two backup-lock jobs start in the same minute
    assert not any(r.overlapped for r in runs)
    assert week.report.workload["failed"] == 0 and week.report.workload["deleted"] == 168


def test_each_run_wrote_a_start_and_an_end_line(week: Week) -> None:
    lines = job_lines(week.data_dir)
    started = {x["run_id"]: x for x in lines if x["event"] == "job.started"}
    finished = {x["run_id"]: x for x in lines if x["event"] == "job.finished"}
    assert set(started) == set(finished)
    assert len(finished) == len(week.report.runs) + 4  # + the three install-day backups and their drill
    outcomes = {(x["job"], x["outcome"]) for x in finished.values()}
    assert {o for _, o in outcomes} == {"ok"}
    per_job: dict[str, int] = {}
    for x in finished.values():
        if x["ts"] >= START.isoformat(timespec="milliseconds"):
            per_job[x["job"]] = per_job.get(x["job"], 0) + 1
    assert per_job == {name: len(runs) for name, runs in week.report.by_job().items()}


def test_backups_kept_follow_the_keep_rules(week: Week) -> None:
    """Derived by hand from config/beststag.yaml; the last cleanup ran Sunday 03:15.

    incremental keep_daily 14: the install-day one and Mon..Sun 00:00 (8 days) stay.
    complete keep_weekly 8: install (ISO week 22) and Sunday 02:00 (week 23) stay.
    critical keep_last 12 + keep_daily 7, applied Sunday 03:15 to runs up to Sunday 00:30: the last
    12 (Fri 04:30 .. Sun 00:30), the newest of Mon..Thu (20:30); the install-day one (Sunday
    before, an 8th day) went. Then the five runs after the cleanup (Sun 04:30 .. 20:30).
    """
    backups = week.data_dir / "backups"
    on_disk = {t: sorted(p.name for p in (backups / t).iterdir()) for t in ("incremental", "complete", "critical")}
    day = [START + timedelta(days=d) for d in range(7)]
    assert on_disk["incremental"] == sorted([_ts(INSTALL)] + [_ts(d) for d in day])
    assert on_disk["complete"] == sorted([_ts(INSTALL), _ts(day[6].replace(hour=2))])
    crit = [day[4] + timedelta(hours=h, minutes=30) for h in (4, 8, 12, 16, 20)]  # Friday
    crit += [day[5] + timedelta(hours=h, minutes=30) for h in range(0, 24, 4)]  # Saturday
    crit += [day[6] + timedelta(hours=h, minutes=30) for h in range(0, 24, 4)]  # Sunday (00:30 + after cleanup)
    crit += [day[d] + timedelta(hours=20, minutes=30) for d in range(4)]  # Mon..Thu, newest of the day
    assert on_disk["critical"] == sorted(_ts(t) for t in crit)
    assert len(on_disk["critical"]) == 21
    partial = backups / ".partial"
    assert not partial.exists() or list(partial.iterdir()) == []  # nothing left half-done


def test_what_is_kept_verifies(week: Week) -> None:
    from beststag_cli.backup.layout import BlobStore, list_backups
    from beststag_cli.backup.verify import verify_backup

    root = week.data_dir / "backups"
    store, seen = BlobStore(root), set()
    reports = [verify_backup(b, store, seen) for b in list_backups(root)]
    assert len(reports) == 8 + 2 + 21


def test_metrics_exist_for_every_hour(week: Week) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from beststag_cli.journal import Journal

    hours = [START + timedelta(hours=h) for h in range(7 * 24)]
    perf = [x for x in job_lines(week.data_dir, "job.finished") if x["job"] == "metrics-performance"]
    assert sorted(x["ts"][:13] for x in perf) == [h.isoformat()[:13] for h in hours]
    assert all(x["outcome"] == "ok" for x in perf)
    j = Journal(week.data_dir / "journal.sqlite")
    try:
        rolled = {r["hour"] for r in j.query("SELECT DISTINCT hour FROM requests_hourly")}
        cached = {r["hour"] for r in j.query("SELECT DISTINCT hour FROM cache_hourly")}
        usage = j.query("SELECT COUNT(DISTINCT ts) AS n FROM count_snapshots WHERE ts >= ?", (START.timestamp(),))
    finally:
        j.close()
    for h in hours:  # requests and cache lookups in every hour of the week, rolled up by the hourly collection
        assert int(h.timestamp()) in rolled, h
        assert int(h.timestamp()) in cached, h
    assert usage[0]["n"] >= 7  # a census each day (usage) and Sunday (storage)
    prom = (week.data_dir / "metrics" / "beststag.prom").read_text(encoding="utf-8")
    names = {f.name for f in text_string_to_metric_families(prom)}
    assert {"beststag_requests", "beststag_backup_last_success_timestamp_seconds"} <= names


def test_alerts_were_evaluated_and_stayed_quiet(week: Week) -> None:
    from beststag_cli.journal import Journal
    from beststag_cli.metrics import ALERT_NAMES

    alerts = [x for x in job_lines(week.data_dir, "job.finished") if x["job"] == "alerts"]
    assert len(alerts) == 672 and {x["outcome"] for x in alerts} == {"ok"}
    j = Journal(week.data_dir / "journal.sqlite")
    try:
        state = {r["name"]: r for r in j.query("SELECT * FROM alert_state")}
    finally:
        j.close()
    assert set(ALERT_NAMES) <= set(state)
    assert not any(r["firing"] for r in state.values())


@pytest.mark.parametrize(
    ("label", "backup"),
    [
        ("thursday", f"critical/{_ts(WED_NOON + timedelta(minutes=30))}"),  # Wednesday 12:30, still kept then
        ("end of week", f"critical/{_ts(WED_NOON + timedelta(hours=8, minutes=30))}"),  # the day's newest, kept
    ],
)
def test_restore_drill_reproduces_the_base_at_the_backup(week: Week, label: str, backup: str) -> None:
    drill = week.drills[label]
    assert drill["backup"] == backup
    expected = week.snapshots[backup]
    # the workload had changed the base by then, and went on changing it until the end of the week
    assert any(str(r["fields"].get("Resumo", "")).startswith("simulada") for r in expected["Interações"].values())
    assert expected != week.final
    assert_same_state(expected, drill["restored"], drill["id_map"])
