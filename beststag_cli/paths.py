"""Where things live under the data dir (docs/architecture.md, 'Data directory'). Import-light."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: backups/<type>/ folders; here, not in config.py, so reading backups needs no pydantic (start-up time)
BACKUP_TYPES: tuple[str, ...] = ("incremental", "complete", "critical")
#: every scheduled job, by name (`beststag schedule show` lists them; `jobs.pings` keys; the per-job gauges
#: of the textfile); here for the same reason: a job's end (`metrics alerts` on its fast path) needs no pydantic
JOB_NAMES: tuple[str, ...] = (
    "backup-incremental",
    "backup-complete",
    "backup-critical",
    "metrics-usage",
    "metrics-performance",
    "metrics-storage",
    "alerts",
    "cache-prune",
    "backup-cleanup",
    "metrics-archive",
    "feed-refresh",
    "backup-drill",
)


@dataclass(frozen=True)
class Paths:
    """Where things live under the data dir (see docs/architecture.md, 'Data directory')."""

    data_dir: Path
    cache_dir: Path
    journal: Path
    backups: Path
    backups_partial: Path
    logs: Path
    log_file: Path
    metrics: Path
    prom_file: Path
    locks: Path
    sandbox_dir: Path
    sandbox_db: Path

    def __post_init__(self) -> None:
        # beststag's own folders: private modes and no symlinks below them (fsutil)
        from .fsutil import register_private_root

        register_private_root(self.data_dir)
        register_private_root(self.backups)

    @classmethod
    def from_data_dir(cls, data_dir: Path, backups: Path | None = None, *, prom_file: Path | None = None) -> Paths:
        b = backups if backups is not None else data_dir / "backups"
        return cls(
            data_dir=data_dir,
            cache_dir=data_dir / "cache",
            journal=data_dir / "journal.sqlite",
            backups=b,
            backups_partial=b / ".partial",
            logs=data_dir / "logs",
            log_file=data_dir / "logs" / "beststag.jsonl",
            metrics=data_dir / "metrics",
            prom_file=prom_file if prom_file is not None else data_dir / "metrics" / "beststag.prom",
            locks=data_dir / "locks",
            sandbox_dir=data_dir / "sandbox",
            sandbox_db=data_dir / "sandbox" / "base.sqlite",
        )
