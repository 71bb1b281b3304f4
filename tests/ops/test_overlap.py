"""Two overlapping scheduled backups: the second exits 75 at once, is logged, and harms nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import job_lines

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "scripts" / "cron-job"


def _start(env_file: Path, *args: str) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    return subprocess.Popen(
        [str(WRAPPER), "--env-file", str(env_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the first backup to start")
        time.sleep(0.05)


def test_a_second_backup_while_one_runs_exits_75_logged_and_harmless(
    tmp_path: Path, clean_env: Path, _sample_db: Path
) -> None:
    from beststag_cli.backup.layout import BlobStore, list_backups
    from beststag_cli.backup.verify import verify_backup

    (clean_env / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, clean_env / "sandbox" / "base.sqlite")
    env_file = tmp_path / "env"
    # every sandbox request takes 150 ms, so the complete backup runs for seconds
    env_file.write_text(
        f"BESTSTAG_DATA_DIR={clean_env}\nBESTSTAG_ALLOW_SANDBOX=1\nBESTSTAG_SANDBOX_FAULTS='{{\"latency_ms\": 150}}'\n"
    )
    env_file.chmod(0o600)

    first = _start(env_file, "backup", "run", "--type", "complete")
    try:
        _wait_for(lambda: any(x.get("event") == "backup.started" for x in _lines(clean_env)))
        second = subprocess.run(
            [str(WRAPPER), "--env-file", str(env_file), "backup", "run", "--type", "critical"],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
        )
        assert first.poll() is None, "the first backup should still be running"
        assert (second.returncode, second.stdout, second.stderr) == (75, "", "")  # cron mails nothing
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert (first.returncode, err) == (0, "")

    ends = {x["job"]: x for x in job_lines(clean_env, "job.finished")}
    assert ends["backup-critical"]["outcome"] == "locked" and ends["backup-critical"]["exit_code"] == 75
    assert "another backup of base appBestStagSandbx is running" in ends["backup-critical"]["error"]
    assert ends["backup-complete"]["outcome"] == "ok"
    started = [x for x in _lines(clean_env) if x.get("event") == "backup.started"]
    assert [x["type"] for x in started] == ["complete"]  # the second one did nothing

    root = clean_env / "backups"
    backups = list_backups(root)
    assert [b.id.split("/")[0] for b in backups] == ["complete"]
    store, seen = BlobStore(root), set()
    assert verify_backup(backups[0], store, seen).records > 1900
    partial = root / ".partial"
    assert not partial.exists() or list(partial.iterdir()) == []
    # the lock was released: the next slot runs
    again = subprocess.run(
        [str(WRAPPER), "--env-file", str(env_file), "backup", "run", "--type", "critical"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
    )
    assert again.returncode == 0, again.stderr


def _lines(data_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    f = data_dir / "logs" / "beststag.jsonl"
    if not f.exists():
        return []
    out = []
    for line in f.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written right now
            pass
    return out
