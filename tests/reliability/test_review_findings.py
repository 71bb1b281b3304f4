"""Defects a review of issue 16's change found, each with the test that would have caught it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beststag_cli.cli.progress_view import live_progress
from beststag_cli.progress import guard


def test_doctor_accepts_the_textfile_beststag_itself_writes_0644(cli: Any, clean_env: Path) -> None:
    r = cli("--json", "metrics", "collect", "--type", "usage", "--range", "24h", "--format", "prometheus")
    assert r.exit_code == 0, r
    prom = clean_env / "metrics" / "beststag.prom"
    assert prom.is_file() and prom.stat().st_mode & 0o777 == 0o644
    checks = {c["name"]: c for c in cli("--json", "doctor", "--offline").json()["checks"]}
    assert checks["modes"]["status"] == "ok", checks["modes"]  # cron's doctor mailed a failure forever


def test_a_link_planted_at_a_lock_holder_file_costs_only_the_details(cli: Any, clean_env: Path, tmp_path: Path) -> None:
    assert cli("--json", "backup", "run", "--type", "critical").exit_code == 0  # creates var/locks
    outside = tmp_path / "outside.txt"
    outside.write_text("not beststag's")
    holders = [p.with_name(p.name + ".holder") for p in (clean_env / "locks").glob("*.lock")]
    assert holders
    for h in holders:
        h.unlink(missing_ok=True)
        h.symlink_to(outside)
    r = cli("--json", "backup", "run", "--type", "critical")
    assert r.exit_code == 0, r  # was: exit 2, unsafe_path, no backup
    assert outside.read_text() == "not beststag's"


def test_markup_in_a_table_name_or_an_error_never_fails_finished_work() -> None:
    from rich.console import Console

    console = Console(force_terminal=True, width=120, record=True)
    with live_progress(console) as reporter:
        task = guard(reporter).task("backup [/Tabela] [bold]x")
        task.advance(3)
        task.failed("HTTP 422: [/fields/Status] cannot accept")
    text = console.export_text()
    assert "[/fields/Status]" in text and "[/Tabela]" in text
