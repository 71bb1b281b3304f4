"""Storage formats: zstd instead of gzip reads back the same, and the manifest round-trips."""

from __future__ import annotations

import pytest

from beststag_cli.backup.chain import backup_index, table_state
from beststag_cli.backup.layout import BlobStore, Manifest, find_backup
from beststag_cli.backup.runner import run_backup
from beststag_cli.backup.verify import verify_backup


def test_zstd_and_gzip_hold_the_same_records(settings, gateway):
    pytest.importorskip("zstandard")
    gz = run_backup(settings, gateway, "critical", ["Usuários"])
    settings.backup.compression = "zstd"
    zs = run_backup(settings, gateway, "critical", ["Usuários"])
    assert zs.manifest.tables["Usuários"].file.endswith(".jsonl.zst")
    root = settings.paths.backups
    index = backup_index(root)
    a = table_state(index[gz.manifest.id], "Usuários", index)
    b = table_state(index[zs.manifest.id], "Usuários", index)
    assert a == b and len(a) == 100
    assert verify_backup(find_backup(root, zs.manifest.id), BlobStore(root)).records == 100


def test_manifest_round_trip(settings, gateway):
    m = run_backup(settings, gateway, "complete", ["Tarefas"]).manifest
    again = Manifest.from_dict(m.to_dict())
    assert again.to_dict() == m.to_dict()
    assert again.tables["Tarefas"].attachments > 0


def test_backups_keep_no_signed_attachment_urls(settings, gateway):
    res = run_backup(settings, gateway, "complete", ["Usuários"])
    root = settings.paths.backups
    index = backup_index(root)
    rows = table_state(index[res.manifest.id], "Usuários", index)
    atts = [a for r in rows.values() for a in r["fields"].get("avatar", [])]
    assert atts and all("url" not in a and "thumbnails" not in a and a["sha256"] for a in atts)
