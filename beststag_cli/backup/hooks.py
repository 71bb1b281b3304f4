"""What a restore records for the rest of the tool once it has finished.

The cache needs nothing from here: every write a restore makes goes through the gateway, whose
change sink (the cache) hears of it as it happens, and of a failed batch as "the table may have
changed" — so a restore that fails part-way has already invalidated what it wrote, and other
processes see it at once (generations live in the shared store, diskcache or Redis).

:func:`record_restored_tables` adds a journal ``cache_events`` row with ``event = 'invalidate'``
per table (``key`` = the reason), which the metrics count and any process reading the journal can
honour. It never fails a restore: problems are logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beststag_cli.logs import log_event

if TYPE_CHECKING:
    from beststag_cli.journal import Journal


def record_restored_tables(base_id: str, tables: list[str], *, reason: str, journal: Journal | None = None) -> None:
    """Journal that ``tables`` of ``base_id`` were rewritten (see the module docstring)."""
    log_event("cache.invalidate_requested", base=base_id, tables=tables, reason=reason)
    if journal is None:
        return
    for t in tables:
        try:
            journal.record_cache_event(event="invalidate", table_name=t, base=base_id, key=reason)
        except Exception as e:  # the restore itself succeeded
            log_event("cache.invalidate_not_recorded", _level=30, table=t, error=str(e)[:200])
