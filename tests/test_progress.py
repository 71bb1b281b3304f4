"""Progress of long work: live on a terminal (a pseudo-terminal), JSON lines in the log when piped.

The terminal tests run the real console script with stderr on a pty and replay what it wrote
through a small terminal model (the codes rich's Live uses), so they see the final screen an
operator sees: log lines above the display, nothing torn.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import queue
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from beststag_cli import logs

SGR = re.compile(r"\x1b\[[0-9;]*m")
CSI = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])")
WAIT_S = 180.0  # generous: CI runs with both cores busy


def screen(raw: str) -> list[str]:
    """The final screen of a terminal fed ``raw``: text, \\r, \\n, cursor up (CSI A), erase line (CSI K)."""
    lines: list[str] = [""]
    row = col = 0
    i = 0
    raw = SGR.sub("", raw)
    while i < len(raw):
        m = CSI.match(raw, i)
        if m:
            private, arg, op = m.groups()
            if not private and op == "A":
                row = max(0, row - int(arg or 1))
            elif not private and op == "K":
                lines[row] = ""
                col = 0
            i = m.end()
            continue
        ch = raw[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            while len(lines) <= row:
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1 :]
            col += 1
    return [ln.rstrip() for ln in lines if ln.strip()]


def run_on_pty(args: list[str], cols: int = 200) -> tuple[int, str, str]:
    """Run ``beststag ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, cols, 0, 0))
    # the terminal, said in full: rich prefers $COLUMNS to the pty's size and answers 80x25 whatever the
    # size when TERM is dumb or unset-like (CI's); a narrow width squeezed every column to "1…" in loaded runs
    env = {**os.environ, "COLUMNS": str(cols), "LINES": "60", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beststag_cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out = proc.communicate(timeout=WAIT_S)[0]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def run_piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def seeded(clean_env: Path, _sample_db: Path) -> Path:
    """The data dir holding a copy of the seeded sample base (the child process would seed it again)."""
    (clean_env / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, clean_env / "sandbox" / "base.sqlite")
    return clean_env


def _progress_events(data_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    lines = (data_dir / "logs" / "beststag.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "progress"]


# ---- a terminal


def test_backup_on_a_terminal_counts_records_and_bytes_with_rates_and_no_made_up_bar(seeded: Path) -> None:
    """A listing's total is unknown: count + rate per table, no bar (an earlier run's count made bars sit full)."""
    rc, _, term = run_on_pty(["backup", "run", "--type", "complete"])
    assert rc == 0, term[-2000:]
    final = screen(term)
    usuarios = [ln for ln in final if "backup Usuários" in ln]
    assert len(usuarios) == 1, final  # drawn once: every refresh replaced the one before
    assert re.search(r"backup Usuários\s+\d[\d,]* records .*rec/s", usuarios[0]), usuarios
    tarefas = next(ln for ln in final if "backup Tarefas" in ln)
    assert re.search(r"\d+(\.\d)? [KM]?B .*rec/s · \d+(\.\d)? [KM]?B/s", tarefas), tarefas  # attachment downloads
    assert "━" not in term  # no bar for a total nobody knows, not even a full one at the end


def test_verify_and_seed_on_a_terminal_show_bars_of_known_totals_with_eta(seeded: Path) -> None:
    assert run_piped("backup", "run", "--type", "complete").returncode == 0
    rc, _, term = run_on_pty(["backup", "verify", "--all"])
    assert rc == 0, term[-2000:]
    final = screen(term)
    line = next(ln for ln in final if ln.startswith("✓ verify ") and ln.endswith(" records"))
    m = re.search(r"━+ (\d[\d,]*)/(\d[\d,]*) records", line)
    assert m and m.group(1) == m.group(2), line  # the manifest's count, reached
    rc, _, term = run_on_pty(["sandbox", "seed", "--scale", "0.05", "--yes"])
    assert rc == 0, term[-2000:]
    final = screen(term)
    seeded_lines = [ln for ln in final if ln.startswith("✓ seed ") and "/" in ln]
    assert len(seeded_lines) >= 7, final  # one a table of the sample base
    assert all(re.search(r"━+ (\d+)/\1 records .*rec/s", ln) for ln in seeded_lines), seeded_lines


# ---- a pipe (cron)


def test_piped_progress_is_json_lines_in_the_log_and_nothing_on_the_console(seeded: Path) -> None:
    r = run_piped("--json", "backup", "run", "--type", "complete")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # cron mails whatever reaches stderr
    tables = json.loads(r.stdout)["tables"]
    done = {e["task"]: e for e in _progress_events(seeded) if e["status"] == "done"}
    for name, t in tables.items():
        e = done[f"backup {name}"]
        assert e["done"] == t["records"] and e["total"] is None and e["eta_s"] is None
        assert e["rate_per_s"] >= 0 and e["unit"] == "records"
    assert done["backup Tarefas"]["bytes"] > 0  # its attachments were downloaded
    r = run_piped("--quiet", "backup", "verify", "--all")
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r
    verify = [
        e
        for e in _progress_events(seeded)
        if e["task"].startswith("verify ") and e["status"] == "done" and e["unit"] == "records"
    ]
    assert verify and verify[0]["done"] == verify[0]["total"] == sum(t["records"] for t in tables.values())


def test_log_reporter_writes_a_line_each_interval_and_one_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    from beststag_cli import progress

    now = [100.0]
    rep = progress.LogReporter(interval_s=10)
    rep.monotonic = lambda: now[0]
    with caplog.at_level(logging.INFO, logger=logs.EVENT_LOGGER_NAME):
        task = rep.task("restore Usuários", total=40)
        for _ in range(4):
            now[0] += 6
            task.advance(10, bytes=1000)
        task.done("40 records")
    events = [r.fields for r in caplog.records if getattr(r, "event", None) == "progress"]  # type: ignore[attr-defined]
    assert [e["status"] for e in events] == ["running", "running", "done"]  # at 12 s, 24 s, and the end
    assert events[0]["done"] == 20 and events[0]["eta_s"] == pytest.approx(12.0)
    assert events[-1] == {**events[-1], "done": 40, "total": 40, "bytes": 4000, "note": "40 records"}


def test_a_failing_display_never_fails_the_work() -> None:
    from beststag_cli import progress

    class Broken:
        def task(self, label: str, *, total: int | None = None, unit: str = "records") -> object:
            raise RuntimeError("terminal gone")

    task = progress.guard(Broken()).task("backup Usuários")  # type: ignore[arg-type]
    task.advance(3)
    task.done()


# ---- log lines above the live display


def test_log_lines_print_above_the_live_display_without_tearing_it(
    settings,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log handler and the display share one Console: rich prints each log line above the bars."""
    from beststag_cli.cli.console_log import rich_console, rich_handler
    from beststag_cli.cli.progress_view import live_progress

    monkeypatch.setenv("COLUMNS", "200")
    raw = io.StringIO()
    logs.setup_logging(settings, stream=raw, tty=True, terminal_handler=rich_handler)
    try:
        console = rich_console()
        assert console is not None
        console.record = True
        with live_progress() as rep:
            task = rep.task("backup Usuários", total=None)
            task.advance(100)
            logs.log_event("backup.slow_page", _level=logging.WARNING, table="Usuários", seconds=12.5)
            task.advance(50)
            task.done("150 records")
    finally:
        logs.teardown_logging()
    final = screen(raw.getvalue())
    warn = [i for i, ln in enumerate(final) if "backup.slow_page" in ln]
    bars = [i for i, ln in enumerate(final) if "backup Usuários" in ln]
    assert len(warn) == 1 and len(bars) == 1, final
    assert warn[0] < bars[0]  # above the display, still on screen once the display moved on
    assert "backup.slow_page table=Usuários seconds=12.5" in final[warn[0]]
    assert "150 records" in final[bars[0]]
    assert "backup.slow_page table=Usuários seconds=12.5" in console.export_text()


# ---- fields on console lines


def test_console_lines_carry_their_fields_and_verbose_shows_them_whole(seeded: Path) -> None:
    r = run_piped("-v", "backup", "run", "--type", "critical")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "job.finished" in ln)
    assert re.search(r"job\.finished job=backup-critical run_id=\S+ outcome=ok exit_code=0", line), line
    # without -v a long value is cut; with it, whole
    rec = logging.LogRecord("beststag.event", logging.INFO, "", 0, "x.y", None, None)
    rec.fields = {"note": "n" * 200, "skip": None}  # type: ignore[attr-defined]
    short = logs.FieldsFormatter().format(rec)
    assert short.startswith("x.y note=nnn") and len(short) < 100 and "skip" not in short
    assert logs.FieldsFormatter(verbose=True).format(rec) == f"x.y note={'n' * 200} skip=null"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_logs_one_json_line_a_request_when_not_on_a_terminal(seeded: Path) -> None:
    pytest.importorskip("uvicorn")
    port = _free_port()
    env = {**os.environ, "BESTSTAG_WEBHOOK_SECRET": "s3cret-for-the-test-0123456789"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beststag_cli", "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + WAIT_S
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        status = None
        while status is None:  # the first answer, whatever it says (start-up under load takes a while)
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=WAIT_S) as resp:
                    status = resp.status
            except urllib.error.HTTPError as err:  # an answer too: its line says the same status
                status = err.code
            except OSError:
                time.sleep(0.2)  # the port is not open yet: poll it, nothing else waits on time
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        while True:
            text = lines.get(timeout=WAIT_S)
            if text.startswith("{") and json.loads(text).get("event") == "webhook.request":
                e = json.loads(text)
                break
        assert (e["method"], e["path"], e["status"]) == ("GET", "/healthz", status)
        assert e["duration_ms"] >= 0
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)
