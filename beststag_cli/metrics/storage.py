"""Storage figures: records against the plan limit, attachments, backups, cache and journal on disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..journal import Journal
from . import rollup
from .performance import dir_bytes
from .stats import ratio, rounded
from .usage import Census
from .windows import Window

if TYPE_CHECKING:
    from ..config import Settings


def collect_storage(
    settings: Settings, journal: Journal, window: Window, census: Census, backup: dict[str, Any] | None
) -> dict[str, Any]:
    """The storage section, from a census and (for backup bytes) the backup section."""
    limit = settings.metrics.plan_record_limit
    total = census.records_total
    req = rollup.request_totals(journal, window)
    api_bpr = ratio(req.list_bytes, req.list_records)
    backups_by_type = {t: v["storage_bytes"] for t, v in (backup or {}).get("by_type", {}).items()}
    if not backups_by_type:
        backups_by_type = {
            p.name: dir_bytes(p)
            for p in sorted(settings.paths.backups.glob("*"))
            if p.is_dir() and not p.name.startswith(".")
        }
    compression: dict[str, Any] = {"ratio": None, "backup_type": None}
    if backup:
        for t in ("complete", "incremental", "critical"):
            v = backup["by_type"].get(t) or {}
            if v.get("last_success_bytes") and v.get("last_success_records") and api_bpr:
                raw = api_bpr * v["last_success_records"]
                compression = {
                    "ratio": rounded(raw / v["last_success_bytes"], 3),
                    "backup_type": t,
                    "backup_bytes_per_record": rounded(v["last_success_bytes"] / v["last_success_records"], 1),
                }
                break
    attachments = sum(t.attachments for t in census.tables.values())
    attachment_bytes = sum(t.attachment_bytes for t in census.tables.values())
    journal_bytes = sum(
        p.stat().st_size for p in settings.paths.journal.parent.glob(settings.paths.journal.name + "*") if p.is_file()
    )
    return {
        "records_total": total,
        "plan_record_limit": limit,
        "usage_ratio": rounded(total / limit),
        "tables": {
            n: {
                "records": t.records,
                "count_method": t.method,
                "plan_ratio": rounded(t.records / limit),
                "attachments": t.attachments,
                "attachment_bytes": t.attachment_bytes,
            }
            for n, t in census.tables.items()
        },
        "bases": {census.base: {"records": total, "usage_ratio": rounded(total / limit)}},
        "attachments_total": attachments,
        "attachment_bytes": attachment_bytes,
        "attachments_counted_in": [n for n, t in census.tables.items() if t.method == "counted"],
        "api_bytes_per_record": rounded(api_bpr, 1),
        "attachment_bytes_per_record": rounded(ratio(attachment_bytes, total), 1),
        "backup_bytes_by_type": backups_by_type,
        "backup_bytes": sum(backups_by_type.values()),
        "backup_compression": compression,
        "cache_bytes": dir_bytes(settings.paths.cache_dir),
        "journal_bytes": journal_bytes,
    }
