"""Every command of crontab.example runs against the sandbox; the cron-job wrapper as cron runs it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from beststag_cli.ops.schedule import parse_crontab

from .conftest import job_lines

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = parse_crontab((ROOT / "crontab.example").read_text(encoding="utf-8"))
WRAPPER = ROOT / "scripts" / "cron-job"


@pytest.mark.parametrize("entry", ENTRIES, ids=[" ".join(e.args[:4]) for e in ENTRIES])
def test_every_crontab_command_runs_against_the_sandbox(cli: Any, clean_env: Path, entry: Any) -> None:
    if entry.args[:2] == ("metrics", "alerts"):  # a fresh install has no backup yet: make the one alert quiet
        for t in ("complete", "incremental", "critical"):
            assert cli("--quiet", "backup", "run", "--type", t).exit_code == 0
    if entry.args[:2] == ("backup", "drill"):  # cron drills the Sunday 02:00 complete backup at 05:30
        assert cli("--quiet", "backup", "run", "--type", "complete").exit_code == 0
    r = cli("--quiet", *entry.args)
    assert r.exit_code == 0, r
    assert r.stderr == ""  # --quiet: nothing for cron to mail
    finished = job_lines(clean_env, "job.finished")[-1]
    assert finished["outcome"] == "ok" and finished["exit_code"] == 0


# ---- the wrapper, in a subprocess as cron would run it


def _env_file(tmp_path: Path, data_dir: Path, mode: int = 0o600, extra: str = "") -> Path:
    f = tmp_path / "beststag.env"
    # these jobs run the sandbox on purpose: the wrapper refuses sandbox mode unless asked
    f.write_text(
        f"# secrets of the cron jobs\nBESTSTAG_DATA_DIR={data_dir}\nBESTSTAG_ALLOW_SANDBOX=1\n{extra}", encoding="utf-8"
    )
    f.chmod(mode)
    return f


def _cron_env() -> dict[str, str]:
    """What cron gives a job: a minimal environment (no BESTSTAG_*, no venv on PATH)."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def _wrapper(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        env=_cron_env(),
        cwd="/",
        timeout=120,
    )


@pytest.fixture
def seeded(clean_env: Path, _sample_db: Path) -> Path:
    """The data dir with the seeded sample sandbox where a subprocess finds it."""
    (clean_env / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, clean_env / "sandbox" / "base.sqlite")
    return clean_env


def test_the_wrapper_runs_a_job_quietly_from_anywhere(tmp_path: Path, seeded: Path) -> None:
    env_file = _env_file(tmp_path, seeded)
    r = _wrapper(
        "metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus", env_file=env_file
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")  # the prom text went to /dev/null
    assert (seeded / "metrics" / "beststag.prom").is_file()
    assert job_lines(seeded, "job.finished")[-1]["outcome"] == "ok"


def test_the_wrapper_passes_a_failure_on_for_cron_to_mail(tmp_path: Path, seeded: Path) -> None:
    env_file = _env_file(tmp_path, seeded)
    r = _wrapper("backup", "run", "--type", "hourly", env_file=env_file)
    assert r.returncode == 2 and r.stdout == ""
    assert "unknown backup type 'hourly'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert job_lines(seeded, "job.finished")[-1]["outcome"] == "failed"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_the_wrapper_refuses_an_env_file_others_can_read(tmp_path: Path, seeded: Path, mode: int) -> None:
    env_file = _env_file(tmp_path, seeded, mode=mode)
    r = _wrapper("cache", "prune", env_file=env_file)
    assert r.returncode == 2 and "chmod 600" in r.stderr
    assert not (seeded / "logs").exists()  # beststag never ran


def test_the_wrapper_refuses_a_missing_env_file(tmp_path: Path, seeded: Path) -> None:
    r = _wrapper("cache", "prune", env_file=tmp_path / "nope.env")
    assert r.returncode == 2 and "not found" in r.stderr
    assert stat.S_IMODE(os.stat(WRAPPER).st_mode) & 0o111  # and it is executable as shipped
