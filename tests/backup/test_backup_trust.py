"""Issue 15 #4, #5, #9: backups keep their promise against a skewed clock and damaged manifests.

- #4: ``since``/``as_of`` come from Airtable's clock (the ``Date`` of its answers), never the local
  one; a parent dated after Airtable's clock is not used (one warning line), so no edit is lost.
- #5: a manifest of the wrong shape is a *broken* backup: listed as such (with why), skipped as a
  parent and by retention, reported by ``doctor``; every command goes on (no internal error).
- #9: ``verify`` checks what a restore needs (a good table names its files; its chain is whole).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from beststag_cli import clock
from beststag_cli.backup.chain import backup_index, table_state
from beststag_cli.backup.layout import find_backup, parse_iso
from beststag_cli.backup.runner import run_backup
from tests.served import serve_sandbox

from .conftest import empty_target

TABLE = "Usuários"


def _first_record(gateway: Any) -> dict[str, Any]:
    return gateway.all(TABLE, max_records=1)[0]


def _state_at(settings: Any, backup_id: str) -> dict[str, dict[str, Any]]:
    root = settings.paths.backups
    return table_state(find_backup(root, backup_id), TABLE, backup_index(root))


# --------------------------------------------------------------------------------------------
# 4. Airtable's clock


def test_sandbox_answers_carry_a_date_header(api, sandbox):
    resp = api.session.get(api.build_url(f"meta/bases/{sandbox_base(sandbox)}/tables"))
    when = parsedate_to_datetime(resp.headers["Date"])
    assert abs((when - clock.now()).total_seconds()) < 120


def sandbox_base(sandbox: Any) -> str:
    from beststag_cli.sandbox.seed import SAMPLE_BASE_ID

    return SAMPLE_BASE_ID


def test_a_parent_taken_with_the_clock_two_days_ahead_is_refused_and_the_edit_kept(settings, gateway):
    """The issue's reproduction: BESTSTAG_FAKE_NOW two days ahead for the complete, then real time."""
    clock.set_now(datetime.now(UTC) + timedelta(days=2))
    parent = run_backup(settings, gateway, "complete", [TABLE])
    clock.reset()
    rec = _first_record(gateway)
    gateway.update(TABLE, [{"id": rec["id"], "fields": {"Nome": "edited after the skewed backup"}}])
    inc = run_backup(settings, gateway, "incremental", [TABLE])
    entry = inc.manifest.tables[TABLE]
    assert entry.status == "ok"
    assert entry.parent != parent.manifest.id  # the future-dated parent is not used
    assert len(inc.warnings) == 1 and parent.manifest.id in inc.warnings[0] and "Airtable's clock" in inc.warnings[0]
    state = _state_at(settings, inc.manifest.id)
    assert state[rec["id"]]["fields"]["Nome"] == "edited after the skewed backup"
    assert len(state) == len(gateway.all(TABLE))


