"""A tiny in-process publish/subscribe for write events; the cache subscribes to keep itself exact.

Every write through `query.writes` publishes one `WriteEvent` per batch after Airtable accepted
it, carrying the records Airtable returned (full records for create/update/upsert: the cache
re-evaluates cached answers with them; ids only for delete). A subscriber that raises is logged
and skipped: a cache bug must not fail a write that already happened (the cache should treat its
own failure as "invalidate the table").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

WriteOp = Literal["create", "update", "upsert", "delete"]


@dataclass(frozen=True)
class WriteEvent:
    table: str
    op: WriteOp
    #: records as Airtable returned them: {"id", "createdTime", "fields"} (delete: {"id", "deleted"})
    records: tuple[dict[str, Any], ...] = ()
    #: for upsert: the ids Airtable created (the others were updated)
    created_ids: tuple[str, ...] = field(default=())
    #: the write's answer was lost: Airtable may or may not have applied it (no records then)
    outcome_unknown: bool = False

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(str(r.get("id")) for r in self.records)


Subscriber = Callable[[WriteEvent], None]

_subscribers: list[Subscriber] = []
_lock = threading.Lock()
_log = logging.getLogger("beststag.events")


def subscribe(fn: Subscriber) -> Callable[[], None]:
    """Register `fn`; returns a function that unsubscribes it."""
    with _lock:
        _subscribers.append(fn)

    def unsubscribe() -> None:
        with _lock:
            if fn in _subscribers:
                _subscribers.remove(fn)

    return unsubscribe


def publish(event: WriteEvent) -> int:
    """Deliver `event` to every subscriber (in subscription order); returns how many took it."""
    with _lock:
        subs = list(_subscribers)
    ok = 0
    for fn in subs:
        try:
            fn(event)
            ok += 1
        except Exception:
            _log.warning("write event subscriber %r failed for %s on %s", fn, event.op, event.table, exc_info=True)
    return ok


def subscribers() -> list[Subscriber]:
    with _lock:
        return list(_subscribers)
