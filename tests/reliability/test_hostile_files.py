"""Hostile files in the data dir (issue 15, defects 10, 13, 14): symlinks planted at every path beststag
opens, a damaged journal, garbage lock files, umask 000, and `metrics report --out` next to other people's files.

Each planted link points at a file or folder outside the data dir (in tmp_path); after the command the
target must be exactly as before (content, mode, what the folder holds), and the command either
refuses with one line and exit 2 (UnsafePath) or works without going through the link (logs,
settings snapshot: side files whose loss must not stop a command).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.journal import Journal

BASE = "appBestStagSandbx"
Snapshot = dict[str, tuple[int, bytes | None]]


def _snap(p: Path) -> Snapshot:
    """Every entry under ``p`` (links not followed): mode and content."""
    out: Snapshot = {}
    for x in [p, *sorted(p.rglob("*"))] if p.is_dir() else [p]:
        st = os.lstat(x)
        out[str(x)] = (st.st_mode, x.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Somebody else's files: a folder (0755) holding a file (0644), outside the data dir."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    os.chmod(d, 0o755)
    (d / "victim.txt").write_text("precious, not beststag's\n")
    os.chmod(d / "victim.txt", 0o644)
    return d


def _one_line_refusal(r: Any) -> None:
    """Exit 2 with one UnsafePath error (a JSON error object under --json, else one stderr line)."""
    assert r.exit_code == 2, r
    assert "Traceback" not in r.stderr and "internal_error" not in r.stdout + r.stderr, r
    if r.stdout.strip():
        err = r.json()["error"]
        assert err["type"] == "unsafe_path" and "\n" not in err["message"], r
    else:
        assert "symlink" in r.stderr or "not a regular file" in r.stderr, r
        assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r


def _seed_old_journal_rows(settings: Any) -> None:
    with Journal(settings.paths.journal) as j:
        for i in range(5):
            j.record_request(
                base=BASE,
                table_name="Usuários",
                method="GET",
                status=200,
                duration_ms=1.0,
                ts=clock.timestamp() - 400 * 86400 + i,
            )


def _limited(settings: Any, sandbox: Any) -> None:
    from beststag_cli.sandbox.app import LimitConfig

    sandbox.app.set_limits(LimitConfig(per_second=50))  # the gateway then uses the file limiter (locks/)


#: name -> (path relative to the data dir, link to the folder or to the file, setup, command, refuse?)
Case = tuple[str, str, Callable[[Any, Any], None] | None, tuple[str, ...], bool]

CASES: dict[str, Case] = {
    # a job logs job.started/job.finished to the file: it must run, logging to the console only
    "logs dir": ("logs", "dir", None, ("--json", "metrics", "collect", "--type", "performance"), False),
    "log file": ("logs/beststag.jsonl", "file", None, ("--json", "metrics", "collect", "--type", "performance"), False),
    "log lock": (
        "logs/beststag.jsonl.lock",
        "file",
        None,
        ("--json", "metrics", "collect", "--type", "performance"),
        False,
    ),
    "settings snapshot": ("settings.snapshot.json", "file", None, ("--json", "doctor"), None),  # type: ignore[dict-item]
    "journal": ("journal.sqlite", "file", None, ("--json", "metrics", "collect", "--type", "performance"), True),
    "journal wal": (
        "journal.sqlite-wal",
        "file",
        None,
        ("--json", "metrics", "collect", "--type", "performance"),
        True,
    ),
    "journal shm": (
        "journal.sqlite-shm",
        "file",
        None,
        ("--json", "metrics", "collect", "--type", "performance"),
        True,
    ),
    # the cache never fails a read: a link where its files belong is moved aside (never followed) and the
    # answer comes from Airtable (tests/cache/test_cache_trust.py checks the warning and the rebuild)
    "cache dir": ("cache", "dir", None, ("--json", "cache", "get", "Usuários", "--max", "1"), False),
    "cache store": ("cache/store", "dir", None, ("--json", "cache", "get", "Usuários", "--max", "1"), False),
    "cache db": ("cache/store/cache.db", "file", None, ("--json", "cache", "get", "Usuários", "--max", "1"), False),
    "cache db wal": (
        "cache/store/cache.db-wal",
        "file",
        None,
        ("--json", "cache", "get", "Usuários", "--max", "1"),
        False,
    ),
    "locks dir": ("locks", "dir", _limited, ("--json", "query", "run", "Usuários", "--max", "1"), True),
    "limiter state": (
        f"locks/ratelimit.{BASE}.state",
        "file",
        _limited,
        ("--json", "query", "run", "Usuários", "--max", "1"),
        True,
    ),
    "backup lock": (f"locks/backup-{BASE}.lock", "file", None, ("--json", "backup", "run", "--type", "complete"), True),
    "backups dir": ("backups", "dir", None, ("--json", "backup", "run", "--type", "complete"), True),
    "partial dir": ("backups/.partial", "dir", None, ("--json", "backup", "run", "--type", "complete"), True),
    "backup type dir": ("backups/complete", "dir", None, ("--json", "backup", "run", "--type", "complete"), True),
    "metrics dir": (
        "metrics",
        "dir",
        None,
        ("--json", "metrics", "collect", "--type", "performance", "--format", "prometheus"),
        True,
    ),
    "prom file": (
        "metrics/beststag.prom",
        "file",
        None,
        ("--json", "metrics", "collect", "--type", "performance", "--format", "prometheus"),
        True,
    ),
    "archive dir": (
        "metrics/archive",
        "dir",
        lambda s, sb: _seed_old_journal_rows(s),
        ("--json", "metrics", "archive"),
        True,
    ),
    "schema cache": (f"schema/{BASE}.json", "file", None, ("--json", "query", "run", "Usuários", "--max", "1"), True),
    "schema dir": ("schema", "dir", None, ("--json", "query", "run", "Usuários", "--max", "1"), True),
    "sandbox dir": ("sandbox", "dir", None, ("--json", "doctor"), None),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_symlink_planted_in_the_data_dir_is_never_followed(
    case: str, cli: Any, settings: Any, sandbox: Any, outside: Path
) -> None:
    rel, kind, setup, cmd, refuse = CASES[case]
    data = settings.paths.data_dir
    if setup is not None:
        setup(settings, sandbox)
    link = data / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        os.rename(link, link.with_name(link.name + ".moved"))
    elif link.exists():
        link.unlink()
    link.symlink_to(outside if kind == "dir" else outside / "victim.txt")
    before = _snap(outside)
    r = cli(*cmd)
    assert _snap(outside) == before, f"{case}: the link's target changed ({r})"
    if refuse is not False:  # refused: the link is left as it was (the cache instead moves it aside and rebuilds)
        assert link.is_symlink() or not os.path.lexists(link)
    if refuse is True:
        _one_line_refusal(r)
    elif refuse is False:
        assert r.exit_code == 0, r
    else:  # doctor: works, and reports the link as a failed data_dir check
        assert r.exit_code in (0, 1), r
        assert "Traceback" not in r.stderr and "internal_error" not in r.stderr, r


def test_cleanup_never_deletes_through_a_symlinked_attachments_folder(cli: Any, settings: Any, outside: Path) -> None:
    assert cli("--quiet", "backup", "run", "--type", "complete").exit_code == 0
    store = settings.paths.backups / "attachments"
    prefixes = sorted(p for p in store.iterdir() if len(p.name) == 2)
    assert prefixes, "the sample base has attachments"
    victim_dir = prefixes[0]
    # a file outside named like a blob, old enough to be collected, reached through a planted link
    fake = outside / ("0" * 64)
    fake.write_bytes(b"not a blob")
    os.utime(fake, (1, 1))
    for p in prefixes:
        (p.parent / (p.name + ".moved")).mkdir()
    os.rename(victim_dir, victim_dir.with_name(victim_dir.name + ".real"))
    victim_dir.symlink_to(outside)
    before = _snap(outside)
    r = cli("--json", "backup", "cleanup")
    assert _snap(outside) == before, r
    _one_line_refusal(r)


def test_every_command_writes_through_planted_attachment_links_nowhere(cli: Any, settings: Any, outside: Path) -> None:
    store = settings.paths.backups / "attachments"
    store.mkdir(parents=True)
    for i in range(256):
        (store / f"{i:02x}").symlink_to(outside)
    before = _snap(outside)
    r = cli("--json", "backup", "run", "--type", "complete")
    assert _snap(outside) == before, r
    # the tables without attachments are backed up; the one with attachments fails on the link (exit 3),
    # and its error is the one UnsafePath line
    assert r.exit_code == 3, r
    failed = {t: v for t, v in r.json()["tables"].items() if v["status"] != "ok"}
    assert failed and all("symlink" in str(v.get("error")) for v in failed.values()), failed


# ---- a damaged journal (defect 10)


def _garbage(p: Path) -> None:
    p.write_bytes(b"this is not a database " * 500)


def _truncated(p: Path) -> None:
    os.truncate(p, 3000)


def _malformed(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    raw[4096 * 2 :] = b"\x07" * (len(raw) - 4096 * 2)
    p.write_bytes(bytes(raw))


def _wrong_schema(p: Path) -> None:
    conn = sqlite3.connect(p, isolation_level=None)
    conn.execute("DROP TABLE requests")
    conn.close()


DAMAGE = {"garbage": _garbage, "truncated": _truncated, "malformed": _malformed, "wrong_schema": _wrong_schema}


def _damaged_journal(settings: Any, damage: str) -> Path:
    path = settings.paths.journal
    with Journal(path) as j:
        for i in range(400):
            j.record_request(
                base=BASE, table_name="Usuários", method="GET", status=200, duration_ms=1.0, ts=clock.timestamp() - i
            )
        j.record_backup_run(id="complete/x", type="complete", status="ok", started=1.0, finished=2.0)
        j.checkpoint()
    DAMAGE[damage](path)
    return path


def _corrupt_line(r: Any, path: Path) -> None:
    assert r.exit_code == 1, r
    assert str(path) in r.stderr or str(path) in r.stdout, r
    assert "doctor --repair" in (r.stderr + r.stdout), r
    assert "internal_error" not in r.stderr + r.stdout and "Traceback" not in r.stderr, r


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_journal_is_one_line_and_doctor_repairs_it(damage: str, cli: Any, settings: Any) -> None:
    path = _damaged_journal(settings, damage)
    damaged = path.read_bytes()
    # reads only log to the journal: they work (one warning), nothing is lost
    r = cli("--json", "cache", "get", "Usuários", "--max", "2")
    assert r.exit_code == 0, r
    assert len(r.json()["records"]) == 2
    assert cli("--json", "query", "run", "Usuários", "--max", "1").exit_code == 0
    # what the journal is the point of (metrics, backup runs and their alert, restores' resume state):
    # one line naming the file and the recovery, exit 1
    _corrupt_line(cli("--json", "metrics", "collect", "--type", "performance"), path)
    _corrupt_line(cli("--json", "metrics", "alerts"), path)
    _corrupt_line(cli("backup", "run", "--type", "complete"), path)
    assert (
        not any((settings.paths.backups / "complete").glob("*"))
        if (settings.paths.backups / "complete").exists()
        else True
    )
    d = cli("--json", "doctor")
    assert d.exit_code == 1, d
    checks = {c["name"]: c for c in d.json()["checks"]}
    assert checks["journal"]["status"] == "fail" and str(path) in checks["journal"]["message"]
    assert path.read_bytes() == damaged  # doctor without --repair changes nothing
    fixed = cli("--json", "doctor", "--repair")
    assert {c["name"]: c for c in fixed.json()["checks"]}["journal"]["status"] == "ok", fixed
    aside = sorted(path.parent.glob("journal.sqlite.corrupt-*"))
    assert [p for p in aside if not p.name.endswith(("-wal", "-shm"))], aside
    assert next(p for p in aside if not p.name.endswith(("-wal", "-shm"))).read_bytes() == damaged
    assert cli("--quiet", "backup", "run", "--type", "complete").exit_code == 0
    assert cli("--json", "metrics", "collect", "--type", "performance").exit_code == 0


def test_a_wal_full_of_garbage_is_ignored_and_doctor_says_ok(cli: Any, settings: Any) -> None:
    path = settings.paths.journal
    with Journal(path) as j:
        j.record_backup_run(id="complete/x", type="complete", status="ok", started=1.0, finished=2.0)
        j.checkpoint()
    Path(str(path) + "-wal").write_bytes(os.urandom(64 * 1024))
    assert cli("--json", "metrics", "collect", "--type", "performance").exit_code == 0
    d = cli("--json", "doctor")
    assert {c["name"]: c for c in d.json()["checks"]}["journal"]["status"] == "ok", d


# ---- garbage lock files, umask 000


def test_garbage_in_lock_files_is_never_an_internal_error(cli: Any, settings: Any) -> None:
    locks = settings.paths.locks
    locks.mkdir(parents=True, exist_ok=True)
    for name in (f"backup-{BASE}.lock", f"restore-{BASE}.lock", "cache.lock", "x.lock"):
        (locks / name).write_bytes(os.urandom(300))
    r = cli("--quiet", "backup", "run", "--type", "complete")
    assert r.exit_code == 0, r
    d = cli("--json", "doctor")
    assert d.exit_code in (0, 1) and "internal_error" not in d.stdout, d
    assert {c["name"]: c for c in d.json()["checks"]}["locks"]["status"] == "ok", d


def test_under_umask_000_everything_created_is_private(cli: Any, settings: Any) -> None:
    old = os.umask(0)
    try:
        assert cli("--quiet", "backup", "run", "--type", "complete").exit_code == 0
        assert cli("--json", "cache", "get", "Usuários", "--max", "2").exit_code == 0
        assert cli("--json", "metrics", "collect", "--type", "all", "--format", "prometheus").exit_code == 0
    finally:
        os.umask(old)
    data = settings.paths.data_dir
    loose = []
    for p in [data, *data.rglob("*")]:
        m = stat.S_IMODE(os.lstat(p).st_mode)
        if m & 0o077:
            loose.append(f"{p.relative_to(data)} {m:o}")
    assert loose == ["metrics/beststag.prom 644"]  # the textfile node_exporter reads (issue 16), in 0700 folders


# ---- `metrics report --out` next to other people's files (defect 13)


@pytest.mark.parametrize("dir_mode", [0o755, 0o1777], ids=["0755", "tmp-like-1777"])
def test_report_out_never_chmods_the_folder_it_writes_into(cli: Any, tmp_path: Path, dir_mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, dir_mode)
    neighbour = shared / "someone-elses.txt"
    neighbour.write_text("x")
    os.chmod(neighbour, 0o644)
    old = os.umask(0o022)
    try:
        r = cli("--json", "metrics", "report", "--out", str(shared / "report.html"), "--range", "24h")
    finally:
        os.umask(old)
    assert r.exit_code == 0, r
    assert stat.S_IMODE(os.stat(shared).st_mode) == dir_mode
    assert stat.S_IMODE(os.stat(neighbour).st_mode) == 0o644
    out = shared / "report.html"
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644  # a file the user asked for: 0666 minus their umask
    assert sorted(x.name for x in shared.iterdir()) == ["report.html", "someone-elses.txt"]  # no temp left