@pytest.fixture
def served(_sample_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`beststag sandbox serve` in its own process: Airtable's clock is that process's real clock,
    independent of the clock of this (the client) process."""
    data = tmp_path / "server"
    (data / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, data / "sandbox" / "base.sqlite")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "BESTSTAG_"))}
    env["BESTSTAG_DATA_DIR"] = str(data)
    with serve_sandbox(env) as url:
        monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", url)
        yield url


def _served_gateway() -> Any:
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway

    settings = load_config()
    return settings, Gateway(settings, source="test")


def _airtable_time(gateway: Any) -> datetime:
    resp = gateway.api.session.get(gateway.api.build_url(f"meta/bases/{gateway.base_id}/tables"))
    return parsedate_to_datetime(resp.headers["Date"])


def test_client_clock_ahead_of_airtable_loses_no_change(served):
    settings, gateway = _served_gateway()
    try:
        clock.advance(2 * 86400)  # this host's clock runs two days ahead; Airtable's is right
        run_backup(settings, gateway, "complete", [TABLE])
        rec = _first_record(gateway)
        gateway.update(TABLE, [{"id": rec["id"], "fields": {"Nome": "edited, client clock ahead"}}])
        inc = run_backup(settings, gateway, "incremental", [TABLE])
        entry = inc.manifest.tables[TABLE]
        assert entry.mode == "incremental" and entry.records >= 1
        assert _state_at(settings, inc.manifest.id)[rec["id"]]["fields"]["Nome"] == "edited, client clock ahead"
    finally:
        gateway.close()


def test_client_clock_behind_airtable_records_airtable_times(served):
    settings, gateway = _served_gateway()
    try:
        clock.advance(-2 * 86400)  # this host's clock runs two days behind
        before = _airtable_time(gateway)
        done = run_backup(settings, gateway, "complete", [TABLE])
        after = _airtable_time(gateway)
        as_of = parse_iso(str(done.manifest.tables[TABLE].as_of))
        assert before - timedelta(seconds=2) <= as_of <= after + timedelta(seconds=2)
        rec = _first_record(gateway)
        gateway.update(TABLE, [{"id": rec["id"], "fields": {"Nome": "edited, client clock behind"}}])
        inc = run_backup(settings, gateway, "incremental", [TABLE])
        entry = inc.manifest.tables[TABLE]
        assert entry.parent == done.manifest.id and parse_iso(str(entry.since)) < as_of
        assert _state_at(settings, inc.manifest.id)[rec["id"]]["fields"]["Nome"] == "edited, client clock behind"
    finally:
        gateway.close()


# --------------------------------------------------------------------------------------------
# 5. wrong-typed manifests


def _complete(cli: Any) -> dict[str, Any]:
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", TABLE)
    assert r.exit_code == 0, r
    return r.json()


def _no_internal_error(r: Any) -> None:
    text = r.stdout + r.stderr
    assert "internal_error" not in text and "this is a bug" not in text, r
    assert "Traceback" not in text, r


def test_a_null_table_entry_is_a_broken_backup_that_nothing_trips_on(cli, settings):
    good = _complete(cli)
    bad = _complete(cli)
    mpath = Path(bad["path"], "manifest.json")
    m = json.loads(mpath.read_text())
    m["tables"][TABLE] = None
    mpath.write_text(json.dumps(m))

    listed = cli("--json", "backup", "list")
    assert listed.exit_code == 0, listed
    by_id = {b["id"]: b for b in listed.json()}
    assert by_id[good["id"]]["status"] == "ok"
    assert by_id[bad["id"]]["status"] == "broken" and f"tables.{TABLE}" in by_id[bad["id"]]["error"]
    human = cli("backup", "list")
    assert human.exit_code == 0 and "broken" in human.stdout and f"tables.{TABLE}" in human.stderr, human

    for btype in ("incremental", "critical", "complete"):
        r = cli("--json", "backup", "run", "--type", btype, "--tables", TABLE)
        assert r.exit_code == 0, r
        if btype == "incremental":
            assert r.json()["parent"] == good["id"]  # the broken one is never a parent

    r = cli("--json", "backup", "verify", bad["id"])
    assert r.exit_code == 1 and r.json()["broken"][0]["file"] == "manifest.json", r

    doctor = cli("--json", "doctor")
    assert doctor.exit_code == 1, doctor
    check = next(c for c in doctor.json()["checks"] if c["name"] == "backups")
    assert check["status"] == "fail" and bad["id"] in check["message"]

    r = cli("--json", "backup", "cleanup")
    assert r.exit_code == 0, r
    assert bad["id"] in r.json()["broken"] and bad["id"] not in r.json()["removed"]
    assert mpath.exists()  # a broken backup is never deleted as if it were good (nor bad)


def test_retention_never_counts_a_broken_backup_as_the_newest_good_one(cli, settings, monkeypatch):
    older = _complete(cli)
    newest = _complete(cli)
    mpath = Path(newest["path"], "manifest.json")
    m = json.loads(mpath.read_text())
    m["tables"][TABLE]["records"] = "many"
    mpath.write_text(json.dumps(m))
    # keep only the newest complete: with the newest broken, the older good one is the one kept
    from beststag_cli.config import RetentionPolicy

    monkeypatch.setattr(settings.backup.types.complete, "retention", RetentionPolicy(keep_last=1))
    from beststag_cli.backup.cleanup import cleanup

    report = cleanup(settings, "appBestStagSandbx")
    assert report.removed == [] and report.broken == [newest["id"]]
    assert Path(older["path"]).is_dir() and mpath.exists()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)


@st.composite
def _corruption(draw: Any, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["set", "delete", "truncate", "garbage", "table_set", "table_delete"]))
    if kind == "truncate":
        return original[: draw(st.integers(0, len(original) - 1))]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    doc = json.loads(original)
    if kind in ("set", "delete"):
        key = draw(st.sampled_from(sorted(doc)))
        target = doc
    else:
        target = doc["tables"][TABLE]
        key = draw(st.sampled_from(sorted(target)))
    if kind.endswith("delete"):
        del target[key]
    else:
        target[key] = draw(_JSON)
    return json.dumps(doc).encode()


@pytest.mark.slow
def test_random_corruptions_of_manifest_and_schema_never_give_an_internal_error(cli, settings):
    good = _complete(cli)
    victim = _complete(cli)
    files = {name: Path(victim["path"], name) for name in ("manifest.json", "schema.json")}
    originals = {name: p.read_bytes() for name, p in files.items()}

    @hsettings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(which=st.sampled_from(["manifest.json", "manifest.json", "schema.json"]), data=st.data())
    def check(which: str, data: Any) -> None:
        for name, p in files.items():
            p.write_bytes(originals[name])
        files[which].write_bytes(
            data.draw(_corruption(originals[which]) if which == "manifest.json" else st.binary(max_size=100))
        )
        listed = cli("--json", "backup", "list")
        _no_internal_error(listed)
        assert listed.exit_code == 0
        status = {b["id"]: b["status"] for b in listed.json()}
        assert status[good["id"]] == "ok"
        for args in (
            ("backup", "verify", "--all"),
            ("backup", "verify", victim["id"]),
            ("doctor",),
            ("backup", "cleanup", "--dry-run"),
            ("backup", "show", victim["id"]),
        ):
            r = cli("--json", *args)
            _no_internal_error(r)
            assert r.exit_code in (0, 1), r
        if which == "manifest.json" and status[victim["id"]] == "broken":
            r = cli("--json", "doctor")
            assert r.exit_code == 1 and victim["id"] in json.dumps(r.json()), r

    check()
    # runs and cleanup go on with a broken backup in the folder
    files["manifest.json"].write_bytes(b'{"id": null, "tables": {"x": null}}')
    r = cli("--json", "backup", "run", "--type", "incremental", "--tables", TABLE)
    assert r.exit_code == 0 and r.json()["parent"] == good["id"], r
    r = cli("--json", "backup", "cleanup")
    _no_internal_error(r)
    assert r.exit_code == 0, r


# --------------------------------------------------------------------------------------------
# 9. verify checks what restore needs


def test_verify_refuses_a_good_table_without_a_file_as_restore_does(cli, settings):
    done = _complete(cli)
    mpath = Path(done["path"], "manifest.json")
    m = json.loads(mpath.read_text())
    m["tables"][TABLE]["file"] = None
    mpath.write_text(json.dumps(m))
    r = cli("--json", "backup", "verify", done["id"])
    assert r.exit_code == 1, r
    assert "file" in r.json()["broken"][0]["problem"]
    r = cli("--json", "backup", "restore", done["id"], "--base", "appOtherBase00001", "--dry-run")
    assert r.exit_code != 0, r
    _no_internal_error(r)


def test_verify_refuses_an_incremental_whose_parent_is_gone(cli, settings):
    first = _complete(cli)
    inc = cli("--json", "backup", "run", "--type", "incremental", "--tables", TABLE)
    assert inc.exit_code == 0 and inc.json()["parent"] == first["id"], inc
    shutil.rmtree(first["path"])
    r = cli("--json", "backup", "verify", inc.json()["id"])
    assert r.exit_code == 1, r
    assert first["id"] in r.json()["broken"][0]["problem"]
    r = cli("--json", "backup", "verify", "--all")
    assert r.exit_code == 1 and r.json()["broken"][0]["id"] == inc.json()["id"], r


# --------------------------------------------------------------------------------------------
# round 2 A: a manifest cannot turn a check off (every file has its sha256; counts and schema typed)

TRUST_TARGET = "appTrustTarget001"


def _tamper_table_file(path: Path, m: dict[str, Any]) -> None:
    """Rewrite the table's record file with one record changed (bytes updated, sha256 left as the case sets it)."""
    import gzip

    entry = m["tables"][TABLE]
    f = path / entry["file"]
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    rec = json.loads(lines[0])
    rec["fields"]["Nome"] = "tampered"
    lines[0] = json.dumps(rec)
    f.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    entry["bytes"] = f.stat().st_size


def _set_table_sha_null(m: dict[str, Any]) -> None:
    m["tables"][TABLE]["sha256"] = None


def _drop_table_sha(m: dict[str, Any]) -> None:
    del m["tables"][TABLE]["sha256"]


def _schema_null(m: dict[str, Any]) -> None:
    m["schema"] = None


def _schema_sha_null(m: dict[str, Any]) -> None:
    m["schema"]["sha256"] = None


def _records_text(m: dict[str, Any]) -> None:
    m["records"] = "x"


def _bytes_null(m: dict[str, Any]) -> None:
    m["bytes"] = None


def _attachments_sha_null(m: dict[str, Any]) -> None:
    m["attachments"]["sha256"] = None


@pytest.mark.parametrize(
    ("corrupt", "field", "tamper"),
    [
        (_set_table_sha_null, f"tables.{TABLE}.sha256", True),
        (_drop_table_sha, f"tables.{TABLE}.sha256", True),
        (_schema_null, "schema", False),
        (_schema_sha_null, "schema.sha256", False),
        (_records_text, "records", False),
        (_bytes_null, "bytes", False),
        (_attachments_sha_null, "attachments.sha256", False),
    ],
    ids=lambda x: getattr(x, "__name__", None) or str(x),
)
def test_a_manifest_without_a_hash_or_with_a_wrong_type_is_broken_and_never_restored(
    cli, settings, sandbox, gateway, corrupt, field, tamper
):
    empty_target(sandbox, gateway, TRUST_TARGET)
    done = _complete(cli)
    path = Path(done["path"])
    mpath = path / "manifest.json"
    m = json.loads(mpath.read_text())
    if tamper:
        _tamper_table_file(path, m)
    corrupt(m)
    mpath.write_text(json.dumps(m))

    listed = cli("--json", "backup", "list")
    assert listed.exit_code == 0, listed
    entry = {b["id"]: b for b in listed.json()}[done["id"]]
    assert entry["status"] == "broken" and field in entry["error"], entry

    r = cli("--json", "backup", "verify", done["id"])
    assert r.exit_code == 1, r
    assert field in r.json()["broken"][0]["problem"], r
    _no_internal_error(r)

    r = cli("backup", "restore", done["id"], "--tables", TABLE, "--base", TRUST_TARGET, "--yes")
    assert r.exit_code == 1, r
    assert len(r.stderr.strip().splitlines()) <= 2 and field in r.stderr, r  # the error line (and its hint)
    _no_internal_error(r)
    assert sandbox.store.count(TRUST_TARGET, TABLE) == 0


# --------------------------------------------------------------------------------------------
# round 2 B: nothing of a backup is read through a symlink inside the data dir


def _link_out(p: Path, outside: Path) -> None:
    """Move ``p`` out of the data dir and leave a symlink to it in its place (same content)."""
    outside.mkdir(parents=True, exist_ok=True)
    dest = outside / p.name
    shutil.move(str(p), dest)
    p.symlink_to(dest, target_is_directory=dest.is_dir())


def _refused_unsafe(r: Any, *, as_json: bool = True) -> None:
    assert r.exit_code == 2, r
    assert "symlink" in r.stdout + r.stderr, r
    if as_json:
        assert "unsafe_path" in r.stdout + r.stderr, r
    else:
        assert len(r.stderr.strip().splitlines()) == 1, r  # one line
    _no_internal_error(r)


@pytest.mark.parametrize("kind", ["folder", "manifest", "schema", "table_file", "blob"])
def test_a_symlink_in_a_backup_is_refused_by_verify_and_restore(cli, settings, sandbox, gateway, tmp_path, kind):
    empty_target(sandbox, gateway, TRUST_TARGET)
    table = "Tarefas" if kind == "blob" else TABLE
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", table)
    assert r.exit_code == 0, r
    done = r.json()
    path = Path(done["path"])
    outside = tmp_path / "outside"
    if kind == "folder":
        _link_out(path, outside)
    elif kind == "manifest":
        _link_out(path / "manifest.json", outside)
    elif kind == "schema":
        _link_out(path / "schema.json", outside)
    elif kind == "table_file":
        m = json.loads((path / "manifest.json").read_text())
        _link_out(path / m["tables"][table]["file"], outside)
    else:
        att = [json.loads(x) for x in (path / "attachments.jsonl").read_text().splitlines() if x.strip()]
        assert att, "the sample's Tarefas has attachments"
        sha = att[0]["sha256"]
        _link_out(settings.paths.backups / "attachments" / sha[:2] / sha, outside)

    listed = cli("--json", "backup", "list")
    assert listed.exit_code == 0, listed
    entry = {b["id"]: b for b in listed.json()}[done["id"]]
    if kind in ("folder", "manifest"):
        assert entry["status"] == "broken" and "symlink" in entry["error"], entry

    _refused_unsafe(cli("--json", "backup", "verify", done["id"]))
    _refused_unsafe(cli("backup", "verify", done["id"]), as_json=False)
    _refused_unsafe(cli("--json", "backup", "restore", done["id"], "--tables", table, "--base", TRUST_TARGET, "--yes"))
    _refused_unsafe(
        cli("backup", "restore", done["id"], "--tables", table, "--base", TRUST_TARGET, "--yes"), as_json=False
    )
    assert sandbox.store.count(TRUST_TARGET, table) == 0
