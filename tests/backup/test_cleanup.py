"""`backup cleanup`: keep rules on real folders, the chain stays restorable, attachments and leftovers collected."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from beststag_cli import clock
from beststag_cli.backup.cleanup import cleanup
from beststag_cli.backup.layout import BlobStore, list_backups
from beststag_cli.backup.restore import plan_restore
from beststag_cli.backup.runner import run_backup


def _age(path: Path, days: float) -> None:
    t = clock.now().timestamp() - days * 86400
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def test_cleanup_applies_rules_and_keeps_what_incrementals_need(settings, gateway, cli):
    clock.set_now(clock.now())
    made: list[str] = []
    for day in range(10):
        made.append(run_backup(settings, gateway, "critical", ["Usuários"]).manifest.id)
        if day == 0:
            made.append(run_backup(settings, gateway, "complete", ["Usuários"]).manifest.id)
        made.append(run_backup(settings, gateway, "incremental", ["Usuários"]).manifest.id)
        clock.advance(86400)
    # config: critical keep_last 12 + keep_daily 7; incremental keep_daily 14; complete weekly/monthly
    settings.backup.types.incremental.retention.keep_daily = 2
    settings.backup.types.critical.retention.keep_last = 3
    settings.backup.types.critical.retention.keep_daily = None
    dry = cleanup(settings, gateway.base_id, dry_run=True)
    assert len(list_backups(settings.paths.backups)) == 21
    report = cleanup(settings, gateway.base_id)
    assert report.removed == dry.removed
    left = {b.id for b in list_backups(settings.paths.backups)}
    criticals = sorted(i for i in left if i.startswith("critical/"))
    assert criticals == sorted(i for i in made if i.startswith("critical/"))[-3:]
    # the two newest incrementals stay, and with them their whole chain back to the complete
    incs = [i for i in made if i.startswith("incremental/")]
    assert set(incs) <= left  # each one is the parent of the next
    assert any(i.startswith("complete/") for i in left)
    assert plan_restore(settings, gateway, incs[-1]).writes == 0
    # nothing to do the second time
    assert cleanup(settings, gateway.base_id).removed == []


def test_unreferenced_attachments_and_old_leftovers_are_collected(settings, gateway):
    first = run_backup(settings, gateway, "complete", ["Tarefas"])
    store = BlobStore(settings.paths.backups)
    blobs = dict(store.all())
    assert blobs
    orphan = store.path(store.put_chunks([b"nobody needs me"])[0])
    fresh_sha, _ = store.put_chunks([b"written a minute ago by a running backup"])
    _age(orphan, 2)
    partial = settings.paths.backups / ".partial"
    old_left = partial / "complete-2026-01-01T00-00-00Z-123"
    new_left = partial / "complete-2026-01-02T00-00-00Z-456"
    for d in (old_left, new_left):
        (d / "tables").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"id": "x", "base": "appOther"}))
    _age(old_left, 2)
    report = cleanup(settings, gateway.base_id)
    assert report.attachments_removed == 1 and not orphan.exists()
    assert store.path(fresh_sha).exists()  # too recent: a concurrent run may be using it
    assert all(p.exists() for p in blobs.values())  # still referenced by the backup
    assert report.partial_removed == [old_left.name]
    assert not old_left.exists() and new_left.exists()
    assert [b.id for b in list_backups(settings.paths.backups)] == [first.manifest.id]


def test_deleting_a_backup_goes_through_partial(settings, gateway, monkeypatch):
    clock.set_now(clock.now())
    for _ in range(3):
        run_backup(settings, gateway, "critical", ["Usuários"])
        clock.advance(timedelta(hours=1).total_seconds())
    settings.backup.types.critical.retention.keep_last = 1
    settings.backup.types.critical.retention.keep_daily = None
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def spy(a, b):  # type: ignore[no-untyped-def]
        renames.append((str(a), str(b)))
        return real_rename(a, b)

    monkeypatch.setattr(os, "rename", spy)
    report = cleanup(settings, gateway.base_id)
    assert len(report.removed) == 2
    assert all("/.partial/deleting-" in b for _, b in renames)
