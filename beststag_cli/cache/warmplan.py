"""What `cache warm` loads: the configured queries (``cache.warm``), then the journal's busiest ones.

Two queries that differ only in how they are written (fields in another order, a filter's
children swapped) share one cache entry, so they are warmed once: the plan is de-duplicated by
:func:`beststag_cli.query.normalize.cache_key`, the key the cache stores the answer under. The
first occurrence wins, so a configured query keeps its place ahead of the journal's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..progress import Reporter
from ..query.normalize import cache_key

if TYPE_CHECKING:
    from ..query.spec import QuerySpec


class _Answer(Protocol):
    """What warming a query returns (the cache's `CacheResult`)."""

    table: str
    key: str
    status: str
    records: list[Any]


class WarmSource(Protocol):
    """The cache operations warming needs (the cache manager provides them)."""

    def configured_warm_specs(self, tables: Iterable[str] = ...) -> list[QuerySpec]: ...

    def journal_warm_specs(
        self, *, hours: float = ..., limit: int = ..., tables: Iterable[str] = ...
    ) -> list[QuerySpec]: ...

    def warm(self, specs: Iterable[QuerySpec], progress: Reporter | None = ...) -> Sequence[_Answer]: ...


@dataclass(frozen=True)
class WarmPlan:
    """The queries to load, each once, in order; how many of each source made it, and how many were repeats."""

    specs: tuple[QuerySpec, ...]
    configured: int
    from_journal: int
    duplicates: int


def plan_warm(configured: Iterable[QuerySpec], journal: Iterable[QuerySpec] = ()) -> WarmPlan:
    """The configured queries, then the journal's, without a second query for a cache key already planned."""
    seen: set[str] = set()
    specs: list[QuerySpec] = []
    counts = [0, 0]
    duplicates = 0
    for source, group in enumerate((configured, journal)):
        for spec in group:
            key = cache_key(spec)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            specs.append(spec)
            counts[source] += 1
    return WarmPlan(tuple(specs), counts[0], counts[1], duplicates)


@dataclass(frozen=True)
class WarmedQuery:
    """One warmed query, as `cache warm` reports it."""

    table: str
    query: str  # the `cache get` options that ask it
    spec: dict[str, Any]
    key: str
    records: int
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "query": self.query,
            "spec": self.spec,
            "key": self.key,
            "records": self.records,
            "status": self.status,
        }


def warm_queries(
    cache: WarmSource,
    tables: Sequence[str] = (),
    *,
    from_journal: bool = False,
    limit: int = 20,
    progress: Reporter | None = None,
) -> list[WarmedQuery]:
    """Plan (configured queries, and with ``from_journal`` the ``limit`` busiest of the last 24 h,
    only of ``tables`` when given) and load each planned query now."""
    journal = cache.journal_warm_specs(limit=limit, tables=tables) if from_journal else []
    plan = plan_warm(cache.configured_warm_specs(tables), journal)
    answers = cache.warm(plan.specs, progress=progress)
    return [
        WarmedQuery(a.table, s.describe(), s.to_json(), a.key, len(a.records), a.status)
        for s, a in zip(plan.specs, answers, strict=True)
    ]
