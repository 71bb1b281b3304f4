"""Keeping cached answers in step with Airtable: changes from the gateway, and revalidation.

The cache as the gateway's change sink: every change Airtable confirmed is applied to the cached answers.

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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import CorruptFile, DiskFull, UpstreamUnavailable
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
    from .maintain import answer_hash, patch_answer, patch_mirror, with_created_time

    schema = m.schema()
    table = schema.table(change.table)
    name = table.name
    gen = m.generation(name)
    deletes = list(change.deleted)
    upserts = [r for r in change.upserted if "fields" in r]
    counts = {"patched": 0, "dropped": 0}
    feed_on = feed_enabled(m)
    if change.source == "feed":
        upserts, deletes = _without_echoes(m, table, upserts, deletes)
        if not upserts and not deletes:
            return counts  # the feed's echo of states the cache has already applied
    ix = m._index(name, gen)
    loaded = [(k, e) for k in (m.keys.query(name, gen, key) for key in ix["q"]) if (e := m._entry(k)) is not None]
    if any("createdTime" not in r for r in upserts):  # the feed's updated records: see _known_created_times
        upserts = _known_created_times(m, name, gen, upserts, [e for _, e in loaded])
    if feed_on:
        _remember_applied(m, table, upserts, deletes)
    now = clock.now()
    for k, entry in loaded:
        try:
            spec = QuerySpec.parse(entry["spec"])
            patched = patch_answer(
                entry["records"],
                truncated=bool(entry.get("truncated")),
                spec=spec,
                table=table,
                now=now,
                upserts=upserts,
                deletes=deletes,
            )
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
            one = m._entry(k)
            if one is not None:
                rec = with_created_time(by_id[rid], one["records"][0]) if one["records"] else by_id[rid]
                one.update(records=[rec], hash=answer_hash([rec]))
                m.store.set(k, one, expire_s=m._expire_s(one["ttl"]))
                counts["patched"] += 1
    mk = m.keys.mirror(name, gen)
    mirror = m._entry(mk)
    patched_mirror = None if mirror is None else patch_mirror(mirror["records"], upserts=upserts, deletes=deletes)
    if mirror is not None and patched_mirror is None:
        m.store.delete(mk)
        counts["dropped"] += 1
    elif mirror is not None and patched_mirror is not None:
        mirror["records"] = patched_mirror
        mirror["hash"] = answer_hash(patched_mirror)
        m.store.set(mk, mirror, expire_s=m._expire_s(mirror["ttl"]))
        counts["patched"] += 1
    counts["dropped"] += _invalidate_related(m, schema, table, bool(deletes), upserts)
    m._event("write_applied", name, change.source, nbytes=len(change.record_ids))
    return counts


def _known_created_times(
    m: CacheManager, name: str, gen: int, upserts: list[Record], entries: list[dict[str, Any]]
) -> list[Record]:
    """Upserts without `createdTime` (a webhook payload carries it for created records only) with the one
    the cache already knows: any cached answer, the mirror or the applied state holding the record.

    `createdTime` never changes, so any copy's is Airtable's. Without it a record entering an answer
    cannot be placed among ties and the answer is dropped (a refetch: a request the feed made
    necessary that revalidation, finding the same change later, did not)."""
    want = {r["id"] for r in upserts if "createdTime" not in r}
    known: dict[str, str] = {}
    mirror = m._entry(m.keys.mirror(name, gen))
    for entry in [*entries, *([mirror] if mirror is not None else [])]:
        for r in entry.get("records") or ():
            if r.get("id") in want and r.get("createdTime"):
                known[r["id"]] = r["createdTime"]
    for rid in want - known.keys():
        last = m.store.get(m.keys.applied(name, rid))
        if isinstance(last, dict) and isinstance(last.get("createdTime"), str):
            known[rid] = last["createdTime"]
    return [{**r, "createdTime": known[r["id"]]} if r["id"] in known and "createdTime" not in r else r for r in upserts]


def _invalidate_related(
    m: CacheManager, schema: BaseSchema, table: TableInfo, deleted: bool, upserts: list[Record]
) -> int:
    """Links and lookups: a change to T changes inverse link fields and lookups in other tables."""
    touched_links = deleted or any(
        (r.get("fields") or {}).get(f.name) for r in upserts for f in table.fields if f.type == "multipleRecordLinks"
    )
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


# ------------------------------------------------------------------------- revalidation
REVALIDATE_SKEW_S = 5.0  # Airtable's clock is not ours: look a little further back than needed


def note_fetch(m: CacheManager, table: str, gen: int, started: float) -> None:
    """Keep the invariant: every answer of the table is current as of `synced_at` or later."""
    key = m.keys.sync_point(table, gen)
    with m.store.lock(key):  # both backends have locks shared by processes (and hosts)
        st = m.store.get(key)
        if st is None or started < st["synced_at"]:
            m.store.set(key, {**(st or {}), "synced_at": started}, expire_s=None)


def try_revalidate(m: CacheManager, table: str, gen: int) -> bool:
    try:
        return revalidate(m, table, gen)
    except UpstreamUnavailable:
        return False  # the fetch that follows fails too, and serves the stale answer if it may
    except (DiskFull, CorruptFile):
        return False  # the store cannot be written: the fetch that follows answers from Airtable


def revalidate(m: CacheManager, table: str, gen: int) -> bool:
    """Bring every cached answer of `table` up to date at once, instead of refetching each.

    One listing of the records modified since the last sync (`LAST_MODIFIED_TIME()`) plus the
    table's current ids (to see deletions by other clients) are applied to every answer with
    the query's own semantics, as our own writes are. Answers that cannot be patched exactly
    (truncated windows that lose a member, link filters, views, fields computed from other
    tables, whose changes do not move LAST_MODIFIED_TIME) are dropped and refetched on demand.
    False when it does not apply (off in config, no sync point, table too big).
    """
    if not m.settings.cache.revalidate or m.mode(table) != "query":
        return False
    key = m.keys.sync_point(table, gen)
    if m.store.get(key) is None:
        return False
    with m.store.lock(key):
        st = m.store.get(key)
        if st is None:
            return False
        started = clock.timestamp()
        if started - st["synced_at"] < 1.0:
            return True  # another caller has just done it
        info = m.schema().table(table)
        pulled = feed_point(m, info.name)
        if pulled is not None and started - pulled <= 2 * float(m.settings.feed.poll_s) + 1.0:
            # the change feed has told us of every change up to its last pull (a moment ago): the
            # answers are as exact as a listing would make them, without the listing
            _apply_sync(m, info, gen, [], None)
            # nothing the feed did not already apply: an unchanged refresh, as a listing finding none is
            # (without it the table's TTL never grew while the feed covered it: twice the expiries)
            m._learn(table, changed=False)
            m.store.set(key, {"synced_at": pulled, "ids_at": pulled}, expire_s=None)
            m._event("revalidate", table, "feed", nbytes=0)
            return True
        limit = int(m.settings.cache.mirror_max_records)
        ids: set[str] | None = None
        checked = st.get("ids_at", st["synced_at"])
        if started - checked >= float(m.settings.cache.deletion_check_s):
            ids = set()
            for page in m.gateway.iterate(table, fields=[info.primary.name], page_size=100):
                ids.update(r["id"] for r in page)
                if len(ids) > limit:
                    return False  # too big to list cheaply: its answers are refetched one by one
            checked = started
        since = datetime.fromtimestamp(st["synced_at"] - REVALIDATE_SKEW_S, UTC)
        changed = m.gateway.all(
            table,
            formula="IS_AFTER(LAST_MODIFIED_TIME(), DATETIME_PARSE('"
            + since.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z'))",
        )
        outside = _apply_sync(m, info, gen, changed, ids)
        m._learn(table, changed=outside)
        m.store.set(key, {"synced_at": started, "ids_at": checked}, expire_s=None)
        m._event("revalidate", table, f"changed:{len(changed)}", nbytes=len(ids or ()))
        return True


#: fields whose values Airtable computes (never written): an echo is judged on the others
_READ_ONLY = frozenset(
    {"formula", "rollup", "multipleLookupValues", "count", "lastModifiedTime", "createdTime", "autoNumber"}
    | {"createdBy", "lastModifiedBy", "button"}
)
_APPLIED_TTL_S = 86400.0
_FEED_ON: dict[int, tuple[float, bool]] = {}


def feed_enabled(m: CacheManager) -> bool:
    """Is the change feed on for the cache's base? (asked of the journal at most every 30 s per process)"""
    now = clock.timestamp()
    hit = _FEED_ON.get(id(m))
    if hit is not None and now - hit[0] < 30.0:
        return hit[1]
    journal = m.gateway.journal
    try:
        on = journal is not None and journal.feed_row(m.base) is not None
    except Exception:
        on = False
    _FEED_ON[id(m)] = (now, on)
    return on


