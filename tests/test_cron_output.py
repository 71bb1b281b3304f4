"""What cron mails: `beststag --quiet metrics alerts` through the real console script, stdout/stderr piped."""

from __future__ import annotations

import os
import subprocess
import sys

from beststag_cli.config import load_config
from beststag_cli.journal import Journal


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_quiet_alerts_print_each_firing_alert_with_figure_and_threshold(clean_env) -> None:  # type: ignore[no-untyped-def]
    j = Journal(load_config().paths.journal)
    for i in range(30):  # 30 cache lookups, 3 hits: 10% against the 80% minimum
        j.record_cache_event(event="hit" if i < 3 else "miss", table_name="Tarefas")
    j.close()
    r = _run("--quiet", "metrics", "alerts")
    assert r.returncode == 1, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert any(
        ln.startswith(
            "backup_failure: 3 types, threshold 0 types (fires above) - backups failing: "
            "incremental: no successful run yet"
        )
        for ln in lines
    ), r.stderr
    assert any(ln.startswith("cache_hit_ratio: 10.0%, threshold") and "(fires below)" in ln for ln in lines), r.stderr
    assert "2 alert(s) firing" in lines[-1]
    assert len(lines) == 3, r.stderr  # one line per firing alert, then the error: nothing else for cron to mail
