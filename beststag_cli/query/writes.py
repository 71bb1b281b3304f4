"""Record writes: create, update, upsert, delete — 10 records a request, batches sent concurrently
(the gateway's limiter keeps them within 5 req/s); the gateway tells its change sink (the cache) of each batch.

Field names are checked against the cached schema before anything is sent (unknown field → exit 2
with a suggestion). A failure after some batches went through is a `PartialSuccess` (exit 3) that
says how many records were written; the written batches have already reached the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import BadInput, BestStagError, Interrupted, NotFound, PartialSuccess, WriteOutcomeUnknown
from ..inputs import check_text, parse_json_option
from .schema_cache import SchemaCache

if TYPE_CHECKING:
    from ..gateway.api import Gateway

WriteOp = Literal["create", "update", "upsert", "delete"]

BATCH = 10
WORKERS = 4
OPS: tuple[WriteOp, ...] = ("create", "update", "upsert", "delete")


@dataclass
class WriteResult:
    table: str
    op: WriteOp
    records: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    created_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "table": self.table,
            "operation": self.op,
            "count": len(self.records),
            "requests": self.requests,
            "records": self.records,
        }
        if self.op == "upsert":
            out["created"] = self.created_ids
        return out


# ------------------------------------------------------------------------------------------ input
def read_items(data: str | None, lines: Iterable[str] | None) -> list[Any]:
    """`--data JSON` (an object or a list) and/or `--file` NDJSON lines → a list of JSON items."""
    items: list[Any] = []
    if data is not None:
        parsed = parse_json_option(
            data,
            "--data",
            BadInput,
            'example: --data \'{"fields": {"Nome": "Ana"}}\'',
            deep_hint='a record is {"fields": {...}}',
        )
        items.extend(parsed if isinstance(parsed, list) else [parsed])
    for n, line in enumerate(lines or [], 1):
        if not line.strip():
            continue
        items.append(parse_json_option(line, f"--file line {n}", BadInput, "one JSON object per line", position=False))
    return items


def to_records(op: WriteOp, items: list[Any]) -> list[Any]:
    """Check the shape each operation needs; bare field objects become `{"fields": ...}`."""
    if not items:
        raise BadInput(f"nothing to {op}", hint="pass --data JSON or --file NDJSON (- for stdin)")
    out: list[Any] = []
    for i, it in enumerate(items, 1):
        if op == "delete":
            rid = it.get("id") if isinstance(it, dict) else it
            check_text(rid, f"record {i}")
            if not isinstance(rid, str) or not rid.startswith("rec"):
                raise BadInput(f"record {i}: delete needs a record id (rec...), got {json.dumps(it)[:60]}")
            out.append(rid)
            continue
        if not isinstance(it, dict):
            raise BadInput(f"record {i}: expected an object, got {type(it).__name__}")
        rec = dict(it) if "fields" in it and isinstance(it["fields"], dict) else {"fields": dict(it)}
        extra = set(rec) - {"id", "fields"}
        if extra:
            raise BadInput(
                f'record {i}: unexpected key {sorted(extra)[0]!r} (a record is {{"id": ..., "fields": {{...}}}})'
            )
        if op == "update" and not isinstance(rec.get("id"), str):
            raise BadInput(f'record {i}: update needs an "id"', hint='{"id": "rec...", "fields": {...}}')
        if op == "create" and "id" in rec:
            raise BadInput(f'record {i}: create takes no "id"', hint="use update or upsert for existing records")
        if op == "upsert" and rec.get("id") is None:
            rec.pop("id", None)
        out.append(rec)
    return out


# ------------------------------------------------------------------------------------------ writes
class _NotSent(Exception):
    """A batch that was never sent because the run was interrupted first."""


def _spans(ranges: list[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and merged[-1][1] + 1 == a:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in merged)


def _interrupted_message(e: Interrupted, chunks: list[list[Any]], results: list[Any], given: int) -> str:
    """'interrupted by SIGTERM after records 1-120 (of 300 given) were written; records 121-300 were not sent'."""
    written: list[tuple[int, int]] = []
    unsent: list[tuple[int, int]] = []
    failed: list[tuple[int, int]] = []
    start = 1
    for c, r in zip(chunks, results, strict=True):
        span = (start, start + len(c) - 1)
        start += len(c)
        (unsent if isinstance(r, _NotSent) else failed if isinstance(r, BaseException) else written).append(span)
    head = e.message
    msg = (
        f"{head} after records {_spans(written)} (of {given} given) were written"
        if written
        else f"{head} before any of the {given} records given were written"
    )
    if failed:
        msg += f"; records {_spans(failed)} failed or their answer was lost"
    if unsent:
        msg += f"; records {_spans(unsent)} were not sent"
    return msg


class Writer:
    def __init__(self, gateway: Gateway, schema: SchemaCache | None = None, *, workers: int = WORKERS) -> None:
        self.gateway = gateway
        self.schema = schema or SchemaCache(gateway)
        self.workers = workers

    def write(
        self,
        op: WriteOp,
        table: str,
        records: list[Any],
        *,
        typecast: bool = False,
        replace: bool = False,
        merge_on: list[str] | None = None,
    ) -> WriteResult:
        if op not in OPS:
            raise BadInput(f"unknown write operation {op!r}")
        check_text(table, "TABLE")
        check_text(merge_on, "--merge-on")
        check_text(records, "the records")
        names = {n for r in records if isinstance(r, dict) for n in r.get("fields", {})}
        if op == "upsert":
            if not merge_on:
                raise BadInput("upsert needs --merge-on FIELD[,FIELD..]", hint="the fields that identify a record")
            names |= set(merge_on)
            for r in records:
                missing = [m for m in merge_on if m not in r.get("fields", {})]
                if missing:
                    raise BadInput(f'upsert: a record has no value for merge field "{missing[0]}"')
        t = self.schema.check_fields(table, sorted(names))
        name = t.name
        chunks = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
        call = self._call(op, name, typecast=typecast, replace=replace, merge_on=merge_on or [])
        _ = self.gateway.api  # build it once, before threads share it
        results = self._run(call, chunks, op, name, len(records))
        out = WriteResult(name, op)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if not isinstance(r, BaseException):
                out.records.extend(r[0])
                out.created_ids.extend(r[1])
                out.requests += 1
        unknown = [(i, r) for i, r in enumerate(results) if isinstance(r, WriteOutcomeUnknown)]
        if unknown:
            spans = ", ".join(f"{i * BATCH + 1}-{i * BATCH + len(chunks[i])}" for i, _ in unknown)
            written = f"{len(out.records)} of {len(records)} records written; " if len(chunks) > 1 else ""
            msg = (
                f"{op} on {name}: {written}Airtable's answer for records {spans} (of {len(records)} given) "
                "was lost; they may or may not have been written"
            )
            if out.records:  # exit 3: the other batches are confirmed and kept
                raise PartialSuccess(msg, hint=WriteOutcomeUnknown.hint)
            raise WriteOutcomeUnknown(msg)
        if errors:
            first = errors[0]
            if not out.records:
                raise first
            msg = first.message if isinstance(first, BestStagError) else f"{type(first).__name__}: {first}"
            raise PartialSuccess(
                f"{op} on {name}: {len(out.records)} of {len(records)} records written; "
                f"{len(errors)} batch(es) failed: {msg}",
                hint="the written records are kept; retry the rest",
            )
        return out

    def _run(
        self,
        call: Callable[[list[Any]], tuple[list[dict[str, Any]], list[str]]],
        chunks: list[list[Any]],
        op: WriteOp,
        table: str,
        given: int,
    ) -> list[tuple[list[dict[str, Any]], list[str]] | BaseException]:
        """Every batch's outcome, in order. On SIGINT/SIGTERM (interrupts.handling active) no new batch is
        sent, the ones in flight are awaited, and `Interrupted` says which records were confirmed written."""
        from .. import interrupts

        def guarded(c: list[Any]) -> tuple[list[dict[str, Any]], list[str]] | BaseException:
            if interrupts.requested() is not None:
                return _NotSent()
            return self._guard(call, c, op, table)

        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(chunks)), thread_name_prefix="beststag-write")
        futures: list[Any] = []
        try:
            try:
                for c in chunks:  # appended one by one: an interruption mid-loop still sees every submitted batch
                    futures.append(pool.submit(guarded, c))
                return [f.result() for f in futures]
            except Interrupted as e:
                for f in futures:
                    f.cancel()
                pool.shutdown(wait=True)  # the batches in flight finish: their outcome is known
                done = [f.result() if not f.cancelled() else _NotSent() for f in futures]
                done += [_NotSent()] * (len(chunks) - len(done))
                stopped = Interrupted(e.signum, _interrupted_message(e, chunks, done, given))
                stopped.hint = "rerun with only the records that were not written, to avoid duplicates"
                raise stopped from None
        finally:
            pool.shutdown(wait=True)

    def _guard(
        self,
        call: Callable[[list[Any]], tuple[list[dict[str, Any]], list[str]]],
        chunk: list[Any],
        op: WriteOp,
        table: str,
    ) -> tuple[list[dict[str, Any]], list[str]] | BaseException:
        try:
            return call(chunk)  # the gateway tells the cache of the outcome, success or not
        except Exception as e:  # collected: the other batches go on
            return e

    def _call(
        self, op: WriteOp, table: str, *, typecast: bool, replace: bool, merge_on: list[str]
    ) -> Callable[[list[Any]], tuple[list[dict[str, Any]], list[str]]]:
        gw = self.gateway
        if op == "create":
            return lambda c: (gw.create(table, [r["fields"] for r in c], typecast=typecast), [])
        if op == "update":
            return lambda c: (gw.update(table, c, replace=replace, typecast=typecast), [])
        if op == "delete":
            return lambda c: (self._delete(table, c), [])

        def upsert(c: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
            res = gw.upsert(table, c, merge_on, typecast=typecast)
            return list(res.get("records", [])), list(res.get("createdRecords", []))

        return upsert

    def _delete(self, table: str, ids: list[str]) -> list[dict[str, Any]]:
        """Batch delete; a retry that finds the records gone after a lost answer is the delete succeeding."""
        try:
            return self.gateway.delete(table, ids)
        except BadInput as e:
            if not getattr(e, "after_unknown_outcome", False):
                raise  # a plain unknown id stays an error
            # an earlier attempt was applied before its answer was lost: the batch is atomic, so
            # either all its records are gone (deleted by it) or the error is real
            for rid in ids:
                try:
                    self.gateway.get(table, rid)
                except NotFound:
                    continue
                raise
            return [{"id": rid, "deleted": True} for rid in ids]
