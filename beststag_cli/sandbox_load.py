"""`beststag sandbox load`: a copy of a real base in the sandbox, from its schema document or a backup.

The sandbox imports nothing of the product, so reading the backup folder (manifest, table files, the
attachment store) happens here and the sandbox's `load.py` gets plain records and a blob reader.
An orchestrator (tests/test_import_contracts.py): it reads the backup component and the sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput, NotFound, OperationFailed

if TYPE_CHECKING:
    from .sandbox import Sandbox

BASE_ID_RE = re.compile(r"^app[A-Za-z0-9]{14}$")


@dataclass
class LoadResult:
    base_id: str
    name: str
    source: str  # the schema file or the backup id
    tables: dict[str, int] = field(default_factory=dict)  # table name → records loaded (0: schema only)
    blobs: int = 0
    replaced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_id": self.base_id,
            "name": self.name,
            "source": self.source,
            "tables": self.tables,
            "records": sum(self.tables.values()),
            "blobs": self.blobs,
            "replaced": self.replaced,
        }


def _check_base_id(base_id: str) -> None:
    if not BASE_ID_RE.match(base_id):
        raise BadInput(f"{base_id!r} is not a base id (expected app and 14 letters or digits)")


def _exists(sb: Sandbox, base_id: str, replace: bool) -> bool:
    if sb.store.has_base(base_id) and not replace:
        raise BadInput(
            f"base {base_id} already exists in the sandbox",
            hint="add --replace to replace it (its records go), or choose another --base",
        )
    return sb.store.has_base(base_id)


def load_schema_file(
    sb: Sandbox, path: Path, *, base_id: str | None = None, name: str | None = None, replace: bool = False
) -> LoadResult:
    """Create a base from Airtable's schema document (`GET /v0/meta/bases/{id}/tables`, saved to a file)."""
    from .sandbox.load import LoadError, load_schema
    from .sandbox.schema import new_id

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no file {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"{path} is not a JSON file: {e}") from None
    bid = base_id or new_id("app")
    _check_base_id(bid)
    existed = _exists(sb, bid, replace)
    try:
        base = load_schema(sb.store, doc, bid, name or Path(path).stem, replace=replace)
    except LoadError as e:
        raise BadInput(f"{path}: {e}", hint=_hint(str(e))) from None
    return LoadResult(bid, base.name, str(path), {t.name: 0 for t in base.tables}, replaced=existed)


def _hint(message: str) -> str:
    if "ids are those of base" in message:
        return "ids are unique in a sandbox, as in Airtable: load into that base with --replace, or reset"
    return "the file must be the answer of GET /v0/meta/bases/{baseId}/tables"


def load_from_backup(
    sb: Sandbox,
    backups_root: Path,
    spec: str,
    *,
    base_id: str | None = None,
    name: str | None = None,
    replace: bool = False,
) -> LoadResult:
    """Create a base from a backup: its schema.json, every table's records at that backup (ids and created
    times kept) and the attachment files the backup holds."""
    from .backup.chain import backup_index, table_chain, table_state
    from .backup.layout import SCHEMA, BlobStore, find_backup, list_backups, read_bytes, resolve_backup_id
    from .sandbox.load import LoadError, check_schema, insert_prepared, install_schema, prepare_records

    backup_id = resolve_backup_id(spec, lambda: list_backups(backups_root), str(backups_root))
    info = find_backup(backups_root, backup_id)
    m = info.manifest
    if m is None or not info.good:
        raise OperationFailed(f"backup {backup_id} is {info.status}", hint="pick another one (`beststag backup list`)")
    bid = base_id or m.base
    _check_base_id(bid)
    existed = _exists(sb, bid, replace)
    from .backup.verify import verify_dir

    index = backup_index(backups_root)
    blobs = BlobStore(backups_root)
    # verify before trusting, as a restore does: every file of the chain against its sha256 (an edited
    # schema.json or table file loaded as if whole); attachments are hashed as they are read
    chain = {b.id: b for key in m.tables for b in table_chain(info, key, index)}
    for b in [info, *(x for i, x in chain.items() if i != info.id)]:
        verify_dir(b.path, store=blobs, expected_id=b.id, hash_blobs=False)
    try:
        doc = json.loads(read_bytes(info.path / SCHEMA))
    except (OSError, ValueError) as e:
        raise OperationFailed(f"backup {backup_id}: cannot read {SCHEMA}: {e}") from None
    states = {entry.name: table_state(info, key, index) for key, entry in m.tables.items() if entry.status == "ok"}

    def blob(sha: str) -> bytes | None:
        try:
            return blobs.read(sha)
        except OSError:
            return None

    try:
        # every check and every blob read before the store is touched: a damaged backup must not cost the
        # base it was to replace (dropped first, then the half-loaded copy)
        base = check_schema(sb.store, doc, bid, name or f"{m.base} at {backup_id}", replace=replace)
        prepared = prepare_records(base, {n: s.values() for n, s in states.items()}, blob)
        base = install_schema(sb.store, base)
        try:
            loaded = insert_prepared(sb.store, prepared)
        except BaseException:
            sb.store.drop_base(bid)  # all or nothing: no half-loaded base stays behind
            raise
    except LoadError as e:
        raise BadInput(f"backup {backup_id}: {e}", hint=_hint(str(e))) from None
    tables = {t.name: loaded.tables.get(t.name, 0) for t in base.tables}
    return LoadResult(bid, base.name, backup_id, tables, loaded.blobs, replaced=existed)
