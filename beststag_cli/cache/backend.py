"""The storage interface the cache manager depends on, and the factory that picks an implementation.

Two implementations, chosen by ``cache.backend``:

- ``diskcache`` (default): :class:`beststag_cli.cache.store.CacheStore`, files under
  ``data_dir/cache``; shared by the processes of one host.
- ``redis``: :class:`beststag_cli.cache.redis_store.RedisStore` at ``cache.redis_url``; shared by
  every host that uses the same Redis and ``cache.redis_prefix``.

Both store JSON (never pickle), expire entries natively, make table invalidation O(1) (a
generation key that ``incr`` moves on), lock across every process that shares them, and keep the
optional in-memory LRU coherent through a shared ``epoch``.

Import-light: the hit path builds a store from the pydantic-free settings snapshot.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Epoch(Protocol):
    """A counter every process sharing the store sees; any change to the store moves it on."""

    def read(self) -> int: ...

    def bump(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class CacheBackend(Protocol):
    """Key → JSON value with expiry; atomic counters, sets of keys and a lock, shared by processes."""

    @property
    def epoch(self) -> Epoch: ...

    def get(self, key: str) -> Any | None:
        """The stored value, or None (missing or expired)."""

    def get_int(self, key: str, default: int = 0) -> int:
        """A counter written by :meth:`incr` (``default`` when absent)."""

    def set(self, key: str, value: Any, *, expire_s: float | None, tag: str | None = None) -> int:
        """Store a JSON value (``expire_s`` None = never); returns the stored size in bytes."""

    def delete(self, key: str) -> bool: ...

    def incr(self, key: str) -> int:
        """Atomic increment, visible to every process sharing the store at once."""

    def index_add(self, name: str, member: str) -> None:
        """Add to a set of keys (atomic)."""

    def index_members(self, name: str) -> list[str]: ...

    def expire(self) -> int:
        """Remove what has expired (or what only expired entries referenced); returns how many."""

    def clear(self) -> int: ...

    def volume(self) -> int:
        """Bytes used."""

    def __len__(self) -> int: ...

    def check(self) -> list[Any]:
        """Consistency warnings (empty when all is well)."""

    def lock(self, key: str, expire_s: float = 30.0) -> AbstractContextManager[Any]:
        """A lock held across processes (and hosts, with Redis); released by itself after ``expire_s``."""

    def close(self) -> None: ...


def make_store(settings: Any, *, lru_items: int = 0) -> CacheBackend:
    """The store ``settings.cache`` configures (``settings`` may be the pydantic-free snapshot)."""
    cs = settings.cache
    backend = getattr(cs, "backend", "diskcache")
    compress = int(cs.compress_min_bytes)
    if backend == "redis":
        from .redis_store import RedisStore

        return RedisStore(
            str(cs.redis_url),
            prefix=str(getattr(cs, "redis_prefix", "beststag:")),
            compress_min_bytes=compress,
            lru_items=lru_items,
        )
    from .store import CacheStore

    return CacheStore(
        settings.paths.cache_dir,
        size_limit_bytes=int(cs.size_limit_mb) * 2**20,
        compress_min_bytes=compress,
        lru_items=lru_items,
    )
