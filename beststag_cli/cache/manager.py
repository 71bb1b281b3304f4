"""The cache: get / set / invalidate / mirror / warm / prune / stats (changes from writes: `sync.py`).

Keys: `keyspace.py` (per-table generations make invalidating a table O(1)).

Entries carry their own `stored` time and `ttl`; the store expires them only after
`ttl + max_stale` so that a stale answer can be served, flagged, while Airtable is down.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import CorruptFile, DiskFull, UpstreamAuthError, UpstreamUnavailable
from ..progress import Reporter
from . import policy
from .backend import CacheBackend, make_store
from .keyspace import Keyspace

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway
    from ..journal import Journal
    from ..query.schema import BaseSchema, TableInfo
    from ..query.spec import QuerySpec

Record = dict[str, Any]


@dataclass
class CacheResult:
    table: str
    records: list[Record]
    status: str  # hit | miss | stale
    age_s: float
    ttl_s: float
    key: str
    source: str = "query"  # query | record | mirror | bypass | empty
    extra: dict[str, Any] = field(default_factory=dict)
    #: digest of the stored answer plus the projection (changes whenever the records returned do)
    digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "records": self.records,
            "count": len(self.records),
            "cache": {
                "status": self.status,
                "age_s": round(self.age_s, 3),
                "ttl_s": self.ttl_s,
                "key": self.key,
                "source": self.source,
                **self.extra,
            },
        }


def alias_digest(parts: dict[str, Any]) -> str:
    """A digest of a raw request (CLI options or webhook body), before any parsing."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def answer_hash(records: Any) -> str:
    from .maintain import answer_hash as h  # maintain imports the query evaluator: keep it off the hit path

    return h(records)


def _limit(entry: dict[str, Any], per_call: float | None) -> float:
    """How old an entry may be to count as fresh: the caller's TTL when given, else the entry's."""
    return float(entry["ttl"]) if per_call is None else per_call


def _project(record: Record, fields: list[str]) -> Record:
    """query.evaluate.project without importing the query layer on the hit path."""
    keep = set(fields)
    return {**record, "fields": {k: v for k, v in (record.get("fields") or {}).items() if k in keep}}


