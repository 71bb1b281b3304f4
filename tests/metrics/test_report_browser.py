"""The HTML report opens in headless Chromium without console messages; a screenshot is kept.

Skipped where Debian's `chromium` is not installed (`apt-get install -y chromium`). The
screenshot is written to the test's tmp dir, and copied to $METRICS_REPORT_SCREENSHOT when set
(not a BESTSTAG_* name: clean_env clears those), e.g. to look at it after a run.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from datetime import UTC, datetime

import pytest

from beststag_cli import clock
from beststag_cli.config import SANDBOX_BASE_ID, load_config
from beststag_cli.journal import Journal
from beststag_cli.metrics.usage import parse_created

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="headless check needs Debian's chromium (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium(cli, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shot_copy = os.environ.get("METRICS_REPORT_SCREENSHOT")
    # an hour after the sample base's newest interaction, so its activity falls in the window
    T = 3600 + max(parse_created(r["createdTime"]) for r in api.table(SANDBOX_BASE_ID, "Interações").all(fields=[]))
    clock.set_now(datetime.fromtimestamp(T, UTC))
    j = Journal(load_config().paths.journal)
    for i in range(400):  # a week of traffic with a slow, error-prone afternoon
        t = T - i * 1500
        slow = 30 <= i < 40
        j.record_request(base=SANDBOX_BASE_ID, table_name="Tarefas" if i % 2 else "Interações", method="GET",
                         operation="list", status=500 if slow and i % 3 == 0 else 200,
                         duration_ms=(2500.0 if slow else 120.0) + (i % 7) * 15, records=100, bytes=12000, ts=t)
        j.record_cache_event(event="hit" if (i % 5) and not slow else "miss", table_name="Tarefas", ts=t)
    for k, (typ, status) in enumerate([("critical", "ok"), ("critical", "failed"), ("incremental", "ok"),
                                       ("complete", "ok"), ("critical", "ok")]):
        j.record_backup_run(id=f"b{k}", type=typ, status=status, started=T - (k + 1) * 20000,
                            finished=T - (k + 1) * 20000 + 90, records=1000, bytes=250_000)
    for d in range(7, 0, -1):
        j.add_count_snapshots({"Usuários": 100 - d * 2, "Interações": 1000 - d * 40, "Tarefas": 300 - d * 5},
                              ts=T - d * 86400)
    j.close()
    out = tmp_path / "report.html"
    r = cli("metrics", "report", "--out", str(out), "--range", "7d")
    clock.reset()
    assert r.exit_code == 0, r
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1500,2400",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", out.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    width, height = _png_size(shot.read_bytes())
    assert (width, height) == (1500, 2400)
    assert shot.stat().st_size > 50_000  # charts, not a blank page
    if shot_copy:
        shutil.copy(shot, shot_copy)
