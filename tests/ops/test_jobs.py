"""job(): one JSON line per run start and end, and health pings that can never fail the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beststag_cli import errors
from beststag_cli.config import ConfigError, load_config
from beststag_cli.errors import AlertsFiring
from beststag_cli.logs import setup_logging, teardown_logging
from beststag_cli.ops.jobs import job, outcome_of

from .conftest import PingServer, job_lines, write_config


def _settings(tmp_path: Path, pings: str = "{}", extra: str = "") -> Any:
    cfg = write_config(tmp_path, f"jobs:\n  pings: {pings}\n  ping_timeout_s: 0.3\n  ping_retries: 1\n{extra}")
    s = load_config(cfg)
    setup_logging(s, quiet=True)
    return s


@pytest.fixture(autouse=True)
def _no_handlers_left() -> Any:
    yield
    teardown_logging()


@pytest.mark.parametrize(
    ("exc", "outcome", "code"),
    [
        (None, "ok", 0),
        (errors.LockHeld("busy"), "locked", 75),
        (AlertsFiring("1 alert firing"), "alerting", 1),
        (errors.PartialSuccess("2 tables failed"), "partial", 3),
        (errors.UpstreamUnavailable("down"), "failed", 4),
        (errors.BadInput("bad"), "failed", 2),
        (RuntimeError("bug"), "failed", 1),
        (KeyboardInterrupt(), "interrupted", 130),
        (SystemExit(0), "ok", 0),
    ],
)
def test_outcome_of_every_ending(exc: BaseException | None, outcome: str, code: int) -> None:
    assert outcome_of(exc) == (outcome, code)


def test_start_and_end_lines_share_a_run_id(tmp_path: Path, clean_env: Path) -> None:
    s = _settings(tmp_path)
    with job(s, "cache-prune", note="x") as run:
        pass
    started, finished = job_lines(clean_env)
    assert started["event"] == "job.started" and finished["event"] == "job.finished"
    assert started["run_id"] == finished["run_id"] == run.run_id
    assert started["job"] == finished["job"] == "cache-prune"
    assert finished["outcome"] == "ok" and finished["exit_code"] == 0 and finished["error"] is None
    assert finished["duration_s"] >= 0 and started["note"] == finished["note"] == "x"
    assert run.pings == []  # none configured, none sent


def test_a_failing_body_is_logged_and_reraised_unchanged(tmp_path: Path, clean_env: Path) -> None:
    s = _settings(tmp_path)
    err = errors.UpstreamUnavailable("Airtable answered 503 five times")
    with pytest.raises(errors.UpstreamUnavailable) as caught, job(s, "backup-critical"):
        raise err
    assert caught.value is err
    end = job_lines(clean_env, "job.finished")[-1]
    assert (end["outcome"], end["exit_code"], end["level"]) == ("failed", 4, "WARNING")
    assert "503" in end["error"]


def test_healthchecks_shorthand_pings_start_then_success(tmp_path: Path, ping_server: PingServer) -> None:
    s = _settings(tmp_path, f"{{backup-critical: {{url: '{ping_server.url}/hc/abc'}}}}")
    with job(s, "backup-critical") as run:
        assert ping_server.paths() == [f"/hc/abc/start?rid={run.run_id}"]
    assert ping_server.paths()[1] == f"/hc/abc?rid={run.run_id}"
    start, end = ping_server.requests
    assert start["method"] == "GET" and end["method"] == "POST"
    assert end["body"]["outcome"] == "ok" and end["body"]["run_id"] == run.run_id
    assert [p["ok"] for p in run.pings] == [True, True]


def test_failure_pings_fail_with_the_exit_code(tmp_path: Path, ping_server: PingServer) -> None:
    s = _settings(
        tmp_path,
        f"{{backup-complete: {{start: '{ping_server.url}/s/{{job}}', "
        f"fail: '{ping_server.url}/f/{{job}}/{{exit_code}}?rid={{run_id}}', "
        f"success: '{ping_server.url}/ok'}}}}",
    )
    with pytest.raises(errors.PartialSuccess), job(s, "backup-complete") as run:
        raise errors.PartialSuccess("Tarefas failed")
    assert ping_server.paths() == ["/s/backup-complete", f"/f/backup-complete/3?rid={run.run_id}"]
    assert ping_server.requests[1]["body"]["error"] == "Tarefas failed"


def test_alerts_firing_is_a_successful_run_of_the_alerts_job(tmp_path: Path, ping_server: PingServer) -> None:
    s = _settings(tmp_path, f"{{alerts: {{url: '{ping_server.url}/a'}}}}")
    with pytest.raises(AlertsFiring), job(s, "alerts"):
        raise AlertsFiring("1 alert(s) firing: cache_hit_ratio")
    assert [p.split("?")[0] for p in ping_server.paths()] == ["/a/start", "/a"]


def test_a_locked_run_sends_no_end_ping(tmp_path: Path, ping_server: PingServer, clean_env: Path) -> None:
    s = _settings(tmp_path, f"{{backup-critical: {{url: '{ping_server.url}/c'}}}}")
    with pytest.raises(errors.LockHeld), job(s, "backup-critical"):
        raise errors.LockHeld("another backup is running")
    assert [p.split("?")[0] for p in ping_server.paths()] == ["/c/start"]  # the lock holder pings the end
    assert job_lines(clean_env, "job.finished")[-1]["outcome"] == "locked"


def test_pings_that_fail_never_fail_the_job(tmp_path: Path, ping_server: PingServer, clean_env: Path) -> None:
    ping_server.status["/down"] = 500
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    s = _settings(
        tmp_path,
        f"{{cache-prune: {{start: '{dead}/start', success: '{ping_server.url}/down'}}, "
        f"metrics-archive: {{success: '{ping_server.url}/slow/x'}}}}",
    )
    with job(s, "cache-prune") as run:
        pass
    assert run.outcome == "ok" and run.exit_code == 0
    assert [p["ok"] for p in run.pings] == [False, False]
    assert [p["attempts"] for p in run.pings] == [2, 2]  # one retry each (jobs.ping_retries)
    assert run.pings[1]["error"] == "HTTP 500"
    with job(s, "metrics-archive") as slow:  # a ping that hangs times out (ping_timeout_s)
        pass
    assert slow.outcome == "ok" and "timed out" in slow.pings[0]["error"].lower()
    failed = [x for x in job_lines(clean_env) if x.get("event") == "job.ping_failed"]
    assert len(failed) == 3
    # the log names the host only: the path of a ping URL is its secret
    assert {x["host"] for x in failed} == {dead, ping_server.url}
    assert all("/down" not in str(x) and "/slow" not in str(x) for x in failed)


def test_unknown_job_in_pings_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "jobs:\n  pings:\n    backup-critcal: {url: 'https://hc-ping.com/x'}\n")
    with pytest.raises(ConfigError, match=r"jobs\.pings: unknown job 'backup-critcal'.*did you mean 'backup-critical'"):
        load_config(cfg)
    cfg = write_config(tmp_path, "jobs:\n  pings:\n    alerts: {url: 'hc-ping.com/x'}\n")
    with pytest.raises(ConfigError, match=r"jobs\.pings\.alerts\.url: expected an http"):
        load_config(cfg)
    cfg = write_config(tmp_path, "jobs:\n  pings:\n    alerts: {sucess: 'https://x.y/z'}\n")
    with pytest.raises(ConfigError, match=r"jobs\.pings\.alerts\.sucess: unknown key; did you mean 'success'"):
        load_config(cfg)


# ---- through the CLI: the job commands use job() themselves


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["cache", "prune"], "cache-prune"),
        (
            ["metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus"],
            "metrics-performance",
        ),
        (["metrics", "archive"], "metrics-archive"),
        (["backup", "cleanup"], "backup-cleanup"),
    ],
)
def test_job_commands_log_and_ping(
    cli: Any, tmp_path: Path, ping_server: PingServer, clean_env: Path, args: list[str], name: str
) -> None:
    cfg = write_config(tmp_path, f"jobs:\n  pings:\n    {name}: {{url: '{ping_server.url}/{name}'}}\n")
    r = cli("--config", str(cfg), "--quiet", *args)
    assert r.exit_code == 0, r
    started, finished = job_lines(clean_env)
    assert started["job"] == finished["job"] == name and finished["outcome"] == "ok"
    rid = finished["run_id"]
    assert ping_server.paths() == [f"/{name}/start?rid={rid}", f"/{name}?rid={rid}"]


def test_a_dry_run_is_not_a_run_of_the_job(cli: Any, clean_env: Path) -> None:
    assert cli("backup", "cleanup", "--dry-run").exit_code == 0
    assert cli("metrics", "archive", "--dry-run").exit_code == 0
    assert job_lines(clean_env) == []


def test_backup_run_and_alerts_through_the_cli(
    cli: Any, tmp_path: Path, ping_server: PingServer, clean_env: Path
) -> None:
    cfg = write_config(
        tmp_path,
        f"jobs:\n  pings:\n    backup-critical: {{url: '{ping_server.url}/b'}}\n"
        f"    alerts: {{url: '{ping_server.url}/a'}}\n",
    )
    assert cli("--config", str(cfg), "--quiet", "backup", "run", "--type", "critical").exit_code == 0
    # incremental and complete never ran: the backup alert fires (exit 1), the alerts job itself succeeded
    r = cli("--config", str(cfg), "--quiet", "metrics", "alerts")
    assert r.exit_code == 1 and "backup_failure" in r.stderr
    ends = {x["job"]: x for x in job_lines(clean_env, "job.finished")}
    assert ends["backup-critical"]["outcome"] == "ok" and ends["alerts"]["outcome"] == "alerting"
    assert [p.split("?")[0] for p in ping_server.paths()] == ["/b/start", "/b", "/a/start", "/a"]
