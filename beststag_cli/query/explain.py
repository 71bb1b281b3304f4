"""The request plan of a query: formula, method, pages, requests, bytes and time, complexity, warnings.

Pure functions over a bound query and a record count; `service.QueryService.explain` supplies the
count (journal snapshot, else a count query).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from .filters import DATE_OPS, And, Node, Not, Or, walk
from .formula import compile_bound
from .schema import LONG_TEXT_TYPES, FieldInfo, TableInfo
from .validate import Bound

MAX_URL_LENGTH = 16000  # pyairtable's Api.MAX_URL_LENGTH: at or above it, listRecords is POSTed
MAX_PAGE_SIZE = 100
RATE_PER_S = 5.0
DEFAULT_LATENCY_S = 0.25
LARGE_TABLE = 1000
ENVELOPE_BYTES = 80  # {"id":"rec…","createdTime":"…","fields":{}} plus separators

_VALUE_BYTES = {
    "singleLineText": 24,
    "multilineText": 220,
    "richText": 260,
    "email": 28,
    "url": 45,
    "phoneNumber": 18,
    "singleSelect": 10,
    "multipleSelects": 28,
    "number": 6,
    "currency": 7,
    "percent": 5,
    "duration": 6,
    "rating": 2,
    "autoNumber": 5,
    "date": 12,
    "dateTime": 26,
    "createdTime": 26,
    "lastModifiedTime": 26,
    "checkbox": 4,
    "multipleRecordLinks": 24,
    "multipleLookupValues": 34,
    "multipleAttachments": 650,
    "formula": 20,
    "rollup": 12,
}


@dataclass
class Complexity:
    score: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class Plan:
    table: str
    formula: str
    empty: bool
    method: str  # GET | POST | none
    url_length: int
    fields: list[str] | None
    sort: list[dict[str, str]]
    page_size: int
    max_records: int | None
    view: str | None
    record_count: int | None
    count_source: str
    max_matches: int | None
    pages: int
    requests: int
    est_bytes: int
    est_seconds: float
    complexity: Complexity
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def page_size_for(bound: Bound) -> int:
    spec = bound.spec
    if spec.page_size:
        return spec.page_size
    if spec.max_records:
        return min(MAX_PAGE_SIZE, spec.max_records)
    return MAX_PAGE_SIZE


def request_options(bound: Bound) -> dict[str, Any]:
    """pyairtable `Table.iterate()` options for the bound query."""
    spec = bound.spec
    opts: dict[str, Any] = {"page_size": page_size_for(bound)}
    formula = compile_bound(bound)
    if formula:
        opts["formula"] = formula
    fields = bound.request_fields
    if fields is not None:
        opts["fields"] = fields
    if spec.sort:
        opts["sort"] = [s.option() for s in spec.sort]
    if spec.max_records:
        opts["max_records"] = spec.max_records
    if spec.view:
        opts["view"] = spec.view
    return opts


def url_length(endpoint: str, base_id: str, table: str, opts: dict[str, Any]) -> int:
    """Length of the GET URL pyairtable would build (its POST fallback starts at 16,000)."""
    params: list[tuple[str, Any]] = []
    for name in opts.get("fields", []):
        params.append(("fields[]", name))
    if "formula" in opts:
        params.append(("filterByFormula", opts["formula"]))
    if "max_records" in opts:
        params.append(("maxRecords", opts["max_records"]))
    params.append(("pageSize", opts["page_size"]))
    for i, s in enumerate(opts.get("sort", [])):
        params.append((f"sort[{i}][direction]", "desc" if s.startswith("-") else "asc"))
        params.append((f"sort[{i}][field]", s.lstrip("-")))
    if "view" in opts:
        params.append(("view", opts["view"]))
    url = f"{endpoint.rstrip('/')}/v0/{base_id}/{quote(table, safe='')}?{urlencode(params)}"
    return len(url)


def record_bytes(table: TableInfo, fields: list[str] | None) -> int:
    chosen: list[FieldInfo] = [table.field(n) for n in fields] if fields is not None else list(table.fields)
    return ENVELOPE_BYTES + sum(len(f.name.encode()) + 4 + _VALUE_BYTES.get(f.type, 20) for f in chosen)


def _depth(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return 1 + max((_depth(i) for i in node.items), default=0)
    if isinstance(node, Not):
        return 1 + _depth(node.item)
    return 0


_STRING_RE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\{(?:\\\}|[^}])*\}", re.S)
_CALL_RE = re.compile(r"\b[A-Z_]+\(")


def complexity(bound: Bound, formula: str) -> Complexity:
    conds = walk(bound.tree)
    table = bound.table
    funcs = len(_CALL_RE.findall(_STRING_RE.sub("''", formula)))
    parts: dict[str, float] = {
        "conditions": float(len(conds)),
        "functions": funcs * 0.5,
        "nesting": float(max(0, _depth(bound.tree) - 1)),
        "full_text": 0.0,
        "date_math": 0.0,
        "lookups": 0.0,
    }
    for c in conds:
        f = table.field(c.field)
        if c.op in ("contains", "starts_with"):
            parts["full_text"] += 3.0 if f.type in LONG_TEXT_TYPES else 1.0
        if f.kind == "date" and c.op not in ("is_empty", "not_empty"):
            rel = c.op in DATE_OPS and not {"value", "from", "to"} & set(c.date_args)
            parts["date_math"] += 2.0 if rel else 1.0
        if f.computed or f.type == "multipleRecordLinks":
            parts["lookups"] += 3.0 if f.computed else 2.0
    if bound.spec.sort:
        parts["sort"] = 0.5 * len(bound.spec.sort)
    return Complexity(round(sum(parts.values()), 2), parts)


def make_plan(
    bound: Bound,
    *,
    endpoint: str,
    base_id: str,
    record_count: int | None,
    count_source: str,
    latency_s: float = DEFAULT_LATENCY_S,
    rate_per_s: float = RATE_PER_S,
) -> Plan:
    spec, table = bound.spec, bound.table
    opts = request_options(bound)
    formula = opts.get("formula", "")
    fields = bound.request_fields
    warnings: list[str] = []
    if bound.empty:
        return Plan(
            table.name,
            "FALSE()",
            True,
            "none",
            0,
            fields,
            [s.model_dump() for s in spec.sort],
            opts["page_size"],
            spec.max_records,
            spec.view,
            record_count,
            count_source,
            0,
            0,
            0,
            0,
            0.0,
            Complexity(0.0, {}),
            ["the filter can never match: answered empty without a request"],
        )
    ulen = url_length(endpoint, base_id, table.name, opts)
    method = "POST" if ulen >= MAX_URL_LENGTH else "GET"
    max_matches: int | None
    if record_count is None:
        max_matches = spec.max_records
    else:
        max_matches = min(record_count, spec.max_records) if spec.max_records else record_count
    pages = max(1, math.ceil((max_matches or 0) / opts["page_size"])) if max_matches is not None else 1
    per_record = record_bytes(table, fields)
    est_bytes = (max_matches or 0) * per_record + pages * 20
    est_seconds = round(max(0, pages - 1) / rate_per_s + pages * latency_s, 2)
    if fields is None:
        warnings.append(f"no field selection: every field is transferred (~{per_record} bytes a record); pass --fields")
    if not spec.max_records:
        warnings.append(
            "unbounded result: no maxRecords"
            + (f", up to {record_count} records in {pages} request(s)" if record_count is not None else "")
        )
        if record_count is not None and record_count > LARGE_TABLE:
            warnings.append(f"large table ({record_count} records) without maxRecords")
    for c in walk(bound.tree):
        f = table.field(c.field)
        if f.computed:
            warnings.append(f'filter on a computed field "{f.name}" ({f.type}): Airtable evaluates it per record')
        elif f.type == "multipleRecordLinks":
            warnings.append(f'"{f.name}" is a link: the filter compares the linked records\' primary field values')
    if spec.page_size and spec.max_records and spec.page_size < min(MAX_PAGE_SIZE, spec.max_records):
        warnings.append(
            f"pageSize {spec.page_size} costs extra requests; leave it out to get "
            f"{min(MAX_PAGE_SIZE, spec.max_records)}"
        )
    if method == "POST":
        warnings.append(f"the request URL would be {ulen} characters: sent as POST listRecords")
    if spec.view and spec.sort:
        warnings.append("sort overrides the view's order")
    return Plan(
        table.name,
        formula,
        False,
        method,
        ulen,
        fields,
        [s.model_dump() for s in spec.sort],
        opts["page_size"],
        spec.max_records,
        spec.view,
        record_count,
        count_source,
        max_matches,
        pages,
        pages,
        est_bytes,
        est_seconds,
        complexity(bound, formula),
        list(dict.fromkeys(warnings)),
    )


__all__ = ["Complexity", "Plan", "complexity", "make_plan", "request_options", "url_length"]
