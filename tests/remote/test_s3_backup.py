"""Backups off-site on an S3-compatible server (moto's, on loopback): upload, list, verify, restore, cleanup."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.backup.layout import read_attachment_list
from beststag_cli.backup.runner import run_backup
from beststag_cli.config import BESTSTAG_TABLES
from tests.backup.conftest import assert_same_state, snapshot

pytestmark = pytest.mark.slow
TABLES = list(BESTSTAG_TABLES)


def _config_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **backup: Any) -> Any:
    """The repo's config plus `backup` keys, in a file the CLI reads too ($BESTSTAG_CONFIG)."""
    import yaml

    from beststag_cli.config import load_config

    raw = yaml.safe_load((Path(__file__).parents[2] / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    for k, v in backup.items():
        cur = raw.setdefault("backup", {})
        *path, last = k.split("__")
        for p in path:
            cur = cur.setdefault(p, {})
        cur[last] = v
    target = tmp_path / "config" / "beststag.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(target))
    return load_config()


@pytest.fixture
def remote_settings(settings: Any, s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return _config_with(tmp_path, monkeypatch, remote=s3["remote"], remote_endpoint_url=s3["endpoint"])


def _objects(s3: dict[str, str]) -> dict[str, bytes]:
    import boto3

    c = boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1")
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"]):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=s3["bucket"], Key=o["Key"])["Body"].read()
    return out


def test_complete_backup_goes_off_site_and_restores_from_there(
    remote_settings: Any, gateway: Any, sandbox: Any, s3: dict[str, str], cli: Any
) -> None:
    before = snapshot(gateway, TABLES)
    result = run_backup(remote_settings, gateway, "complete")
    bid = result.manifest.id
    assert result.status == "ok" and result.remote is not None
    assert result.remote["status"] == "uploaded", result.remote
    shas = {a["sha256"] for a in read_attachment_list(result.path)}
    assert result.remote["attachments"] == len(shas) > 0  # each distinct file once

    # every file of the backup folder is in the bucket, byte for byte, and so is every attachment
    objects = _objects(s3)
    for path in result.path.rglob("*"):
        if path.is_file():
            rel = path.relative_to(result.path).as_posix()
            assert objects[f"beststag/{bid}/{rel}"] == path.read_bytes(), rel
    assert {k.rsplit("/", 1)[1] for k in objects if k.startswith("beststag/attachments/")} == shas

    listed = cli("--json", "backup", "list", "--remote")
    assert listed.exit_code == 0, listed
    assert [b["id"] for b in listed.json()] == [bid]
    assert listed.json()[0]["path"] == f"{s3['remote']}/{bid}"
    ver = cli("--json", "backup", "verify", "--remote", "--all")
    assert ver.exit_code == 0, ver
    assert ver.json()["verified"][0]["attachments"] == result.manifest.attachments_count

    # the local disk is lost; the base is damaged (records changed, one deleted)
    shutil.rmtree(remote_settings.paths.backups)
    users = gateway.all("Usuários")
    gateway.update("Usuários", [{"id": u["id"], "fields": {"plano": "Pro", "Nome": "changed"}} for u in users[:5]])
    gateway.delete("Tarefas", [gateway.all("Tarefas")[0]["id"]])
    assert cli("--json", "backup", "list").json() == []

    dry = cli("--json", "backup", "restore", "complete/latest", "--remote", "--dry-run")  # `latest` off-site too
    assert dry.exit_code == 0, dry
    assert dry.json()["backup_id"] == bid
    assert dry.json()["tables"]["Usuários"]["update"] == 5 and dry.json()["tables"]["Tarefas"]["create"] == 1
    res = cli("--json", "backup", "restore", bid, "--remote", "--yes")
    assert res.exit_code == 0, res

    after = snapshot(gateway, TABLES)
    deleted = set(before["Tarefas"]) - set(after["Tarefas"])
    (new_id,) = set(after["Tarefas"]) - set(before["Tarefas"])
    assert assert_same_state(before, after, {next(iter(deleted)): new_id}) is None
    # the download folder is gone again; nothing was left under the local backups
    assert not any(remote_settings.paths.backups_partial.glob("remote-*"))


def test_a_broken_or_half_uploaded_remote_backup_is_caught(
    remote_settings: Any, gateway: Any, s3: dict[str, str], cli: Any
) -> None:
    import boto3

    result = run_backup(remote_settings, gateway, "critical")
    bid = result.manifest.id
    c = boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1")
    key = f"beststag/{bid}/{result.manifest.tables['Usuários'].file}"
    c.put_object(Bucket=s3["bucket"], Key=key, Body=b"not the backup")
    bad = cli("--json", "backup", "verify", bid, "--remote")
    assert bad.exit_code == 1
    assert bad.json()["broken"][0]["file"] == result.manifest.tables["Usuários"].file
    refused = cli("--json", "backup", "restore", bid, "--remote", "--yes")
    assert refused.exit_code == 1 and "broken" in refused.json()["error"]["message"]

    # without its manifest (an upload cut before the end) a backup is not listed at all
    c.delete_object(Bucket=s3["bucket"], Key=f"beststag/{bid}/manifest.json")
    assert cli("--json", "backup", "list", "--remote").json() == []
    # and `upload --all` completes it
    up = cli("--json", "backup", "upload", "--all")
    assert up.exit_code == 0 and [r["id"] for r in up.json()] == [bid]
    assert cli("--json", "backup", "verify", bid, "--remote").exit_code == 0


def test_unreachable_remote_keeps_the_local_backup(
    settings: Any, gateway: Any, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3")
    from tests.remote.conftest import free_port

    for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_MAX_ATTEMPTS", "1")):
        monkeypatch.setenv(k, v)
    _config_with(tmp_path, monkeypatch, remote="s3://nowhere/x", remote_endpoint_url=f"http://127.0.0.1:{free_port()}")
    out = cli("--json", "backup", "run", "--type", "critical", "--tables", "Usuários")
    assert out.exit_code == 1, out
    assert "kept locally" in out.stdout + out.stderr and "backup upload" in out.stdout + out.stderr
    assert '"status": "failed"' in out.stdout  # the run's own summary says so too
    assert len(cli("--json", "backup", "list").json()) == 1


def test_cleanup_removes_the_same_backups_locally_and_remotely(
    settings: Any, gateway: Any, s3: dict[str, str], cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beststag_cli.backup.cleanup import cleanup
    from beststag_cli.backup.layout import list_backups
    from beststag_cli.backup.remote import S3Remote

    remote_settings = _config_with(
        tmp_path,
        monkeypatch,
        remote=s3["remote"],
        remote_endpoint_url=s3["endpoint"],
        types__critical__retention={"keep_last": 2},
    )
    clock.set_now(clock.now())
    ids = []
    for _ in range(4):
        r = run_backup(remote_settings, gateway, "critical", ["Usuários"])
        assert r.remote and r.remote["status"] == "uploaded"
        ids.append(r.manifest.id)
        clock.advance(timedelta(hours=1).total_seconds())
    remote = S3Remote(remote_settings)
    assert [b.id for b in remote.list_backups()] == ids

    dry = cleanup(remote_settings, gateway.base_id, dry_run=True)
    assert dry.removed == ids[:2] and dry.remote is not None and dry.remote["removed"] == ids[:2]
    assert [b.id for b in remote.list_backups()] == ids

    out = cli("--json", "backup", "cleanup")
    assert out.exit_code == 0, out
    data = out.json()
    assert data["removed"] == data["remote"]["removed"] == ids[:2]
    assert [b.id for b in list_backups(remote_settings.paths.backups)] == ids[2:]
    assert [b.id for b in remote.list_backups()] == ids[2:]
    left = _objects(s3)
    assert not any(k.startswith(f"beststag/{bid}/") for bid in ids[:2] for k in left)


def test_restore_latest_off_site_is_the_newest_whole_base_backup(remote_settings: Any, gateway: Any, cli: Any) -> None:
    """F9 off-site: `restore latest --remote` names the newest complete or incremental backup, not a newer
    critical one (two tables); `critical/latest` still names that one."""
    complete = run_backup(remote_settings, gateway, "complete").manifest.id
    clock.advance(60)
    critical = run_backup(remote_settings, gateway, "critical").manifest.id
    shutil.rmtree(remote_settings.paths.backups)  # only the bucket has them
    r = cli("--json", "backup", "restore", "latest", "--remote", "--dry-run")
    assert r.exit_code == 0 and r.json()["backup_id"] == complete, r
    r = cli("--json", "backup", "restore", "critical/latest", "--remote", "--dry-run")
    assert r.exit_code == 0 and r.json()["backup_id"] == critical, r


def test_upload_all_sends_only_what_the_remote_does_not_list(
    remote_settings: Any, gateway: Any, s3: dict[str, str]
) -> None:
    """upload_backups(None): good local backups whose manifest the bucket lacks (a cut upload has none)."""
    import boto3

    from beststag_cli.backup.remote import upload_backups

    first = run_backup(remote_settings, gateway, "critical").manifest.id  # each run uploads itself
    clock.advance(60)
    second = run_backup(remote_settings, gateway, "critical").manifest.id
    assert upload_backups(remote_settings, None).results == []  # the remote has both
    c = boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1")
    c.delete_object(Bucket=s3["bucket"], Key=f"beststag/{second}/manifest.json")
    out = upload_backups(remote_settings, None)
    assert [r["id"] for r in out.results] == [second] and out.error() is None
    assert out.results[0]["status"] == "uploaded" and out.url == s3["remote"]
    again = upload_backups(remote_settings, first)  # one id: sent again even when present (idempotent)
    assert [r["id"] for r in again.results] == [first] and again.failed == []
