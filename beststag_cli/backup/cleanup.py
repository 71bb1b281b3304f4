"""`backup cleanup`: apply the keep rules, collect unreferenced attachments, clear old `.partial/` leftovers.

With ``backup.remote`` the same rules are then applied to the remote backups (`remote.py`).

Deleting a backup first renames its folder into ``.partial/`` (one atomic step), then removes it:
a cleanup killed halfway never leaves a half-deleted folder that `backup list` would show.

Attachment files are shared by every backup; one is removed when no remaining backup lists it
and it was not used in the last :data:`BLOB_GRACE` (a run of another base may be reusing it right
now; runs touch the files they reuse).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import clock
from beststag_cli.fsutil import check_safe_path, safe_rmtree, safe_unlink
from beststag_cli.logs import log_event

from .layout import (
    BACKUP_TYPES,
    PARTIAL_DIR,
    STORE_DIR,
    BlobStore,
    list_backups,
    older_than,
    read_attachment_list,
)
from .retention import Policy, Snapshot, plan_retention
from .runner import base_lock

if TYPE_CHECKING:
    from beststag_cli.config import Settings

PARTIAL_MAX_AGE = timedelta(days=1)
BLOB_GRACE = timedelta(hours=1)


@dataclass
class CleanupReport:
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)
    attachments_removed: int = 0
    attachment_bytes_freed: int = 0
    partial_removed: list[str] = field(default_factory=list)
    missing_parents: dict[str, list[str]] = field(default_factory=dict)
    #: the same rules applied to backup.remote (remote.cleanup_remote); None without a remote
    remote: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "kept": self.kept,
            "broken": self.broken,
            "attachments_removed": self.attachments_removed,
            "attachment_bytes_freed": self.attachment_bytes_freed,
            "partial_removed": self.partial_removed,
            "missing_parents": self.missing_parents,
            **({"remote": self.remote} if self.remote is not None else {}),
        }


def _refuse_links(root: Path) -> None:
    """UnsafePath, before anything is deleted, for a symlinked folder cleanup would walk into."""
    for top in (root / STORE_DIR, root / PARTIAL_DIR, *(root / t for t in BACKUP_TYPES)):
        check_safe_path(top)
        if top.is_dir() and not top.is_symlink():
            for sub in top.iterdir():
                if sub.is_symlink():
                    check_safe_path(sub)


def cleanup(settings: Settings, base_id: str, *, dry_run: bool = False, now: datetime | None = None) -> CleanupReport:
    """Remove what the keep rules do not keep. Holds the base's backup lock (LockHeld if a run is going)."""
    now = now or clock.now()
    root = settings.paths.backups
    report = CleanupReport(dry_run=dry_run)
    with base_lock(settings, base_id):
        _refuse_links(root)
        backups = list_backups(root)
        report.broken = [b.id for b in backups if b.manifest is None]
        snaps = [
            Snapshot(
                id=b.id,
                type=b.type,
                time=b.timestamp,
                ok=b.status == "ok",
                parents=frozenset(b.manifest.parents()),
                base=b.manifest.base,
            )
            for b in backups
            if b.manifest is not None
        ]
        policies = {
            t: Policy.from_settings(settings.backup.of(t).retention) for t in ("incremental", "complete", "critical")
        }
        plan = plan_retention(snaps, policies, now)
        report.kept = plan.keep
        report.missing_parents = plan.missing_parents
        report.removed = list(plan.remove)
        by_id = {b.id: b for b in backups}
        pdir = root / PARTIAL_DIR
        for bid in plan.remove:
            if dry_run:
                continue
            b = by_id[bid]
            trash = pdir / f"deleting-{bid.replace('/', '-')}-{os.getpid()}"
            pdir.mkdir(mode=0o700, exist_ok=True)
            os.rename(b.path, trash)
            safe_rmtree(trash)
            log_event("backup.removed", backup_id=bid)

        removed = set(plan.remove)
        remaining = [b for b in backups if b.id not in removed]
        referenced: set[str] = set()
        for b in remaining:
            try:
                referenced.update(str(a["sha256"]) for a in read_attachment_list(b.path))
            except (OSError, ValueError, KeyError, TypeError):
                # unreadable list: keep every blob rather than lose one this backup needs
                log_event("backup.cleanup_skipped_gc", _level=30, backup_id=b.id)
                referenced = {sha for sha, _ in BlobStore(root).all()}
                break
        store = BlobStore(root)
        for sha, path in list(store.all()):
            if sha in referenced or not older_than(path, BLOB_GRACE, now):
                continue
            size = path.stat().st_size
            report.attachments_removed += 1
            report.attachment_bytes_freed += size
            if not dry_run:
                safe_unlink(path)  # through a symlinked attachments/<aa>: UnsafePath, never a file outside
        if report.attachments_removed:
            log_event(
                "backup.attachments_collected",
                count=report.attachments_removed,
                bytes=report.attachment_bytes_freed,
                dry_run=dry_run,
            )

        for leftover in [
            *(pdir.iterdir() if pdir.is_dir() else []),
            *(store.tmp.iterdir() if store.tmp.is_dir() else []),
        ]:
            if not older_than(leftover, PARTIAL_MAX_AGE, now):
                continue
            report.partial_removed.append(leftover.name)
            log_event("backup.partial_removed", _level=30, path=str(leftover), dry_run=dry_run)
            if not dry_run:
                safe_rmtree(leftover)
        if settings.backup.remote:
            from .remote import cleanup_remote

            report.remote = cleanup_remote(settings, dry_run=dry_run, now=now)
    return report
