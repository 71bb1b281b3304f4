"""What a restore tells the rest of the tool: the cache must forget the tables it rewrote.

:func:`invalidate_cache` is the one place a restore calls. It publishes the fact twice:

- a journal ``cache_events`` row with ``event = 'invalidate'`` per table (``key`` = the reason),
  which the metrics count and any process reading the journal can honour;
- ``beststag_cli.cache.invalidate_tables(settings, base_id, tables)`` when the cache package
  provides it (it does: it bumps the tables' generations, so every cached answer of them is
  dropped). Looked up by name, so backups do not import the cache and keep working without it.

It never fails a restore: problems are logged.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from beststag_cli.logs import log_event

if TYPE_CHECKING:
    from beststag_cli.config import Settings
    from beststag_cli.journal import Journal


def invalidate_cache(settings: Settings, base_id: str, tables: list[str], *, reason: str,
                     journal: Journal | None = None) -> None:
    """Publish that ``tables`` of ``base_id`` changed outside the cache (see the module docstring)."""
    log_event("cache.invalidate_requested", base=base_id, tables=tables, reason=reason)
    if journal is not None:
        for t in tables:
            try:
                journal.record_cache_event(event="invalidate", table_name=t, base=base_id, key=reason)
            except Exception as e:  # the restore itself succeeded
                log_event("cache.invalidate_not_recorded", _level=30, table=t, error=str(e)[:200])
    try:
        cache = importlib.import_module("beststag_cli.cache")
    except ImportError:
        return
    fn = getattr(cache, "invalidate_tables", None)
    if callable(fn):
        try:
            fn(settings, base_id, tables)
        except Exception as e:
            log_event("cache.invalidate_failed", _level=30, tables=tables, error=str(e)[:200])
