"""What changed in a base, and who is told: the one door between writers and whatever mirrors Airtable.

The gateway hands every write's answer to the `ChangeSink` it was built with (the cache, in every
process that has one), so no writer has to remember to tell anyone, and a writer added later is
exact by construction. The same `Change` is what the change feed (Airtable's webhooks, a later
issue) will deliver for changes made outside beststag, so it carries records as Airtable returns
them rather than the operation that produced them. Stdlib only: the sandbox and the fast path may
import it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]

#: who made the change: beststag's own writes, a restore, `metrics push`, the change feed (outside edits)
SOURCES = ("beststag", "restore", "push", "feed")

_log = logging.getLogger("beststag.changes")


@dataclass(frozen=True)
class Change:
    """One batch of changes to one table of one base."""

    base: str
    table: str
    source: str = "beststag"
    #: records as Airtable returned them ({"id", "createdTime", "fields"}), whole: a sink may
    #: re-evaluate filters and sorts with them
    created: tuple[Record, ...] = ()
    updated: tuple[Record, ...] = ()
    deleted: tuple[str, ...] = ()
    #: the table may have changed in ways not listed here (a failed write, a lost answer, a partial
    #: answer such as an attachment upload's): a sink must forget what it knows of the table
    unknown: bool = False

    @property
    def upserted(self) -> tuple[Record, ...]:
        return self.created + self.updated

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(str(r.get("id")) for r in self.upserted) + self.deleted

    @classmethod
    def table_may_have_changed(cls, base: str, table: str, source: str = "beststag") -> Change:
        return cls(base, table, source, unknown=True)


class ChangeSink(Protocol):
    """Told of every change; must not raise for a change it cannot apply (it forgets the table instead)."""

    def apply(self, change: Change) -> None: ...


class NullSink:
    """No one to tell (a process without a cache; tests of the gateway alone)."""

    def apply(self, change: Change) -> None:
        return None


class FanOut:
    """Several sinks, each told in order; one that raises is logged and the others still hear."""

    def __init__(self, sinks: Iterable[ChangeSink]) -> None:
        self.sinks = list(sinks)

    def apply(self, change: Change) -> None:
        for sink in self.sinks:
            deliver(sink, change)


def deliver(sink: ChangeSink, change: Change) -> bool:
    """`sink.apply(change)`; a failure is logged, never raised: the write it reports already happened."""
    try:
        sink.apply(change)
        return True
    except Exception:
        _log.warning(
            "change sink %r failed for %s on %s/%s", sink, change.source, change.base, change.table, exc_info=True
        )
        return False
