"""Applying our own writes to cached answers: pure functions over plain data (now passed in).

A write through beststag returns the full records from Airtable. For each cached answer of the
written table we decide, with the query's own semantics (`query.evaluate`), whether each written
record now belongs to the answer and where it sorts, and patch the answer in place. Where local
evaluation cannot be exact we return None and the caller drops just that entry:

- the filter or sort reads a link field (the formula sees linked records' primary values, which
  the written record does not carry) or the query names a view (its filter is Airtable's);
- a record leaves a *truncated* window (the answer was cut at maxRecords: the record that should
  move up into the window is unknown);
- a deleted record was in a truncated window (same reason).

Records without `createdTime` (the change feed's updated records: Airtable's webhook payloads carry
it for created records only) keep the time of the copy already in the answer; the cache fills it in
first from any other copy it holds (`sync._known_created_times`); one that would enter an answer still
without it cannot be placed among ties, so the answer is dropped.

Order: Airtable sorts stably over creation order. A record already in the answer keeps its place
among ties; a record entering the answer is placed by `createdTime` after records created at the
same instant (Airtable's creation order for records created in the same millisecond is the order
they were created in, and later writes create later records).
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..query.evaluate import Evaluator, NeedsLinkedRecords, project
from ..query.schema import TableInfo
from ..query.spec import QuerySpec
from ..query.validate import bind

Record = dict[str, Any]


def answer_hash(records: Iterable[Record]) -> str:
    """A digest of an answer (ids, createdTime and fields), to tell whether a refresh changed it."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    return h.hexdigest()[:32]


def patch_answer(
    records: list[Record],
    *,
    truncated: bool,
    spec: QuerySpec,
    table: TableInfo,
    now: datetime,
    upserts: Iterable[Record] = (),
    deletes: Iterable[str] = (),
) -> tuple[list[Record], bool] | None:
    """The answer after the writes, and whether it is still truncated; None = drop the entry.

    `records` hold the fields the query requested plus its sort fields (`spec.needed_fields()`);
    `upserts` are full records as Airtable returned them after the write.
    """
    if spec.view is not None:
        return None
    try:
        ev = Evaluator(table, now)
        tree = bind(spec, table).tree
        keep = spec.needed_fields()
        dirs = [x.direction == "desc" for x in spec.sort]

        def key(r: Record) -> tuple[Any, ...]:
            return (*ev.sort_key(spec.sort, r), r.get("createdTime", ""))

        # In a truncated window, anything that sorts after the last known member may be beaten by
        # records we never saw: such a position cannot be decided locally.
        boundary = key(records[-1]) if truncated and records else None

        def beyond(r: Record) -> bool:
            return boundary is not None and _compare(key(r), boundary, dirs) >= 0

        current = list(records)
        index = {r["id"]: i for i, r in enumerate(current)}
        removed: set[str] = set()
        for rid in deletes:
            if rid in index and rid not in removed:
                if truncated:
                    return None
                removed.add(rid)
        entering: list[Record] = []
        upserts_seen: list[Record] = []
        for rec in upserts:
            upserts_seen.append(rec)
            rid = rec["id"]
            inside = ev.matches(tree, rec)
            if rid in index and rid not in removed:
                rec = with_created_time(rec, current[index[rid]])
                if inside and not beyond(rec):
                    current[index[rid]] = project(rec, keep)
                elif truncated:
                    return None
                else:
                    removed.add(rid)
            elif inside:
                if "createdTime" not in rec:
                    return None  # entering, with no creation time to place it by
                if boundary is not None and _compare(key(rec), boundary, dirs) == 0:
                    return None
                if not beyond(rec):
                    entering.append(project(rec, keep))
        if not removed and not entering and not any(r["id"] in index for r in upserts_seen):
            return current, truncated  # the writes touch nothing in this answer (the common case)
        # back to creation order, then Airtable's stable sort: ties end up in creation order
        out = _creation_order([r for r in current if r["id"] not in removed])
        if entering:
            times = [r.get("createdTime", "") for r in out]
            for rec in entering:
                pos = bisect.bisect_right(times, rec.get("createdTime", ""))
                out.insert(pos, rec)
                times.insert(pos, rec.get("createdTime", ""))
        out = ev.order(out, spec.sort)
        touched = {r["id"] for r in entering} | {r["id"] for r in upserts_seen}
        if touched and _ambiguous(out, touched, lambda r: ev.sort_key(spec.sort, r)):
            return None
        still_truncated = truncated
        if spec.max_records and len(out) > spec.max_records:
            out = out[: spec.max_records]
            still_truncated = True
        return out, still_truncated
    except NeedsLinkedRecords:
        return None


def _compare(a: tuple[Any, ...], b: tuple[Any, ...], desc: list[bool]) -> int:
    """-1/0/1: does key `a` sort before, with, or after `b` (sort fields, then createdTime asc)?"""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        before = x < y
        if i < len(desc) and desc[i]:
            before = not before
        return -1 if before else 1
    return 0


def _ambiguous(records: list[Record], touched: set[str], key: Any) -> bool:
    """A touched record ties with another on every sort key *and* on createdTime: the true order
    is Airtable's internal creation order, which the records do not carry."""
    seen: dict[tuple[Any, str], list[str]] = {}
    for r in records:
        seen.setdefault((key(r), r.get("createdTime", "")), []).append(r["id"])
    return any(len(ids) > 1 and touched & set(ids) for ids in seen.values())


def _creation_order(records: list[Record]) -> list[Record]:
    """Stable by createdTime: ties keep their current relative order."""
    return sorted(records, key=lambda r: r.get("createdTime", ""))


def with_created_time(rec: Record, cached: Record) -> Record:
    """`rec`, with the cached copy's `createdTime` when it carries none (a feed update)."""
    if "createdTime" in rec or "createdTime" not in cached:
        return rec
    return {**rec, "createdTime": cached["createdTime"]}


def patch_mirror(
    records: list[Record], *, upserts: Iterable[Record] = (), deletes: Iterable[str] = ()
) -> list[Record] | None:
    """A mirrored table (full records, creation order) after the writes; None = drop it (a record to
    add has no creation time to place it by)."""
    gone = set(deletes)
    by_id = {r["id"]: r for r in upserts}
    out = []
    for r in records:
        if r["id"] in gone:
            continue
        out.append(with_created_time(by_id.pop(r["id"]), r) if r["id"] in by_id else r)
    if any("createdTime" not in r for r in by_id.values()):
        return None
    if by_id:
        out = _creation_order(out)
        times = [r.get("createdTime", "") for r in out]
        for rec in by_id.values():
            pos = bisect.bisect_right(times, rec.get("createdTime", ""))
            out.insert(pos, rec)
            times.insert(pos, rec.get("createdTime", ""))
    return out


def fields_touched_by(
    spec_fields: list[str] | None, filter_fields: Iterable[str], sort_fields: Iterable[str], affected: set[str]
) -> bool:
    """Does a cached answer read any of `affected` (None fields = every field)?"""
    if spec_fields is None:
        return True
    return bool(affected & (set(spec_fields) | set(filter_fields) | set(sort_fields)))
