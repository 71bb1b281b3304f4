"""The intelligent cache in front of Airtable (README, "Cache"). Import-light: the manager is lazy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway
    from ..query.events import WriteEvent
    from .manager import CacheManager


def invalidate_tables(settings: Settings, base_id: str, tables: list[str]) -> None:
    """Forget every cached answer of `tables` in `base_id` (restores call this)."""
    from .backend import make_store

    store = make_store(settings)
    try:
        for t in tables:
            store.incr(f"g:{base_id}:{t}")
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


def follow_writes(settings: Settings, gateway: Gateway, manager: CacheManager | None = None) -> Callable[[], None]:
    """Apply every write published through `query.events` to the cache; returns the unsubscriber.

    The cache manager is built on the first write only. If applying a write fails for any reason,
    the written table's generation moves on instead: the cache may lose entries, never exactness.
    """
    from ..query.events import subscribe

    holder: dict[str, Any] = {"m": manager}

    def on_write(event: WriteEvent) -> None:
        if holder["m"] is None:
            from .manager import CacheManager

            holder["m"] = CacheManager(settings, gateway=gateway)
        m = holder["m"]
        if event.outcome_unknown:  # nothing to apply exactly: forget the table's answers
            m.store.incr(f"g:{m.base}:{event.table}")
            return
        try:
            m.apply_write(event)
        except Exception:
            m.store.incr(f"g:{m.base}:{event.table}")
            raise

    return subscribe(on_write)
