"""Backup ids as commands take them: `latest`, `TYPE/latest` (restic's), a bare timestamp, did-you-mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli import clock
from beststag_cli.backup.layout import resolve_backup_id
from beststag_cli.config import BACKUP_TYPES
from beststag_cli.errors import EXIT_BAD_INPUT, BadInput, NotFound


@dataclass
class Listed:
    """A listed backup as the resolver sees one (its id and status); the listing is data, not a mock."""

    id: str
    status: str


def _ts(n: int) -> str:
    return f"2026-01-{1 + n // 24:02d}T{n % 24:02d}-00-00Z"


_backups = st.lists(
    st.tuples(
        st.sampled_from(BACKUP_TYPES), st.integers(0, 24 * 27), st.sampled_from(["ok", "ok", "partial", "broken"])
    ),
    max_size=12,
    unique_by=lambda t: (t[0], t[1]),
)


def _listing(spec: list[tuple[str, int, str]]) -> list[Listed]:
    out = [Listed(f"{t}/{_ts(n)}", s) for t, n, s in spec]
    return sorted(out, key=lambda b: (b.id.split("/")[1], b.id.split("/")[0]))  # oldest first, as listed


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # CI runs with both cores busy
@given(_backups, st.sampled_from([None, *BACKUP_TYPES]))
def test_latest_is_the_newest_backup_that_finished_ok(spec: list[tuple[str, int, str]], btype: str | None) -> None:
    listed = _listing(spec)
    alias = f"{btype}/latest" if btype else "latest"
    good = [b for b in listed if b.status == "ok" and (btype is None or b.id.startswith(btype + "/"))]
    if good:
        newest = max(good, key=lambda b: (b.id.split("/")[1], b.id.split("/")[0]))
        assert resolve_backup_id(alias, lambda: listed, "var/backups") == newest.id
    else:
        with pytest.raises(NotFound) as e:
            resolve_backup_id(alias, lambda: listed, "var/backups")
        assert e.value.exit_code == EXIT_BAD_INPUT
        assert f"no {btype + ' ' if btype else ''}backup that finished ok yet" in e.value.message
        assert "beststag backup run --type" in e.value.hint


def test_a_plain_id_needs_no_listing() -> None:
    def boom() -> list[Listed]:
        raise AssertionError("listed the backups for a plain id")

    assert resolve_backup_id("complete/2026-01-04T02-00-00Z", boom, "x") == "complete/2026-01-04T02-00-00Z"


def test_a_bare_timestamp_names_the_one_backup_with_it() -> None:
    listed = [Listed("complete/2026-01-04T02-00-00Z", "ok"), Listed("critical/2026-01-04T02-30-00Z", "ok")]
    assert resolve_backup_id("2026-01-04T02-30-00Z", lambda: listed, "x") == "critical/2026-01-04T02-30-00Z"
    both = [*listed, Listed("incremental/2026-01-04T02-00-00Z", "ok")]
    with pytest.raises(BadInput, match="names 2 backups"):
        resolve_backup_id("2026-01-04T02-00-00Z", lambda: both, "x")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("compelte/latest", 'did you mean "complete"'),
        ("complete/2026-01-04", 'did you mean "complete/2026-01-04T02-00-00Z"'),
        ("lastest", 'did you mean "latest"'),
        ("2026-01-04T02-00-01Z", 'did you mean "complete/2026-01-04T02-00-00Z"'),
    ],
)
def test_an_unknown_id_says_which_one_was_meant(spec: str, expected: str) -> None:
    listed = [Listed("complete/2026-01-04T02-00-00Z", "ok")]
    with pytest.raises(BadInput) as e:
        resolve_backup_id(spec, lambda: listed, "x")
    assert expected in e.value.message and e.value.exit_code == EXIT_BAD_INPUT


def _run(cli: Any, btype: str) -> str:
    r = cli("--json", "backup", "run", "--type", btype)
    assert r.exit_code == 0, r
    return str(r.json()["id"])


def test_latest_aliases_through_show_verify_and_restore(cli: Any) -> None:
    r = cli("--json", "backup", "show", "complete/latest")
    assert r.exit_code == 2 and "no complete backup that finished ok yet" in r.json()["error"]["message"], r
    first = _run(cli, "critical")
    clock.advance(60)  # ids have whole seconds: the second backup must be newer, not just later in the list
    second = _run(cli, "complete")
    assert cli("--json", "backup", "show", "critical/latest").json()["id"] == first
    assert cli("--json", "backup", "show", "latest").json()["id"] == second
    # a bare timestamp (the folder's name) works as before, with or without the type
    assert cli("--json", "backup", "show", first.split("/")[1]).json()["id"] == first
    assert cli("--json", "backup", "show", first).json()["id"] == first
    r = cli("--json", "backup", "verify", "latest")
    assert r.exit_code == 0 and [v["id"] for v in r.json()["verified"]] == [second], r
    r = cli("--json", "backup", "restore", "complete/latest", "--tables", "Usuários", "--dry-run")
    assert r.exit_code == 0 and r.json()["backup_id"] == second, r
    r = cli("--json", "backup", "show", "incremental/latest")
    assert r.exit_code == 2 and "no incremental backup" in r.json()["error"]["message"], r
    r = cli("backup", "show", "critical/" + first.split("/")[1][:10])
    assert r.exit_code == 2 and f'did you mean "{first}"' in r.stderr, r


def test_restore_latest_is_the_newest_whole_base_backup_of_the_configured_base(
    cli: Any, sandbox: Any, gateway: Any, settings: Any
) -> None:
    """Review finding F9: a bare `latest` picked the newest backup of any type (a critical one holds two
    tables) and of any base; for a restore it is the configured base's newest complete or incremental."""
    from beststag_cli.backup.runner import run_backup

    from .conftest import empty_target

    complete = _run(cli, "complete")
    clock.advance(60)
    critical = _run(cli, "critical")
    clock.advance(60)
    other = run_backup(settings, empty_target(sandbox, gateway, "appOtherBaseXXXXX"), "complete").manifest.id
    r = cli("--json", "backup", "restore", "latest", "--dry-run")
    assert r.exit_code == 0 and r.json()["backup_id"] == complete, r
    assert r.json()["target_base"] == gateway.base_id
    r = cli("--json", "backup", "restore", "critical/latest", "--dry-run")  # an explicit type is still obeyed
    assert r.exit_code == 0 and r.json()["backup_id"] == critical, r
    # reading commands keep restic's `latest` (newest of any type): nothing is written from it
    assert cli("--json", "backup", "show", "latest").json()["id"] == other


def test_restore_latest_with_only_critical_backups_says_what_to_do(cli: Any, gateway: Any) -> None:
    _run(cli, "critical")
    r = cli("--json", "backup", "restore", "latest", "--dry-run")
    err = r.json()["error"]
    assert r.exit_code == 2, r
    assert f"no complete or incremental backup of base {gateway.base_id} that finished ok yet" in err["message"]
    assert "critical/latest" in err["hint"] and "backup run --type complete" in err["hint"]
