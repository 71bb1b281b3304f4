"""Query operations on a Gateway: bind (validate), explain, run, count.

The only query module that talks to Airtable (through the gateway); it is imported lazily by the
CLI and the cache's miss path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import clock
from .evaluate import project
from .explain import DEFAULT_LATENCY_S, Plan, make_plan, request_options
from .schema_cache import SchemaCache
from .spec import QuerySpec
from .validate import Bound, bind

if TYPE_CHECKING:
    from ..gateway.api import Gateway

COUNT_MAX_AGE_S = 24 * 3600.0


@dataclass
class QueryResult:
    table: str
    records: list[dict[str, Any]]
    formula: str
    pages: int = 0
    empty_by_contradiction: bool = False
    fields: list[str] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "records": self.records, "count": len(self.records)}


class QueryService:
    def __init__(self, gateway: Gateway, schema: SchemaCache | None = None) -> None:
        self.gateway = gateway
        self.schema = schema or SchemaCache(gateway)

    def bind(self, spec: QuerySpec) -> Bound:
        """Validate against the (cached) schema; every problem raises before any list request."""
        from .filters import walk

        names = [c.field for c in walk(spec.tree)] + list(spec.fields or []) + [s.field for s in spec.sort]
        table = self.schema.check_fields(spec.table, list(dict.fromkeys(names)))
        return bind(spec, table)

    # ------------------------------------------------------------------ count
    def journal_count(self, table: str) -> tuple[int, float] | None:
        j = self.gateway.journal
        if j is None:
            return None
        rows = j.query(
            "SELECT records, ts FROM count_snapshots WHERE table_name = ? AND (base = ? OR base IS NULL) "
            "ORDER BY ts DESC LIMIT 1",
            (table, self.gateway.settings.base_id),
        )
        return (int(rows[0]["records"]), float(rows[0]["ts"])) if rows else None

    def count(self, table: str) -> int:
        """Count records with the smallest possible listing (primary field only) and journal it."""
        t = self.schema.table(table)
        n = sum(len(p) for p in self.gateway.iterate(t.name, fields=[t.primary.name], page_size=100))
        j = self.gateway.journal
        if j is not None:
            try:
                j.add_count_snapshot(table_name=t.name, records=n, base=self.gateway.settings.base_id)
            except Exception:
                pass
        return n

    def _latency(self, table: str) -> float:
        j = self.gateway.journal
        if j is None:
            return DEFAULT_LATENCY_S
        try:
            rows = j.query(
                "SELECT duration_ms FROM requests WHERE table_name = ? AND operation = 'list' "
                "AND status = 200 ORDER BY ts DESC LIMIT 50",
                (table,),
            )
        except Exception:
            return DEFAULT_LATENCY_S
        if len(rows) < 5:
            return DEFAULT_LATENCY_S
        vals = sorted(float(r["duration_ms"]) for r in rows)
        return vals[len(vals) // 2] / 1000.0

    # ------------------------------------------------------------------ explain / run
    def explain(self, spec: QuerySpec, *, count: bool = True) -> Plan:
        bound = self.bind(spec)
        snap = self.journal_count(bound.table.name)
        record_count: int | None
        if snap is not None and clock.timestamp() - snap[1] < COUNT_MAX_AGE_S:
            record_count, source = snap[0], f"journal snapshot, {int(clock.timestamp() - snap[1])} s old"
        elif count and not bound.empty:
            record_count, source = self.count(bound.table.name), "counted now"
        elif snap is not None:
            record_count, source = snap[0], "journal snapshot (old)"
        else:
            record_count, source = None, "unknown"
        return make_plan(
            bound,
            endpoint=self.gateway.settings.endpoint_url,
            base_id=self.gateway.base_id,
            record_count=record_count,
            count_source=source,
            latency_s=self._latency(bound.table.name),
            rate_per_s=float(self.gateway.settings.airtable.rate_limit_per_s),
        )

    def run(self, spec: QuerySpec, on_page: Callable[[int], None] | None = None) -> QueryResult:
        """Execute without cache: one listing with everything pushed server-side."""
        bound = self.bind(spec)
        if bound.empty:
            return QueryResult(bound.table.name, [], "FALSE()", 0, True, spec.fields)
        opts = request_options(bound)
        records: list[dict[str, Any]] = []
        pages = 0
        for page in self.gateway.iterate(bound.table.name, **opts):
            pages += 1
            records.extend(project(r, spec.fields) for r in page)
            if on_page is not None:
                on_page(len(records))
            if spec.max_records and len(records) >= spec.max_records:
                break
        if spec.max_records:
            records = records[: spec.max_records]
        return QueryResult(bound.table.name, records, opts.get("formula", ""), pages, False, spec.fields)
