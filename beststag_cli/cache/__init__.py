"""The intelligent cache in front of Airtable (README, "Cache"). Import-light: the manager is lazy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway
    from .manager import CacheManager


def invalidate_tables(settings: Settings, base_id: str, tables: list[str]) -> None:
    """Forget every cached answer of `tables` in `base_id` (restores call this)."""
    from .backend import make_store
    from .keyspace import Keyspace

    store = make_store(settings)
    keys = Keyspace(base_id)
    try:
        for t in tables:
            store.incr(keys.generation(t))
    finally:
        store.close()


def invalidate_base(settings: Settings, base_id: str, tables: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Forget every cached answer of `base_id` (`sandbox seed` / `reset` call this); returns the tables dropped.

    The configured tables and `tables` (the base's own, which may not all be configured) each get
    a new generation: O(1) per table, and every process sharing the store sees it at once.
    """
    names = sorted(set(settings.tables) | set(tables))
    invalidate_tables(settings, base_id, names)
    return names


def build_cache(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    gateway_factory: Callable[[], Gateway] | None = None,
    lru_items: int = 0,
    source: str = "cli",
) -> CacheManager:
    """The one way a process builds its cache (the CLI, the server, tests)."""
    from .manager import CacheManager

    return CacheManager(settings, gateway=gateway, gateway_factory=gateway_factory, lru_items=lru_items, source=source)


def connect(
    settings: Settings, *, source: str = "cli", lru_items: int = 0, **gateway_options: Any
) -> tuple[Gateway, CacheManager]:
    """A gateway and a cache wired both ways: the cache reads through the gateway, the gateway's
    change sink is the cache (so every write made through it reaches the cache)."""
    from ..gateway import build
    from .sync import CacheSync

    box: list[Gateway] = []
    cache = build_cache(settings, gateway_factory=lambda: box[0], lru_items=lru_items, source=source)
    box.append(build(settings, sink=CacheSync(cache), source=source, **gateway_options))
    return box[0], cache