def _stored(info: TableInfo, fields: dict[str, Any]) -> dict[str, Any]:
    keep = {f.name for f in info.fields if f.type not in _READ_ONLY}
    return {k: v for k, v in fields.items() if k in keep}


def _remember_applied(m: CacheManager, info: TableInfo, upserts: list[Record], deletes: list[str]) -> None:
    for r in upserts:
        state: dict[str, Any] = {"fields": _stored(info, r["fields"])}
        if r.get("createdTime"):  # for a later feed update of the record (_known_created_times)
            state["createdTime"] = r["createdTime"]
        m.store.set(m.keys.applied(info.name, r["id"]), state, expire_s=_APPLIED_TTL_S)
    for rid in deletes:
        m.store.set(m.keys.applied(info.name, rid), {"deleted": True}, expire_s=_APPLIED_TTL_S)


def _without_echoes(
    m: CacheManager, info: TableInfo, upserts: list[Record], deletes: list[str]
) -> tuple[list[Record], list[str]]:
    """The feed's records and deletions minus those whose state is the one the cache last applied.

    Sound because every application records its state (`_remember_applied`): a record changed by someone
    else since then differs from it, and is applied (and becomes the remembered state)."""
    keep_upserts = []
    for r in upserts:
        last = m.store.get(m.keys.applied(info.name, r["id"]))
        if not (isinstance(last, dict) and last.get("fields") == _stored(info, r["fields"])):
            keep_upserts.append(r)
    keep_deletes = []
    for rid in deletes:
        last = m.store.get(m.keys.applied(info.name, rid))
        if not (isinstance(last, dict) and last.get("deleted")):
            keep_deletes.append(rid)
    return keep_upserts, keep_deletes


