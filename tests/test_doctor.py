"""`beststag doctor` (issue 16): each finding built for real, one line each, exit 1; doctor changes nothing.

Command-line points (exit codes, --json, --offline, one line per check, the environment: TZ, the
fake clock, Redis/S3 URLs) go through the real console script in a subprocess; states that need the
test's sandbox copy use the in-process ``cli`` fixture.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.tmpfs import small_tmpfs

TIMEOUT_S = 300  # generous: CI runs with both cores busy


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = os.environ.copy()
    full.setdefault("TZ", "UTC0")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args], env=full, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def _checks(out: str) -> dict[str, dict[str, Any]]:
    data = json.loads(out)
    return {c["name"]: c for c in data["checks"]}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there now: connecting is refused at once
    return port


def _one_line_per_check(r: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert all(x.split()[0] in ("ok", "FAIL", "skip") for x in lines), r.stdout
    return lines


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """A small private tmpfs (root only: root ignores modes, so read-only and full must be real)."""
    with small_tmpfs(tmp_path / "mnt") as mnt:
        yield mnt


# ---------------------------------------------------------------------------------------------- output


def test_json_lists_every_check_with_name_status_message_hint_and_offline_says_so() -> None:
    r = _doctor("--json", "doctor", "--offline")
    assert r.returncode == 0, r
    data = json.loads(r.stdout)
    assert data["healthy"] is True and data["offline"] is True
    for c in data["checks"]:
        assert set(c) == {"name", "status", "message", "hint"}, c
        assert c["status"] in ("ok", "fail", "skip"), c
    checks = {c["name"]: c for c in data["checks"]}
    assert {
        "config",
        "token",
        "data_dir",
        "modes",
        "journal",
        "cache",
        "backups",
        "locks",
        "timezone",
        "prometheus",
        "base",
        "tables",
        "clock",
    } <= set(checks)
    for name in ("base", "tables", "clock"):
        assert checks[name]["status"] == "skip" and "--offline" in checks[name]["message"], checks[name]


def test_human_output_is_one_line_per_check_even_when_piped_narrow() -> None:
    r = _doctor("doctor", "--offline", env={"COLUMNS": "40"})
    assert r.returncode == 0, r
    lines = _one_line_per_check(r)
    assert len(lines) == len(_checks(_doctor("--json", "doctor", "--offline").stdout)), r.stdout


def test_quiet_prints_only_the_failed_checks_on_stderr_for_cron() -> None:
    r = _doctor("--quiet", "doctor", "--offline", env={"TZ": "BRT3"})
    assert r.returncode == 1, r
    assert r.stdout == "", r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines[0].startswith("FAIL timezone: ") and "→ set the host's zone to UTC" in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("error: doctor: 1 check(s) failed: timezone"), r.stderr


# ---------------------------------------------------------------------------------------------- the data dir


def test_a_read_only_data_dir_is_one_finding_not_a_crash(mounted: Path) -> None:
    data = mounted / "var"
    env = {"BESTSTAG_DATA_DIR": str(data)}
    _doctor("--json", "doctor", "--offline", env=env)  # creates var/ and its files (2 MiB: "low space" already)
    assert data.is_dir()
    subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)

    r = _doctor("--json", "doctor", "--offline", env=env)

    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr and "internal" not in r.stderr, r
    check = _checks(r.stdout)["data_dir"]
    assert check["status"] == "fail" and "read-only" in check["message"], check
    assert "remount" in check["hint"], check
    human = _doctor("doctor", "--offline", env=env)
    assert human.returncode == 1 and "FAIL data_dir:" in human.stdout, human


def test_a_full_data_dir_is_one_finding(mounted: Path) -> None:
    data = mounted / "var"
    env = {"BESTSTAG_DATA_DIR": str(data)}
    _doctor("--json", "doctor", "--offline", env=env)
    assert data.is_dir()
    fd = os.open(mounted / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # to the last block: ENOSPC stops it
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)

    r = _doctor("--json", "doctor", "--offline", env=env)

    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr and "internal" not in r.stderr, r
    check = _checks(r.stdout)["data_dir"]
    assert check["status"] == "fail" and ("full" in check["message"] or "free" in check["message"]), check
    assert "free space" in check["hint"], check


def test_free_space_below_the_threshold_is_a_finding(mounted: Path) -> None:
    from beststag_cli.doctor import LOW_SPACE_BYTES

    assert os.statvfs(mounted).f_bavail * os.statvfs(mounted).f_frsize < LOW_SPACE_BYTES  # 2 MiB
    r = _doctor("--json", "doctor", "--offline", env={"BESTSTAG_DATA_DIR": str(mounted / "var")})
    assert r.returncode == 1, r
    check = _checks(r.stdout)["data_dir"]
    assert check["status"] == "fail" and "free" in check["message"], check


def test_doctor_never_changes_a_mode_and_reports_it_with_the_chmod(cli: Any, settings: Any) -> None:
    assert cli("--json", "doctor").exit_code == 0  # journal, logs, snapshot: everything exists now
    data = settings.paths.data_dir
    os.chmod(data, 0o755)
    os.chmod(settings.paths.journal, 0o644)
    os.chmod(settings.paths.logs, 0o750)
    watched = [data, settings.paths.journal, settings.paths.logs, settings.paths.log_file]
    before = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in watched}

    r = cli("--json", "doctor")

    assert {p: stat.S_IMODE(os.lstat(p).st_mode) for p in watched} == before
    assert r.exit_code == 1, r
    check = _checks(r.stdout)["modes"]
    assert check["status"] == "fail" and f"{data} is 755" in check["message"], check
    assert check["hint"] == f"chmod -R go-rwx {data}", check
    # looking is doctor's alone: the next ordinary command in this process tightens as before
    assert cli("--json", "backup", "list").exit_code == 0
    assert stat.S_IMODE(os.lstat(settings.paths.logs).st_mode) == 0o700


def test_only_the_data_dir_itself_loose_gets_the_plain_chmod(cli: Any, settings: Any) -> None:
    assert cli("--json", "doctor", "--offline").exit_code == 0
    os.chmod(settings.paths.data_dir, 0o711)
    r = cli("--json", "doctor", "--offline")
    assert r.exit_code == 1, r
    assert _checks(r.stdout)["modes"]["hint"] == f"chmod 700 {settings.paths.data_dir}"
    assert stat.S_IMODE(os.lstat(settings.paths.data_dir).st_mode) == 0o711


# ---------------------------------------------------------------------------------------------- damaged files


def test_a_corrupt_journal_is_found_read_only(cli: Any, settings: Any) -> None:
    assert cli("--json", "doctor", "--offline").exit_code == 0
    path = settings.paths.journal
    for c in ("-wal", "-shm"):
        Path(f"{path}{c}").unlink(missing_ok=True)
    path.write_bytes(b"SQLite format 3\0" + os.urandom(8192))
    os.chmod(path, 0o600)
    damaged, mtime = path.read_bytes(), path.stat().st_mtime_ns

    r = cli("--json", "doctor", "--offline")

    assert r.exit_code == 1, r
    check = _checks(r.stdout)["journal"]
    assert check["status"] == "fail" and str(path) in check["message"], check
    assert "--repair" in check["hint"] and "doctor" not in check["hint"], check
    assert path.read_bytes() == damaged and path.stat().st_mtime_ns == mtime
    assert not any(p.name.startswith("journal.sqlite.corrupt") for p in path.parent.iterdir())


def test_a_corrupt_cache_store_is_found_and_not_rebuilt(cli: Any, settings: Any) -> None:
    assert cli("--json", "cache", "get", "Usuários", "--max", "2").exit_code == 0
    db = settings.paths.cache_dir / "store" / "cache.db"
    assert db.exists()
    db.write_bytes(b"garbage, not a database" * 100)
    damaged = db.read_bytes()

    r = cli("--json", "doctor", "--offline")

    assert r.exit_code == 1, r
    check = _checks(r.stdout)["cache"]
    assert check["status"] == "fail" and "cache.db" in check["message"], check
    assert "doctor" not in check["hint"], check
    assert db.read_bytes() == damaged
    assert not any(p.name.startswith("store.corrupt") for p in settings.paths.cache_dir.iterdir())


def test_a_manifest_with_a_null_table_is_a_broken_backup(cli: Any, settings: Any) -> None:
    run = cli("--json", "backup", "run", "--type", "critical", "--tables", "Usuários")
    assert run.exit_code == 0, run
    [manifest] = list(settings.paths.backups.glob("critical/*/manifest.json"))
    data = json.loads(manifest.read_text())
    data["tables"] = [None]
    manifest.write_text(json.dumps(data))

    r = cli("--json", "doctor", "--offline")

    assert r.exit_code == 1, r
    check = _checks(r.stdout)["backups"]
    assert check["status"] == "fail" and manifest.parent.name in check["message"], check
    assert "doctor" not in check["hint"], check


# ---------------------------------------------------------------------------------------------- identity


def test_a_base_id_that_is_not_the_sandbox_s_is_a_finding(cli: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("airtable:\n  base_id: appNotTheSandbox1\n")
    r = cli("--json", "--config", str(cfg), "doctor")
    assert r.exit_code == 1, r
    check = _checks(r.stdout)["base"]
    assert check["status"] == "fail" and "appNotTheSandbox1" in check["message"] and "sandbox" in check["message"]
    assert "AIRTABLE_BASE_ID" in check["hint"] and "doctor" not in check["hint"], check


@pytest.fixture
def served(sandbox: Any) -> Iterator[str]:
    """The test's sandbox over HTTP in a thread of this process (its Date header: this process's real clock)."""
    from beststag_cli.sandbox.server import serve_in_thread

    server, thread = serve_in_thread(sandbox.app)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=60)


def test_a_token_that_cannot_see_the_base_is_a_finding(served: str) -> None:
    env = {
        "AIRTABLE_TOKEN": "sandbox",
        "AIRTABLE_ENDPOINT_URL": served,
        "AIRTABLE_BASE_ID": "appSomeOtherBase1",
        "BESTSTAG_SANDBOX": "",
    }  # a token: not sandbox mode (the suite sets BESTSTAG_SANDBOX=1)
    r = _doctor("--json", "doctor", env=env)
    assert r.returncode == 1, r
    check = _checks(r.stdout)["base"]
    assert check["status"] == "fail" and "cannot see base appSomeOtherBase1" in check["message"], check
    assert "appBestStagSandbx" in check["message"] and "doctor" not in check["hint"], check
    ok = _doctor("--json", "doctor", env={**env, "AIRTABLE_BASE_ID": "appBestStagSandbx"})
    assert _checks(ok.stdout)["base"]["status"] == "ok", ok


# ---------------------------------------------------------------------------------------------- the host


@pytest.mark.parametrize(
    ("tz", "status"),
    [("UTC0", "ok"), ("BRT3", "fail"), ("GMT0BST,M3.5.0/1,M10.5.0", "fail")],
    ids=["utc", "sao-paulo", "london-utc-in-winter"],
)
def test_the_host_time_zone_against_the_schedule_s(tz: str, status: str) -> None:
    r = _doctor("--json", "doctor", "--offline", env={"TZ": tz})
    check = _checks(r.stdout)["timezone"]
    assert check["status"] == status, check
    assert r.returncode == (0 if status == "ok" else 1), r
    if status == "fail":
        assert "UTC" in check["message"] and "timedatectl set-timezone UTC" in check["hint"], check


@pytest.mark.parametrize(
    ("ahead_s", "status"), [(3600, "fail"), (-3600, "fail"), (0, "ok")], ids=["5-min-ahead", "1-h-behind", "in-sync"]
)
def test_clock_skew_against_airtable_s_date_header(served: str, ahead_s: int, status: str) -> None:
    env = {"AIRTABLE_ENDPOINT_URL": served}
    if ahead_s:
        env["BESTSTAG_FAKE_NOW"] = (datetime.now(UTC) + timedelta(seconds=ahead_s)).isoformat()
    r = _doctor("--json", "doctor", env=env)
    check = _checks(r.stdout)["clock"]
    assert check["status"] == status, (check, r.stderr)
    if status == "fail":
        # BESTSTAG_FAKE_NOW is a fixed instant: the process's start-up (minutes on a loaded machine) eats into it
        m = re.search(r"clock is (\d+) s (ahead of|behind) Airtable's", check["message"])
        assert m and m.group(2) == ("ahead of" if ahead_s > 0 else "behind"), check
        assert abs(ahead_s) - 600 < int(m.group(1)) <= abs(ahead_s) + 600, check
        assert "NTP" in check["hint"], check
        assert r.returncode == 1, r


# ---------------------------------------------------------------------------------------------- services


def test_redis_at_a_closed_port_is_one_line_without_the_password(served: str) -> None:
    pytest.importorskip("redis")
    url = f"redis://:hunter2secret@127.0.0.1:{_closed_port()}/0"
    env = {"BESTSTAG_REDIS_URL": url, "AIRTABLE_ENDPOINT_URL": served}
    r = _doctor("--json", "doctor", env=env)
    assert r.returncode == 1, r
    check = _checks(r.stdout)["redis"]
    assert check["status"] == "fail" and "\n" not in check["message"], check
    assert "127.0.0.1" in check["message"] and "***" in check["message"], check
    assert "hunter2secret" not in r.stdout + r.stderr
    human = _doctor("doctor", env=env)
    assert "hunter2secret" not in human.stdout + human.stderr
    assert len([x for x in human.stdout.splitlines() if x.startswith("FAIL redis:")]) == 1, human.stdout
    offline = _checks(_doctor("--json", "doctor", "--offline", env={"BESTSTAG_REDIS_URL": url}).stdout)["redis"]
    assert offline["status"] == "skip" and "--offline" in offline["message"], offline


def test_s3_at_a_closed_port_is_one_line_without_the_keys(served: str, tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"backup:\n  remote: s3://beststag-test/backups\n  remote_endpoint_url: http://127.0.0.1:{_closed_port()}\n"
    )
    env = {
        "AWS_ACCESS_KEY_ID": "AKIADOCTORTESTKEY01",
        "AWS_SECRET_ACCESS_KEY": "doctorTestSecretValue0123456789",
        "AIRTABLE_ENDPOINT_URL": served,
    }
    r = _doctor("--json", "--config", str(cfg), "doctor", env=env)
    assert r.returncode == 1, r
    check = _checks(r.stdout)["s3"]
    assert check["status"] == "fail" and "\n" not in check["message"] and "127.0.0.1" in check["message"], check
    assert "AKIADOCTORTESTKEY01" not in r.stdout + r.stderr and "doctorTestSecretValue" not in r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------- prometheus


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder everyone can traverse (pytest's own tmp folders sit under a 0700 one)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="beststag-prom-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_textfile_in_a_private_folder_is_unreadable_by_node_exporter(settings: Any, open_tmp: Path) -> None:
    from beststag_cli.doctor import check_prometheus

    private = open_tmp / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    prom = private / "beststag.prom"
    prom.write_text("# empty\n")
    os.chmod(prom, 0o644)
    c = check_prometheus(settings, prom)
    assert c.status == "fail" and str(private) in c.message and c.hint == f"chmod o+x {private}", c
    os.chmod(private, 0o755)
    os.chmod(prom, 0o600)
    c = check_prometheus(settings, prom)
    assert c.status == "fail" and c.hint == f"chmod 644 {prom}", c
    os.chmod(prom, 0o644)
    assert check_prometheus(settings, prom).status == "ok"
    assert stat.S_IMODE(os.stat(prom).st_mode) == 0o644  # looked at, never changed


def test_the_default_textfile_inside_the_data_dir_is_a_finding(cli: Any, settings: Any) -> None:
    r = cli("--json", "metrics", "collect", "--type", "usage", "--range", "24h", "--format", "prometheus")
    assert r.exit_code == 0, r
    assert settings.paths.prom_file.exists()
    d = cli("--json", "doctor", "--offline")
    check = _checks(d.stdout)["prometheus"]
    assert check["status"] == "fail" and "node_exporter" in check["message"], check
    assert "metrics.prometheus_path" in check["hint"], check


# ---------------------------------------------------------------------------------------------- hints


def test_no_hint_sends_the_operator_back_to_doctor(cli: Any, settings: Any, tmp_path: Path) -> None:
    """Journal, cache and base all broken: their borrowed hints say `beststag doctor`; doctor's must not."""
    assert cli("--json", "cache", "get", "Usuários", "--max", "2").exit_code == 0
    (settings.paths.cache_dir / "store" / "cache.db").write_bytes(b"not a database" * 50)
    settings.paths.journal.write_bytes(b"not a database either" * 50)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("airtable:\n  base_id: appNotTheSandbox1\n")
    for args in (("--json", "--config", str(cfg), "doctor"), ("--config", str(cfg), "doctor")):
        r = cli(*args)
        assert r.exit_code == 1, r
        assert "beststag doctor" not in r.stdout + r.stderr, r
    for c in _checks(cli("--json", "--config", str(cfg), "doctor").stdout).values():
        assert "doctor" not in c["hint"], c


@given(
    st.text(max_size=80),
    st.sampled_from(["run `beststag doctor`", "`beststag doctor --repair` fixes it", "see `doctor`", "doctor --fix"]),
    st.text(max_size=80),
)
@hsettings(max_examples=200, deadline=None)
def test_a_borrowed_hint_loses_every_clause_that_names_doctor(before: str, self_ref: str, after: str) -> None:
    from beststag_cli.doctor import Check

    hint = Check("x", "fail", "m", f"{before}; {self_ref}; {after}").hint
    assert "beststag doctor" not in hint and "`doctor" not in hint and "doctor --" not in hint


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=4, max_size=40))
@hsettings(max_examples=200, deadline=None)
def test_a_redis_password_never_survives_the_scrub(password: str) -> None:
    from beststag_cli.config import Settings
    from beststag_cli.doctor import _scrub

    s = Settings()
    text = f"redis://:{password}@10.0.0.1:6379/0 (cache.redis_url): ConnectionError: Error connecting"
    assert password not in _scrub(text, s).replace(
        "10.0.0.1:6379/0 (cache.redis_url): ConnectionError: Error connecting", ""
    )
