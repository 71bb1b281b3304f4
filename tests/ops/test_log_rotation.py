"""var/logs rotation under cron-like load: several processes, job lines whole, bounded files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from .conftest import job_lines, write_config

_SCRIPT = """
import sys
from beststag_cli.cli.main import run
for _ in range(int(sys.argv[2])):
    assert run(["--config", sys.argv[1], "--quiet", "cache", "prune"]) == 0
"""


def _hammer(cfg: Path, data_dir: Path, processes: int, runs: int) -> None:
    env = {**os.environ, "BESTSTAG_DATA_DIR": str(data_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(cfg), str(runs)], env=env) for _ in range(processes)]
    assert [p.wait(timeout=120) for p in procs] == [0] * processes


def test_concurrent_jobs_rotate_the_log_without_losing_or_splitting_a_line(tmp_path: Path, clean_env: Path) -> None:
    cfg = write_config(tmp_path, "logging:\n  max_bytes: 4096\n  backups: 200\n")
    _hammer(cfg, clean_env, processes=3, runs=25)
    files = [f for f in (clean_env / "logs").iterdir() if not f.name.endswith(".lock")]
    assert len(files) > 5  # it did rotate, many times
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert f.stat().st_size <= 4096 + 1024  # the limit, plus at most the line that crossed it
    lines = job_lines(clean_env)  # every line parses: none was split by a rotation
    started = {x["run_id"] for x in lines if x["event"] == "job.started"}
    finished = {x["run_id"] for x in lines if x["event"] == "job.finished"}
    assert len(started) == len(finished) == 75 and started == finished
    assert len({x["pid"] for x in lines}) == 3


def test_rotation_keeps_only_the_configured_number_of_files(tmp_path: Path, clean_env: Path) -> None:
    cfg = write_config(tmp_path, "logging:\n  max_bytes: 2048\n  backups: 2\n")
    _hammer(cfg, clean_env, processes=2, runs=15)
    names = sorted(f.name for f in (clean_env / "logs").iterdir())
    assert names == ["beststag.jsonl", "beststag.jsonl.1", "beststag.jsonl.2", "beststag.jsonl.lock"]
    assert sum(f.stat().st_size for f in (clean_env / "logs").iterdir()) <= 3 * (2048 + 1024)
    assert job_lines(clean_env)[-1]["event"] == "job.finished"  # the newest lines are the ones kept