def feed_point(m: CacheManager, table: str) -> float | None:
    """When the change feed covers `table` (whole, no gap for it): the time of its last pull; else None."""
    journal = m.gateway.journal
    if journal is None:
        return None
    try:
        row = journal.feed_row(m.base)
        if row is None or row["broken_since_ts"] is not None or row["last_pull_ts"] is None:
            return None
        if any(g["table_name"] == table for g in journal.feed_gaps(m.base)):
            return None
    except Exception:  # a journal from before the feed, or unreadable: revalidate the old way
        return None
    import json

    tables = json.loads(row["tables"] or "[]")
    return float(row["last_pull_ts"]) if not tables or table in tables else None


def _apply_sync(m: CacheManager, info: TableInfo, gen: int, changed: list[Record], ids: set[str] | None) -> bool:
    """Patch every answer of the table with the current state; True when any answer changed.

    `ids`: every record id of the table now, or None when deletions were not checked this time.
    """
    from ..query.filters import walk
    from ..query.spec import QuerySpec
    from .maintain import answer_hash, patch_answer, patch_mirror

    name = info.name
    remote = {f.name for f in info.fields if f.type in ("multipleLookupValues", "rollup", "formula", "count")}
    ix = m._index(name, gen)
    now, ts = clock.now(), clock.timestamp()
    any_change = False
    life = m.ttl_for(name)
    for qkey in ix["q"]:
        k = m.keys.query(name, gen, qkey)
        entry = m._entry(k)
        if entry is None:
            continue
        patched = None
        try:
            spec = QuerySpec.parse(entry["spec"])
            reads = set(spec.needed_fields() or [f.name for f in info.fields]) | {c.field for c in walk(spec.tree)}
            if not (reads & remote):
                gone = [r["id"] for r in entry["records"] if ids is not None and r["id"] not in ids]
                patched = patch_answer(
                    entry["records"],
                    truncated=bool(entry.get("truncated")),
                    spec=spec,
                    table=info,
                    now=now,
                    upserts=changed,
                    deletes=gone,
                )
        except Exception:
            patched = None
        if patched is None:
            m.store.delete(k)  # could not be patched exactly: refetched on demand (not evidence
            continue  # of an outside change, so it does not shorten the TTL)
        records, truncated = patched
        if records != entry["records"]:
            any_change = True
        entry.update(records=records, truncated=truncated, hash=answer_hash(records), stored=ts, ttl=life)
        m.store.set(k, entry, expire_s=m._expire_s(life))
    by_id = {r["id"]: r for r in changed}
    for rid in ix["r"]:
        k = m.keys.record(name, gen, rid)
        entry = m._entry(k)
        if entry is None:
            continue
        deleted = ids is not None and rid not in ids
        if deleted or remote:
            m.store.delete(k)
            any_change = any_change or deleted
            continue
        if rid in by_id and by_id[rid] != entry["records"][0]:
            entry["records"] = [by_id[rid]]
            any_change = True
        entry.update(hash=answer_hash(entry["records"]), stored=ts, ttl=life)
        m.store.set(k, entry, expire_s=m._expire_s(life))
    mk = m.keys.mirror(name, gen)
    mirror = m.store.get(mk)
    if mirror is not None:
        gone = [r["id"] for r in mirror["records"] if ids is not None and r["id"] not in ids]
        patched_mirror = patch_mirror(mirror["records"], upserts=changed, deletes=gone)
        if patched_mirror is None:  # revalidation's records come from a listing: always timed
            m.store.delete(mk)
            return True
        mirror["records"] = patched_mirror
        mirror.update(hash=answer_hash(mirror["records"]), stored=ts, ttl=life)
        m.store.set(mk, mirror, expire_s=m._expire_s(life))
    return any_change
