"""Loading a copy of a real base into the sandbox: its schema document, and (from a backup) its records
and attachment blobs, ids kept. Behind `beststag sandbox load` (the product side reads the backup folder
and calls these; the sandbox imports nothing of the product)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .schema import COMPUTED_TYPES, BaseDef, SchemaError, TableDef
from .schema_doc import base_from_doc
from .store import SandboxStore

# Values the sandbox computes itself (from created/modified times, links, formulas): a copy's cells of
# these types are not stored. autoNumber is stored: its numbers are the record's own.
NOT_STORED = COMPUTED_TYPES - {"autoNumber"}


class LoadError(ValueError):
    """The copy cannot be loaded as given (bad document, ids taken, a blob missing)."""


@dataclass
class Loaded:
    base_id: str
    name: str
    tables: dict[str, int]  # table name → records loaded
    blobs: int = 0


def id_owner(store: SandboxStore, base: BaseDef) -> str | None:
    """The base of this sandbox that already uses one of ``base``'s table ids (ids are unique per file)."""
    mine = {t.id for t in base.tables}
    for other in store.base_ids():
        if other != base.id and mine & {t.id for t in store.base_def(other).tables}:
            return other
    return None


def load_schema(store: SandboxStore, doc: Any, base_id: str, name: str, *, replace: bool = False) -> BaseDef:
    """Create base ``base_id`` from a `GET …/tables` document (ids kept). LoadError when the base exists
    (unless ``replace``), the document is not one, or its ids belong to another base of the sandbox."""
    return install_schema(store, check_schema(store, doc, base_id, name, replace=replace))


def check_schema(store: SandboxStore, doc: Any, base_id: str, name: str, *, replace: bool = False) -> BaseDef:
    """`load_schema`'s checks, writing nothing: the base it would create."""
    try:
        base = base_from_doc(doc, base_id, name)
    except SchemaError as e:
        raise LoadError(f"not a schema document: {e}") from None
    if store.has_base(base_id) and not replace:
        raise LoadError(f"base {base_id} exists in the sandbox")
    owner = id_owner(store, base)
    if owner is not None:
        raise LoadError(f"the document's table ids are those of base {owner} of this sandbox")
    return base


def install_schema(store: SandboxStore, base: BaseDef) -> BaseDef:
    """Store a checked base, replacing the sandbox's base of that id."""
    if store.has_base(base.id):
        store.drop_base(base.id)
    try:
        return store.insert_base(base)
    except ValueError as e:
        raise LoadError(str(e)) from None


def _mtimes(cells: dict[str, Any], created: str, rec: dict[str, Any], t: TableDef) -> dict[str, str]:
    """Per-field modification times that give back the copy's lastModifiedTime values: every cell at the
    created time, then each lastModifiedTime field's value on (one of) the cells it watches."""
    mt = {fid: created for fid in cells}
    by_name = rec.get("fields") or {}
    for f in t.fields:
        if f.type != "lastModifiedTime" or not isinstance(by_name.get(f.name), str):
            continue
        refs = [r for r in (f.options or {}).get("referencedFieldIds") or [] if r in cells] or list(cells)
        if refs:
            mt[refs[0]] = max(mt[refs[0]], by_name[f.name])
    return mt


def load_records(
    store: SandboxStore,
    base_id: str,
    tables: dict[str, Iterable[dict[str, Any]]],
    blob: Callable[[str], bytes | None],
) -> Loaded:
    """Load records as the API lists them (fields by name; attachments carrying their ``sha256``) into
    base ``base_id`` with their ids and created times; ``blob(sha256)`` gives an attachment's bytes."""
    return insert_prepared(store, prepare_records(store.base_def(base_id), tables, blob))


@dataclass
class Prepared:
    """Records checked and in the store's form, every blob read and verified: what `insert_prepared` writes."""

    base: BaseDef
    rows: dict[str, list[tuple[str, str, dict[str, Any], dict[str, str]]]]
    blobs: dict[str, bytes]
    counts: dict[str, int]


def insert_prepared(store: SandboxStore, p: Prepared) -> Loaded:
    try:
        store.insert_records(p.base.id, p.rows, p.blobs.values())
    except ValueError as e:
        raise LoadError(str(e)) from None
    return Loaded(p.base.id, p.base.name, p.counts, len(p.blobs))


def prepare_records(
    b: BaseDef, tables: dict[str, Iterable[dict[str, Any]]], blob: Callable[[str], bytes | None]
) -> Prepared:
    """`load_records`' reading and checks, writing nothing (LoadError names what is wrong)."""
    rows: dict[str, list[tuple[str, str, dict[str, Any], dict[str, str]]]] = {}
    blobs: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for name, records in tables.items():
        t = b.table(name)
        if t is None:
            raise LoadError(f"table {name!r} is not in the schema")
        out = []
        for rec in records:
            cells: dict[str, Any] = {}
            for fname, v in (rec.get("fields") or {}).items():
                f = t.field(fname)
                if f is None or f.type in NOT_STORED or v is None or v == "" or v == [] or v is False:
                    continue
                if f.type == "multipleAttachments":
                    v = [_attachment(a, blob, blobs, f"{name}.{fname} of {rec.get('id')}") for a in v]
                cells[f.id] = v
            created = str(rec["createdTime"])
            out.append((str(rec["id"]), created, cells, _mtimes(cells, created, rec, t)))
        rows[t.id] = out
        counts[name] = len(out)
    return Prepared(b, rows, blobs, counts)


def _attachment(a: Any, blob: Callable[[str], bytes | None], blobs: dict[str, bytes], where: str) -> dict[str, Any]:
    if not isinstance(a, dict) or not a.get("id"):
        raise LoadError(f"{where}: an attachment without an id")
    sha = a.get("sha256")
    out = {
        "id": str(a["id"]),
        "filename": str(a.get("filename") or "file"),
        "size": int(a.get("size") or 0),
        "type": str(a.get("type") or "application/octet-stream"),
    }
    if not sha:  # the backup kept no file (attachments off): the sandbox shows the entry without content
        out["url"] = str(a.get("url") or "")
        return out
    if sha not in blobs:
        data = blob(str(sha))
        if data is None or hashlib.sha256(data).hexdigest() != sha:
            raise LoadError(f"{where}: the file {sha[:12]}… is missing or damaged in the backup")
        blobs[sha] = data
    out["sha256"] = str(sha)
    out["size"] = len(blobs[sha])
    return out
