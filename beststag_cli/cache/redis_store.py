"""The cache's storage on Redis: one cache shared by every host (``cache.backend: redis``).

Same contract as the diskcache store (:class:`beststag_cli.cache.backend.CacheBackend`):

- values are the same JSON documents (one-byte header, zlib above ``compress_min_bytes``), stored
  as Redis strings with a native expiry (``SET … PX``); nothing is ever pickled;
- ``incr`` is ``INCR``: a table's generation moves on for every host at once (O(1) invalidation);
- index sets are Redis sets (``SADD``/``SMEMBERS``), kept 30 days after their last addition;
- ``lock`` is a Redis lock (``SET NX PX`` with a value naming the holder, released only by its owner),
  so concurrent misses on one key in any process on any host make one upstream request; a lock
  whose holder died on this host and boot is broken at once (`cache/holder.py`);
- the in-memory LRU's epoch is a Redis key, moved on in the same ``MULTI`` as every write: an LRU
  copy is served only while no host has written since it was read. Checking it is one round trip,
  as cheap as fetching a small value, so the LRU pays only for large answers (it saves their
  transfer and JSON decoding); ``scripts/bench cache_backends`` measures both.

Every key is ``cache.redis_prefix`` + the manager's key. A Redis that cannot be reached raises
:class:`beststag_cli.errors.CacheUnavailable`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import CacheUnavailable
from .store import EpochLRU, decode, encode

#: index sets outlive their last addition by this much (far beyond any entry's ttl + max_stale)
INDEX_TTL_S = 30 * 86400
_SCAN_BATCH = 1000


def _shown(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class RedisEpoch:
    """The LRU's coherence counter as a Redis key (writes move it on inside their own MULTI)."""

    def __init__(self, store: RedisStore, key: str) -> None:
        self._store = store
        self.key = key

    def read(self) -> int:
        with self._store.guard():
            v = self._store.client.get(self.key)
        return int(v) if v is not None else 0

    def bump(self) -> int:
        with self._store.guard():
            return int(self._store.client.incr(self.key))

    def close(self) -> None:
        pass


_DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class _Lock:
    """A Redis lock shaped like the diskcache one: blocks until held; expires on its own after ``expire_s``.

    ``SET NX PX`` with a value naming the holder (`holder.token()`), released only by its owner; a
    waiter that finds it held by a process of its own host and boot that is gone breaks it at once
    (a holder on another host is judged by the expiry only). ``broken`` lists the holders it broke.
    """

    POLL_S = 0.005

    def __init__(self, store: RedisStore, name: str, expire_s: float) -> None:
        self._store = store
        self.name = name
        self.expire_ms = max(1, int(expire_s * 1000))
        self.broken: list[dict[str, Any]] = []
        self._token: bytes | None = None

    def __enter__(self) -> _Lock:
        from . import holder

        tok = holder.token()
        client = self._store.client
        with self._store.guard():
            while not client.set(self.name, tok, nx=True, px=self.expire_ms):
                cur = client.get(self.name)
                if cur is not None and holder.is_dead(cur):
                    if client.eval(_DELETE_IF, 1, self.name, cur):
                        self.broken.append(holder.parse(cur) or {})
                    continue
                time.sleep(self.POLL_S)
        self._token = tok
        return self

    def __exit__(self, *exc: Any) -> None:
        tok, self._token = self._token, None
        if tok is not None:
            with self._store.guard():  # expired and taken by another meanwhile: not ours to drop
                self._store.client.eval(_DELETE_IF, 1, self.name, tok)


