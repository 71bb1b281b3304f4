"""Every key the cache writes, in one place (stdlib only: the fast path uses it).

All keys live in one store (diskcache or Redis: `backend.py`); `B` = base id, `T` = table name,
`G` = the table's generation:

    g:B:T             generation counter; invalidating T increments it (O(1) for any table size)
    q:B:T:G:<key>     a query's answer; <key> = query.normalize.cache_key(spec)
    r:B:T:G:<id>      one record
    ix:B:T:G          the query keys (`:q`) and record ids (`:r`) cached for the table (for write application)
    qv:B:T            moved on by every record invalidation: an answer fetched across one is not stored
    rv:B:T:G          the table's revalidation point (every answer is current as of `synced_at`)
    m:B:T:G           a mirrored table: every record, every field, creation order
    ttl:B:T           the table's dynamic TTL state
    spec:<key>        the query behind a cache key (`cache warm --from-journal` rebuilds it)
    alias:<digest>    raw CLI/webhook request → (table, key): the hit path skips pydantic
    w:B:T:<id>        the state of a record the cache last applied (while the change feed is on): the feed's
                      echo of that same state is skipped, so an own write does not invalidate twice

Old generations are never deleted: their entries expire (or are evicted) on their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keyspace:
    base: str

    def generation(self, table: str) -> str:
        return f"g:{self.base}:{table}"

    def query(self, table: str, gen: int, key: str) -> str:
        return f"q:{self.base}:{table}:{gen}:{key}"

    def record(self, table: str, gen: int, rid: str) -> str:
        return f"r:{self.base}:{table}:{gen}:{rid}"

    def mirror(self, table: str, gen: int) -> str:
        return f"m:{self.base}:{table}:{gen}"

    def index(self, table: str, gen: int) -> str:
        return f"ix:{self.base}:{table}:{gen}"

    def record_version(self, table: str) -> str:
        return f"qv:{self.base}:{table}"

    def sync_point(self, table: str, gen: int) -> str:
        return f"rv:{self.base}:{table}:{gen}"

    def ttl(self, table: str) -> str:
        return f"ttl:{self.base}:{table}"

    def applied(self, table: str, rid: str) -> str:
        return f"w:{self.base}:{table}:{rid}"

    @staticmethod
    def spec(key: str) -> str:
        return f"spec:{key}"

    @staticmethod
    def alias(digest: str) -> str:
        return f"alias:{digest}"
