"""`backup verify` and `backup upload` as core calls (backup/verify_run.py:verify_backups,
backup/remote.py:upload_backups): which backups they take, what they report, the error they end with."""

from __future__ import annotations

from typing import Any

from beststag_cli import clock
from beststag_cli.backup.runner import run_backup
from beststag_cli.backup.verify_run import verify_backups


def _damage(settings: Any, backup_id: str) -> str:
    """Overwrite one table file of a backup; its path inside the backup folder."""
    folder = settings.paths.backups / backup_id
    victim = sorted((folder / "tables").iterdir())[0]
    victim.write_bytes(b"not the backup")
    return victim.relative_to(folder).as_posix()


def _backups(settings: Any, gateway: Any, *types: str) -> list[str]:
    ids = []
    for t in types:
        ids.append(run_backup(settings, gateway, t).manifest.id)
        clock.advance(60)  # ids have whole seconds
    return ids


def test_verify_every_backup_reports_each_and_ends_with_the_first_broken(settings: Any, gateway: Any) -> None:
    first, second, third = _backups(settings, gateway, "critical", "critical", "critical")
    bad_file = _damage(settings, first)
    _damage(settings, third)
    out = verify_backups(settings, None)
    assert [r.id for r in out.verified] == [second] and out.checked == 3
    assert [e.backup_id for e in out.broken] == [first, third] and out.broken[0].file == bad_file
    err = out.error()
    assert err is not None and err.exit_code == 1
    assert err.message.startswith(f"backup {first} is broken: {bad_file}")
    assert err.message.endswith("(and 1 more broken backup(s))")
    assert out.to_dict()["broken"][1]["id"] == third


def test_verify_one_backup_by_alias(settings: Any, gateway: Any) -> None:
    _, newest = _backups(settings, gateway, "critical", "complete")
    out = verify_backups(settings, "latest")
    assert [r.id for r in out.verified] == [newest] and out.error() is None


def test_verify_without_backups_checks_nothing(settings: Any) -> None:
    out = verify_backups(settings, None)
    assert (out.checked, out.error(), out.to_dict()) == (0, None, {"verified": [], "broken": []})


def test_upload_without_a_remote_is_bad_input_before_any_backup_is_read(cli: Any, settings: Any, gateway: Any) -> None:
    """The CLI verified the whole backup, then reported `failed  None  no remote is configured` and exit 1
    (as if the bucket had failed); `--all` said exit 2. Both are one configuration problem: exit 2 at once."""
    (bid,) = _backups(settings, gateway, "critical")
    _damage(settings, bid)  # were it read, verification would fail first
    for args in ([bid], ["--all"]):
        r = cli("--json", "backup", "upload", *args)
        err = r.json()["error"]
        assert r.exit_code == 2 and err["type"] == "bad_input", r
        assert err["message"] == "no remote is configured" and "backup.remote" in err["hint"], err