class CacheManager:
    """One per process; thread-safe (the store is, and state lives in it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        gateway: Gateway | None = None,
        gateway_factory: Callable[[], Gateway] | None = None,
        journal: Journal | None = None,
        lru_items: int = 0,
        source: str = "cli",
    ) -> None:
        self.settings = settings
        self.store: CacheBackend = make_store(settings, lru_items=lru_items)
        self._reported = 0  # store warnings already put on an answer (those of opening it are not, yet)
        self._gateway = gateway
        self._gateway_factory = gateway_factory
        self._journal = journal
        self.source = source
        self.base = settings.base_id or "base"
        self.keys = Keyspace(self.base)
        self._schema: Any = None

    # ---------------------------------------------------------------- wiring
    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            if self._gateway_factory is not None:
                self._gateway = self._gateway_factory()
            else:  # its own gateway: the writes made through it reach this cache
                from ..gateway import build
                from .sync import CacheSync

                self._gateway = build(self.settings, sink=CacheSync(self), source=self.source)
        return self._gateway

    @property
    def journal(self) -> Journal | None:
        if self._journal is None:
            if self._gateway is not None:
                self._journal = self._gateway.journal
            else:
                from ..journal import Journal

                self._journal = Journal(self.settings.paths.journal, source=self.source)
        return self._journal

    def _service(self) -> Any:
        from ..query.schema_cache import SchemaCache
        from ..query.service import QueryService

        if self._schema is None:
            self._schema = SchemaCache(self.gateway)
        return QueryService(self.gateway, self._schema)

    def schema(self) -> BaseSchema:
        self._service()
        return self._schema.get()

    def _event(
        self,
        event: str,
        table: str | None,
        key: str | None = None,
        nbytes: int | None = None,
        age_s: float | None = None,
    ) -> None:
        j = self.journal
        if j is None:
            return
        try:
            j.record_cache_event(event=event, table_name=table, base=self.base, key=key, bytes=nbytes, age_s=age_s)
        except Exception:  # statistics must never fail a read
            pass

    def _soft(self, fn: Callable[[], Any], default: Any = None) -> Any:
        """A cache write on the read path: a full disk or a damaged store costs the cache, never the read."""
        try:
            return fn()
        except (DiskFull, CorruptFile):
            return default  # the store logged its warning; `_warned` puts it on the answer

    def _warned(self, res: CacheResult, before: int) -> CacheResult:
        """Put the store's warnings since `before` on the answer (the CLI prints them, one line each)."""
        every = list(getattr(self.store, "warnings", []))
        lines = every[min(before, self._reported) :]
        self._reported = len(every)
        if lines:
            res.extra["warning"] = lines[-1] if len(lines) == 1 else "; ".join(dict.fromkeys(lines))
        return res

    def _nwarn(self) -> int:
        return len(getattr(self.store, "warnings", []))

    def _record_version(self, table: str) -> int:
        return self.store.get_int(self.keys.record_version(table))

    # ---------------------------------------------------------------- keys and TTL
    def generation(self, table: str) -> int:
        return self.store.get_int(self.keys.generation(table))

    def mode(self, table: str) -> str:
        t = self.settings.tables.get(table)
        return t.cache_mode if t is not None else "query"

    def ttl_state(self, table: str) -> policy.TTLState:
        return policy.TTLState.from_json(self.store.get(self.keys.ttl(table)), float(self.settings.ttl_for(table)))

    def ttl_for(self, table: str, per_call: float | None = None) -> float:
        dyn = self.settings.cache.dynamic_ttl
        state = self.ttl_state(table) if dyn.enabled else None
        return policy.effective_ttl(float(self.settings.ttl_for(table)), state, enabled=dyn.enabled, per_call=per_call)

    def _learn(self, table: str, changed: bool) -> None:
        dyn = self.settings.cache.dynamic_ttl
        if not dyn.enabled:
            return
        new = policy.after_refresh(self.ttl_state(table), changed=changed, min_s=dyn.min_s, max_s=dyn.max_s)
        self.store.set(self.keys.ttl(table), new.to_json(), expire_s=None)

    def _entry(self, key: str) -> dict[str, Any] | None:
        """A stored answer, or None; one whose `stored`/`ttl` are not finite numbers is dropped (a miss)."""
        entry = self.store.get(key)
        if entry is None or policy.entry_times_ok(entry):
            return entry
        self._soft(lambda: self.store.delete(key))
        return None

    def _expire_s(self, ttl: float) -> float:
        return ttl + float(self.settings.cache.max_stale_s)

    def _index_add(self, table: str, gen: int, *, query: str | None = None, record: str | None = None) -> None:
        key = self.keys.index(table, gen)
        if query is not None:
            self.store.index_add(key + ":q", query)
        if record is not None:
            self.store.index_add(key + ":r", record)

    def _index(self, table: str, gen: int) -> dict[str, list[str]]:
        key = self.keys.index(table, gen)
        return {"q": self.store.index_members(key + ":q"), "r": self.store.index_members(key + ":r")}

    # ---------------------------------------------------------------- reads
    def get(
        self, spec: QuerySpec, *, ttl: float | None = None, refresh: bool = False, alias: str | None = None
    ) -> CacheResult:
        """A query's answer from the cache, or from Airtable on a miss (then cached)."""
        from ..query.normalize import cache_key

        svc = self._service()
        bound = svc.bind(spec)
        table = bound.table.name
        key = cache_key(spec)
        if bound.empty:
            self._remember_alias(alias, table, key)
            return CacheResult(
                table,
                [],
                "hit",
                0.0,
                0.0,
                key,
                source="empty",
                extra={"note": "the filter contradicts itself: empty without a request"},
            )
        before = self._nwarn()
        mode = self.mode(table)
        if mode == "query" and self.settings.cache.selective_min_score > 0:
            from ..query.explain import complexity
            from ..query.formula import compile_bound

            score = complexity(bound, compile_bound(bound)).score
            if score < self.settings.cache.selective_min_score:
                mode = "off"  # too simple to be worth a cache entry (selective caching)
        if mode == "off":
            res = svc.run(spec)
            self._event("miss", table, key)
            return CacheResult(table, res.records, "miss", 0.0, 0.0, key, source="bypass")
        if mode == "mirror" and spec.view is None:
            got = self._from_mirror(spec, bound.table, ttl=ttl, refresh=refresh, key=key)
            if got is not None:
                return self._warned(got, before)
        self._soft(lambda: self._remember_alias(alias, table, key))
        return self._warned(
            self._cached(table, key, ttl, refresh, lambda: self._fetch(svc, bound), project_fields=spec.fields), before
        )

    def _fetch(self, svc: Any, bound: Any) -> tuple[list[Record], dict[str, Any]]:
        from ..query.explain import request_options

        spec = bound.spec
        records: list[Record] = []
        for page in self.gateway.iterate(bound.table.name, **request_options(bound)):
            records.extend(page)
            if spec.max_records and len(records) >= spec.max_records:
                break
        if spec.max_records:
            records = records[: spec.max_records]
        truncated = bool(spec.max_records and len(records) >= spec.max_records)
        return records, {"spec": spec.to_json(), "truncated": truncated}

    def _cached(
        self,
        table: str,
        key: str,
        ttl: float | None,
        refresh: bool,
        fetch: Callable[[], tuple[list[Record], dict[str, Any]]],
        *,
        project_fields: list[str] | None,
        kind: str = "q",
        rid: str | None = None,
    ) -> CacheResult:
        gen = self.generation(table)
        skey = self.keys.query(table, gen, key) if kind == "q" else self.keys.record(table, gen, rid or key)
        now = clock.timestamp()
        entry = self._entry(skey)
        if entry is not None and not refresh and now - entry["stored"] < _limit(entry, ttl):
            self._event("hit", table, key, age_s=now - entry["stored"])
            return self._result(table, key, entry, "hit", now, project_fields, kind)
        with self.store.lock(skey) as held:
            self._note_broken(held, table, key)
            entry2 = self._entry(skey)
            now = clock.timestamp()
            if entry2 is not None and not refresh and now - entry2["stored"] < _limit(entry2, ttl):
                self._event("hit", table, key, age_s=now - entry2["stored"])  # another caller filled it
                return self._result(table, key, entry2, "hit", now, project_fields, kind)
            old = entry2 or entry
            if kind == "q" and old is not None and not refresh and self._try_revalidate(table, gen):
                fresh = self._entry(skey)  # brought up to date with the table's changes, or dropped
                now = clock.timestamp()
                if fresh is not None and now - fresh["stored"] < _limit(fresh, ttl):
                    self._event("hit", table, key, age_s=0.0)
                    res = self._result(table, key, fresh, "hit", now, project_fields, kind)
                    res.extra["revalidated"] = True
                    return res
            version = self._record_version(table)
            started = clock.timestamp()
            try:
                records, meta = fetch()
            except UpstreamUnavailable as e:
                if isinstance(e, UpstreamAuthError):
                    raise  # a refused token is a configuration problem, not an outage
                max_stale = float(self.settings.cache.max_stale_s)
                if old is not None and now - old["stored"] < old["ttl"] + max_stale:
                    self._event("stale", table, key, age_s=now - old["stored"])
                    return self._result(table, key, old, "stale", now, project_fields, kind)
                raise
            digest = answer_hash(records)
            if old is not None and not refresh:
                self._soft(lambda: self._learn(table, changed=digest != old.get("hash")))
            life = self.ttl_for(table, ttl)
            new = {"records": records, "stored": clock.timestamp(), "ttl": life, "hash": digest, **meta}

            def keep() -> None:
                # an invalidation (table or record) during the fetch makes this answer unsafe to keep
                if self.generation(table) != gen or self._record_version(table) != version:
                    return
                nbytes = self.store.set(skey, new, expire_s=self._expire_s(life))
                if kind == "q":
                    self._index_add(table, gen, query=key)
                    self._note_fetch(table, gen, started)
                    if "spec" in meta:  # lets `warm --from-journal` rebuild the query later
                        self.store.set(Keyspace.spec(key), meta["spec"], expire_s=7 * 86400)
                else:
                    self._index_add(table, gen, record=rid)
                self._event("set", table, key, nbytes=nbytes)

            self._soft(keep)
            self._event("miss", table, key)
            return self._result(table, key, new, "miss", clock.timestamp(), project_fields, kind)

    def _note_broken(self, held: Any, table: str | None, key: str) -> None:
        """A lock whose holder had died (kill -9) was broken at once: say so in the journal and the log."""
        for h in getattr(held, "broken", None) or []:
            self._event("lock_broken", table, key)
            try:
                import logging

                from ..logs import log_event

                log_event("cache.lock_broken", _level=logging.WARNING, table=table, key=key, holder_pid=h.get("pid"))
            except Exception:  # reporting must not fail the read
                pass

    def _result(
        self, table: str, key: str, entry: dict[str, Any], status: str, now: float, fields: list[str] | None, kind: str
    ) -> CacheResult:
        records = [_project(r, fields) for r in entry["records"]] if fields is not None else entry["records"]
        digest = (
            f"{entry.get('hash', '')}:{','.join(fields) if fields is not None else '*'}" if entry.get("hash") else ""
        )
        return CacheResult(
            table,
            records,
            status,
            max(0.0, now - entry["stored"]),
            entry["ttl"],
            key,
            source="record" if kind == "r" else "query",
            digest=digest,
        )

    def get_record(self, table: str, record_id: str, *, ttl: float | None = None, refresh: bool = False) -> CacheResult:
        info = self.schema().table(table)
        name = info.name
        if self.mode(name) == "off":
            rec = self.gateway.get(name, record_id)
            return CacheResult(name, [rec], "miss", 0.0, 0.0, record_id, source="bypass")
        before = self._nwarn()
        return self._warned(
            self._cached(
                name,
                record_id,
                ttl,
                refresh,
                lambda: ([self.gateway.get(name, record_id)], {}),
                project_fields=None,
                kind="r",
                rid=record_id,
            ),
            before,
        )

    # ---------------------------------------------------------------- revalidation (sync.py)
    def _note_fetch(self, table: str, gen: int, started: float) -> None:
        from .sync import note_fetch

        note_fetch(self, table, gen, started)

    def _try_revalidate(self, table: str, gen: int) -> bool:
        from .sync import try_revalidate

        return try_revalidate(self, table, gen)

    # ---------------------------------------------------------------- mirror
    def _mirror(self, table: TableInfo, *, ttl: float | None, refresh: bool) -> tuple[dict[str, Any], str]:
        name = table.name
        gen = self.generation(name)
        key = self.keys.mirror(name, gen)
        now = clock.timestamp()
        entry = self._entry(key)
        if entry is not None and not refresh and now - entry["stored"] < entry["ttl"]:
            return entry, "hit"
        with self.store.lock(key) as held:
            self._note_broken(held, name, key)
            entry2 = self._entry(key)
            if entry2 is not None and not refresh and clock.timestamp() - entry2["stored"] < entry2["ttl"]:
                return entry2, "hit"
            old = entry2 or entry
            version = self._record_version(name)
            try:
                records = self.gateway.all(name, page_size=100)
            except UpstreamUnavailable:
                if old is not None:
                    return old, "stale"
                raise
            digest = answer_hash(records)
            if old is not None and not refresh:
                self._soft(lambda: self._learn(name, changed=digest != old.get("hash")))
            life = self.ttl_for(name, ttl)
            new = {"records": records, "stored": clock.timestamp(), "ttl": life, "hash": digest}

            def keep() -> None:
                if self.generation(name) == gen and self._record_version(name) == version:
                    nbytes = self.store.set(key, new, expire_s=self._expire_s(life))
                    self._event("set", name, key, nbytes=nbytes)

            self._soft(keep)
            return new, "miss"

    def _from_mirror(
        self, spec: QuerySpec, table: TableInfo, *, ttl: float | None, refresh: bool, key: str
    ) -> CacheResult | None:
        from ..query.evaluate import NeedsLinkedRecords, apply_query

        limit = int(self.settings.cache.mirror_max_records)
        entry, status = self._mirror(table, ttl=ttl, refresh=refresh)
        if len(entry["records"]) > limit:
            return None  # grew past the mirror limit: answer per query instead
        try:
            records = apply_query(spec, entry["records"], table, clock.now())
        except NeedsLinkedRecords:
            return None
        now = clock.timestamp()
        self._event(status if status != "miss" else "miss", table.name, key, age_s=now - entry["stored"])
        return CacheResult(
            table.name, records, status, max(0.0, now - entry["stored"]), entry["ttl"], key, source="mirror"
        )

    # ---------------------------------------------------------------- set / alias
    def set(self, spec: QuerySpec, records: list[Record], *, ttl: float | None = None) -> str:
        from ..query.normalize import cache_key

        table = self._service().bind(spec).table.name
        key = cache_key(spec)
        gen = self.generation(table)
        life = self.ttl_for(table, ttl)
        truncated = bool(spec.max_records and len(records) >= spec.max_records)
        entry = {
            "records": records,
            "stored": clock.timestamp(),
            "ttl": life,
            "hash": answer_hash(records),
            "spec": spec.to_json(),
            "truncated": truncated,
        }
        nbytes = self.store.set(self.keys.query(table, gen, key), entry, expire_s=self._expire_s(life))
        self._index_add(table, gen, query=key)
        self._event("set", table, key, nbytes=nbytes)
        return key

    def set_record(self, table: str, record: Record, *, ttl: float | None = None) -> str:
        name = self.schema().table(table).name
        gen = self.generation(name)
        life = self.ttl_for(name, ttl)
        entry = {"records": [record], "stored": clock.timestamp(), "ttl": life, "hash": answer_hash([record])}
        nbytes = self.store.set(self.keys.record(name, gen, record["id"]), entry, expire_s=self._expire_s(life))
        self._index_add(name, gen, record=record["id"])
        self._event("set", name, record["id"], nbytes=nbytes)
        return str(record["id"])

    def _remember_alias(self, alias: str | None, table: str, key: str) -> None:
        if alias is not None:
            self.store.set(Keyspace.alias(alias), {"table": table, "key": key}, expire_s=7 * 86400)

    def lookup_alias(self, alias: str, ttl: float | None = None) -> CacheResult | None:
        """The hit path without pydantic or the schema: a fresh entry for a raw request seen before."""
        target = self.store.get(Keyspace.alias(alias))
        if target is None:
            return None
        table, key = target["table"], target["key"]
        if self.mode(table) != "query":
            return None
        entry = self._entry(self.keys.query(table, self.generation(table), key))
        now = clock.timestamp()
        if entry is None or now - entry["stored"] >= _limit(entry, ttl):
            return None
        self._event("hit", table, key, age_s=now - entry["stored"])
        fields = (entry.get("spec") or {}).get("fields")
        return self._result(table, key, entry, "hit", now, fields, "q")

    # ---------------------------------------------------------------- invalidation
    def invalidate(self, table: str | None = None, record_id: str | None = None) -> dict[str, Any]:
        """Drop a table (O(1): new generation), one record (and the answers holding it), or everything."""
        if table is None:
            n = self.store.clear()
            self._event("invalidate", None, "*")
            return {"scope": "all", "entries": n}
        known = list(self.settings.tables)
        name = table
        if table not in known:
            name = self.schema().table(table).name  # UnknownTable with a "did you mean"
        if record_id is None:
            gen = self.store.incr(self.keys.generation(name))
            self._event("invalidate", name, f"table:{gen}")
            return {"scope": "table", "table": name, "generation": gen}
        dropped = self._drop_record(name, record_id)
        related = self._drop_related(name)
        self._event("invalidate", name, record_id)
        return {"scope": "record", "table": name, "record": record_id, "entries": dropped, "related_tables": related}

    def _drop_record(self, table: str, record_id: str) -> int:
        """Forget every answer of `table` that may now hold the record, or hold it as it was.

        The record may have been created or changed outside beststag (n8n's recipe calls this after
        any change): its fields are unknown, so any list answer of the table could now match it —
        every one is dropped, with the record's own entry and the table's mirror. Answers of the
        table being fetched meanwhile are not stored (`qv:` moves on first). Other records' own
        entries stay (a change to one record does not change another's fields; lookups in other
        tables are `_drop_related`'s).
        """
        self.store.incr(self.keys.record_version(table))
        gen = self.generation(table)
        dropped = int(self.store.delete(self.keys.record(table, gen, record_id)))
        for key in self._index(table, gen)["q"]:
            dropped += int(self.store.delete(self.keys.query(table, gen, key)))
        if self.store.get(self.keys.mirror(table, gen)) is not None:
            self.store.delete(self.keys.mirror(table, gen))  # the record's new value is unknown: refetch the mirror
            dropped += 1
        return dropped

    def _drop_related(self, table: str) -> list[str]:
        """Tables whose answers show fields of `table`'s records (lookups, links to it): new generations.

        The record's change is unknown, so a link field may have moved (inverse links elsewhere) and
        any looked-up value may have changed. Without the schema, every other configured table goes.
        """
        from .sync import lookup_reads

        try:
            schema = self.schema()
            info = schema.table(table)
            names = []
            for other in schema.tables:
                if other.name == table:
                    continue
                if any(
                    (f.type == "multipleRecordLinks" and f.linked_table_id == info.id)
                    or (f.type in ("multipleLookupValues", "rollup") and lookup_reads(other, f, info))
                    for f in other.fields
                ):
                    names.append(other.name)
        except (UpstreamUnavailable, CorruptFile, DiskFull):
            names = [t for t in self.settings.tables if t != table]
        for n in names:
            self.store.incr(self.keys.generation(n))
        return names

    # ---------------------------------------------------------------- upkeep (admin.py)
    def warm(self, specs: Iterable[QuerySpec], progress: Reporter | None = None) -> list[CacheResult]:
        """Load each query's answer now (refreshing what is cached); ``progress`` counts queries."""
        from . import admin

        return admin.warm(self, specs, progress)

    def configured_warm_specs(self, tables: Iterable[str] = ()) -> list[QuerySpec]:
        from . import admin

        return admin.configured_warm_specs(self, tables)

    def journal_warm_specs(self, *, hours: float = 24, limit: int = 20, tables: Iterable[str] = ()) -> list[QuerySpec]:
        """The most frequently read queries of the last `hours`, from the journal's cache events."""
        from . import admin

        return admin.journal_warm_specs(self, hours=hours, limit=limit, tables=tables)

    def stats(self, *, hours: float = 24) -> dict[str, Any]:
        """Hits, misses, ratios, entries, bytes and each table's TTL (events from the journal)."""
        from . import admin

        return admin.stats(self, hours=hours)

    def prune(self) -> dict[str, int]:
        from . import admin

        return admin.prune(self)

    def clear(self) -> int:
        from . import admin

        return admin.clear(self)

    def close(self) -> None:
        self.store.close()
