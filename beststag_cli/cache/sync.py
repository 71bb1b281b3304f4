"""The cache as the gateway's change sink: every change Airtable confirmed is applied to the cached answers.

`CacheSync.apply(change)` keeps every cached answer exact: created/updated records are re-evaluated
against each cached query (`maintain.patch_answer`), deleted ids leave them, and tables whose
fields show the changed records (lookups, inverse links) get new generations. When the change is
`unknown` (a failed write, a lost answer) or cannot be applied, the table's generation moves on:
the cache may lose entries, never exactness. Changes to another base (a restore elsewhere) bump
that base's generations, since this process's schema is not that base's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import clock
from .keyspace import Keyspace

if TYPE_CHECKING:
    from ..gateway.changes import Change
    from ..query.schema import BaseSchema, TableInfo
    from .manager import CacheManager

Record = dict[str, Any]


class CacheSync:
    """A `ChangeSink`; the manager is built on the first change only (most commands write nothing)."""

    def __init__(self, cache: CacheManager | Callable[[], CacheManager]) -> None:
        self._cache = cache if not callable(cache) else None
        self._factory = cache if callable(cache) else None
        self._lock = threading.Lock()  # writes arrive from the writer's threads at once

    @property
    def built(self) -> bool:
        return self._cache is not None

    @property
    def manager(self) -> CacheManager:
        with self._lock:
            if self._cache is None:
                assert self._factory is not None
                self._cache = self._factory()
            return self._cache

    def apply(self, change: Change) -> None:
        m = self.manager
        if change.base != m.base:
            forget(m, change.base, change.table, change.source)
            return
        if change.unknown:
            forget(m, m.base, _name(m, change.table), change.source)
            return
        if not change.record_ids:
            return
        try:
            apply_change(m, change)
        except Exception:
            forget(m, m.base, _name(m, change.table), change.source)
            raise


def _name(m: CacheManager, table: str) -> str:
    """The table's name (writers may pass an id); the given text when the schema cannot say."""
    try:
        return m.schema().table(table).name
    except Exception:
        return table


def forget(m: CacheManager, base: str, table: str, source: str) -> None:
    """Every cached answer of `table` in `base` goes (O(1): a new generation, seen by every process)."""
    m.store.incr(Keyspace(base).generation(table))
    m._event("invalidate", table, f"changed:{source}")


def apply_change(m: CacheManager, change: Change) -> dict[str, int]:
    """Keep every cached answer exact after a change Airtable confirmed."""
    from ..query.spec import QuerySpec
    from .maintain import answer_hash, patch_answer, patch_mirror

    schema = m.schema()
    table = schema.table(change.table)
    name = table.name
    gen = m.generation(name)
    deletes = list(change.deleted)
    upserts = [r for r in change.upserted if "fields" in r]
    counts = {"patched": 0, "dropped": 0}
    now = clock.now()
    ix = m._index(name, gen)
    for key in ix["q"]:
        k = m.keys.query(name, gen, key)
        entry = m._entry(k)
        if entry is None:
            continue
        try:
            spec = QuerySpec.parse(entry["spec"])
            patched = patch_answer(entry["records"], truncated=bool(entry.get("truncated")), spec=spec,
                                   table=table, now=now, upserts=upserts, deletes=deletes)
        except Exception:
            patched = None
        if patched is None:
            m.store.delete(k)
            counts["dropped"] += 1
            continue
        records, truncated = patched
        if records != entry["records"] or truncated != entry.get("truncated"):
            entry.update(records=records, truncated=truncated, hash=answer_hash(records))
            left = max(1.0, entry["ttl"] - (clock.timestamp() - entry["stored"]))
            m.store.set(k, entry, expire_s=m._expire_s(left))
            counts["patched"] += 1
    by_id = {r["id"]: r for r in upserts}
    for rid in ix["r"]:
        k = m.keys.record(name, gen, rid)
        if rid in deletes:
            counts["dropped"] += int(m.store.delete(k))
        elif rid in by_id:
            entry = m._entry(k)
            if entry is not None:
                entry.update(records=[by_id[rid]], hash=answer_hash([by_id[rid]]))
                m.store.set(k, entry, expire_s=m._expire_s(entry["ttl"]))
                counts["patched"] += 1
    mk = m.keys.mirror(name, gen)
    mirror = m._entry(mk)
    if mirror is not None:
        mirror["records"] = patch_mirror(mirror["records"], upserts=upserts, deletes=deletes)
        mirror["hash"] = answer_hash(mirror["records"])
        m.store.set(mk, mirror, expire_s=m._expire_s(mirror["ttl"]))
        counts["patched"] += 1
    counts["dropped"] += _invalidate_related(m, schema, table, bool(deletes), upserts)
    m._event("write_applied", name, change.source, nbytes=len(change.record_ids))
    return counts


def _invalidate_related(m: CacheManager, schema: BaseSchema, table: TableInfo, deleted: bool,
                        upserts: list[Record]) -> int:
    """Links and lookups: a change to T changes inverse link fields and lookups in other tables."""
    touched_links = deleted or any(
        (r.get("fields") or {}).get(f.name) for r in upserts for f in table.fields
        if f.type == "multipleRecordLinks")
    n = 0
    for other in schema.tables:
        if other.name == table.name:
            continue
        reads_us = any(f.type == "multipleLookupValues" and lookup_reads(other, f, table) for f in other.fields)
        links_us = any(f.type == "multipleRecordLinks" and f.linked_table_id == table.id for f in other.fields)
        if reads_us or (links_us and touched_links):
            m.store.incr(m.keys.generation(other.name))
            n += 1
    # lookups in T through links to itself are covered by the entries' own re-evaluation
    return n


def lookup_reads(other: TableInfo, lookup: Any, table: TableInfo) -> bool:
    """`lookup` (a field of `other`) shows values of `table`'s records."""
    link_id = (lookup.options or {}).get("recordLinkFieldId")
    for f in other.fields:
        if f.id == link_id:
            return f.linked_table_id == table.id
    return False
