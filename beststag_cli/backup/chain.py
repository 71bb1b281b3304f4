"""Point-in-time state of a table at a backup: the full copy it starts from plus each incremental.

An incremental table entry holds the records changed since its parent and the list of every
record id at that time; so the state at an incremental is ``(state at parent ∩ ids) ∪ changes``.
Chains are followed per table (each table entry names its own parent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beststag_cli.errors import OperationFailed

from .layout import OK, BackupInfo, iter_lines, iter_records, list_backups, safe_rel, sha256_file


def backup_index(root: Path) -> dict[str, BackupInfo]:
    return {b.id: b for b in list_backups(root)}


def table_chain(info: BackupInfo, table: str, index: dict[str, BackupInfo]) -> list[BackupInfo]:
    """The backups whose files make up ``table`` at ``info``, newest first (ends at a full copy)."""
    chain: list[BackupInfo] = []
    cur: BackupInfo | None = info
    while cur is not None:
        m = cur.manifest
        entry = m.tables.get(table) if m is not None else None
        if entry is None or entry.status != OK:
            raise OperationFailed(
                f"backup {cur.id} has no good copy of table {table!r}",
                hint="pick another backup (`beststag backup list`)",
            )
        chain.append(cur)
        if entry.mode == "full":
            return chain
        if entry.parent is None or entry.parent not in index:
            raise OperationFailed(
                f"backup {cur.id} needs {entry.parent} for table {table!r}, which is gone",
                hint="restore from a complete backup instead",
            )
        if len(chain) > 10_000:
            raise OperationFailed(f"backup {info.id}: the chain of table {table!r} loops")
        cur = index[entry.parent]
    raise OperationFailed(f"backup {info.id}: table {table!r} has no full copy in its chain")  # pragma: no cover


def table_state(info: BackupInfo, table: str, index: dict[str, BackupInfo]) -> dict[str, dict[str, Any]]:
    """Record id → record (as Airtable returned it) for ``table`` at the time of ``info``."""
    state: dict[str, dict[str, Any]] = {}
    for b in reversed(table_chain(info, table, index)):
        assert b.manifest is not None
        e = b.manifest.tables[table]
        if e.mode == "full":
            state = {r["id"]: r for r in iter_records(b.path / safe_rel(str(e.file)))}
            continue
        ids = set(iter_lines(b.path / safe_rel(str(e.ids_file))))
        state = {k: v for k, v in state.items() if k in ids}
        for r in iter_records(b.path / safe_rel(str(e.file))):
            state[r["id"]] = r
    return state


def table_ids(info: BackupInfo, table: str, index: dict[str, BackupInfo]) -> set[str]:
    """The record ids of ``table`` at the time of ``info`` (an incremental's own id list says it whole)."""
    table_chain(info, table, index)  # the chain must be whole, as for table_state
    assert info.manifest is not None
    e = info.manifest.tables[table]
    full = e.mode == "full"
    path = info.path / safe_rel(str(e.file if full else e.ids_file))
    _, digest = sha256_file(path)  # a new backup is built on these ids: verify them before trusting them
    if digest != (e.sha256 if full else e.ids_sha256):
        raise OperationFailed(
            f"backup {info.id}: {path.name} of table {table!r} does not match its manifest",
            hint=f"beststag backup verify {info.id}",
        )
    if full:
        return {str(r["id"]) for r in iter_records(path)}
    return set(iter_lines(path))