class RedisStore:
    """Key → JSON value with expiry in Redis, with an optional in-memory LRU in front."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "beststag:",
        compress_min_bytes: int = 4096,
        lru_items: int = 0,
        socket_timeout_s: float = 5.0,
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.compress_min_bytes = compress_min_bytes
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=min(2.0, socket_timeout_s),
            socket_timeout=socket_timeout_s,
            health_check_interval=30,
        )
        self.epoch = RedisEpoch(self, prefix + "epoch")
        self._lru_items = lru_items
        self._lru = EpochLRU(lru_items)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Redis errors leave as CacheUnavailable (one line, with a hint)."""
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as e:
            raise CacheUnavailable(
                f"the cache's Redis at {_shown(self.url)} failed: {type(e).__name__}: {str(e)[:200]}"
            ) from None

    def _k(self, key: str) -> str:
        return self.prefix + key

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Any | None:
        epoch = 0
        if self._lru_items:
            epoch = self.epoch.read()
            hit = self._lru.get(key, epoch)
            if hit is not None:
                return hit
        with self.guard():
            blob = self.client.get(self._k(key))
        if blob is None:
            return None
        try:
            value = decode(blob) if isinstance(blob, bytes) else None  # the client answers bytes (no decode_responses)
        except (ValueError, zlib.error):  # not something we wrote (pickled, garbage): dropped, read as a miss
            with self.guard():
                self.client.delete(self._k(key))
            return None
        if self._lru_items:
            self._remember(key, value, epoch)
        return value

    def _remember(self, key: str, value: Any, epoch: int) -> None:
        self._lru.put(key, value, epoch)

    def get_int(self, key: str, default: int = 0) -> int:
        with self.guard():
            v = self.client.get(self._k(key))
        try:
            return default if v is None else int(v)
        except ValueError:
            with self.guard():
                self.client.delete(self._k(key))
            return default

    # ---------------------------------------------------------------- writes
    def set(self, key: str, value: Any, *, expire_s: float | None, tag: str | None = None) -> int:
        blob = encode(value, self.compress_min_bytes)
        px = None if expire_s is None else max(1, int(expire_s * 1000))
        with self.guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self._k(key), blob, px=px)
            pipe.incr(self.epoch.key)
            _, epoch = pipe.execute()
        if self._lru_items:
            self._remember(key, value, int(epoch))
        return len(blob)

    def delete(self, key: str) -> bool:
        with self.guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._k(key))
            pipe.incr(self.epoch.key)
            removed, _ = pipe.execute()
        return bool(removed)

    def incr(self, key: str) -> int:
        with self.guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(self._k(key))
            pipe.incr(self.epoch.key)
            value, _ = pipe.execute()
        return int(value)

    # ---------------------------------------------------------------- indexes (sets of keys)
    def index_add(self, name: str, member: str) -> None:
        with self.guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(self._k(name), member)
            pipe.expire(self._k(name), INDEX_TTL_S)
            pipe.execute()

    def index_members(self, name: str) -> list[str]:
        with self.guard():
            members = self.client.smembers(self._k(name))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    # ---------------------------------------------------------------- maintenance
    def _scan(self) -> Iterator[bytes]:
        with self.guard():
            for k in self.client.scan_iter(match=self._escaped_prefix() + "*", count=_SCAN_BATCH):
                if k.decode() != self.epoch.key:
                    yield k

    def _escaped_prefix(self) -> str:
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)

    def expire(self) -> int:
        """Redis expires entries by itself (each has its own PX); nothing is left to remove."""
        return 0

    def clear(self) -> int:
        """Delete every key under the prefix (the epoch moves on, so no LRU anywhere serves old copies)."""
        n = 0
        batch: list[bytes] = []
        with self.guard():
            for k in self._scan():
                batch.append(k)
                if len(batch) >= _SCAN_BATCH:
                    n += int(self.client.unlink(*batch))
                    batch = []
            if batch:
                n += int(self.client.unlink(*batch))
            self.client.incr(self.epoch.key)
        self._lru.clear()
        return n

    def volume(self) -> int:
        total = 0
        keys = list(self._scan())
        with self.guard():
            for i in range(0, len(keys), _SCAN_BATCH):
                pipe = self.client.pipeline(transaction=False)
                for k in keys[i : i + _SCAN_BATCH]:
                    pipe.memory_usage(k)
                total += sum(int(x or 0) for x in pipe.execute())
        return total

    def __len__(self) -> int:
        return sum(1 for _ in self._scan())

    def check(self) -> list[Any]:
        with self.guard():
            self.client.ping()
        return []

    def lock(self, key: str, expire_s: float = 30.0) -> _Lock:
        return _Lock(self, self._k("lock:" + key), expire_s)

    def close(self) -> None:
        self.client.close()
