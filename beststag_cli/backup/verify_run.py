"""`backup verify` as one call: one backup or every listed one, local or the off-site copies.

Its own module because it reaches both `verify` (local files) and `remote` (S3), and `remote` builds
on `verify`: kept in `verify.py` it made the two import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beststag_cli.errors import BackupBroken
from beststag_cli.progress import Reporter

from .layout import BlobStore
from .verify import VerifyReport, verify_backup

if TYPE_CHECKING:
    from beststag_cli.config import Settings


@dataclass
class VerifyOutcome:
    """What one `backup verify` found: the backups that verified and the broken ones, in the order checked."""

    verified: list[VerifyReport] = field(default_factory=list)
    broken: list[BackupBroken] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.verified) + len(self.broken)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": [r.to_dict() for r in self.verified],
            "broken": [{"id": e.backup_id, "file": e.file, "problem": e.problem} for e in self.broken],
        }

    def error(self) -> BackupBroken | None:
        """The error to exit with: the first broken backup, saying how many more there are."""
        if not self.broken:
            return None
        first = self.broken[0]
        more = f" (and {len(self.broken) - 1} more broken backup(s))" if len(self.broken) > 1 else ""
        out = BackupBroken(first.backup_id, first.file, first.problem)
        out.message += more
        return out


def verify_backups(
    settings: Settings, backup_id: str | None, *, remote: bool = False, progress: Reporter | None = None
) -> VerifyOutcome:
    """Verify one backup (``backup_id``: an id or alias) or every listed one (``None``), locally or the
    copies in ``backup.remote``; one broken backup does not stop the others.

    Attachment files shared by several backups are hashed once per call.
    """
    seen: set[str] = set()
    out = VerifyOutcome()
    if remote:
        from .remote import S3Remote

        rem = S3Remote(settings)
        ids = [b.id for b in rem.list_backups()] if backup_id is None else [backup_id]
        for bid in ids:
            try:
                out.verified.append(rem.verify(bid, seen))
            except BackupBroken as e:
                out.broken.append(e)
        return out
    from .layout import find_backup, list_backups

    root = settings.paths.backups
    listed = list_backups(root)
    targets = listed if backup_id is None else [find_backup(root, backup_id)]
    store = BlobStore(root)
    index = {b.id: b for b in listed}
    for b in targets:
        try:
            out.verified.append(verify_backup(b, store, seen, index, progress=progress))
        except BackupBroken as e:
            out.broken.append(e)
    return out
