"""Storage and record semantics of the sandbox: one SQLite file (WAL), an in-memory mirror.

Every public method is one Airtable operation and is atomic, like Airtable's requests. Errors
are raised as `ApiError` carrying Airtable's status, type and message; the HTTP layer only
renders them. Several processes may open the same file (a cron job and a server, both with the
in-process sandbox): each keeps a decoded copy of the tables it reads and reloads a table when
the per-table version row in SQLite moved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from .. import clock
from . import comment_rows, computed
from .fields import EMPTY, CellError, format_instant, formula_value, parse_instant, string_cell, validate_cell
from .images import attachment_type, image_dimensions, image_json
from .localfetch import fetch_loopback
from .reporting import Reporter, Task, guard
from .schema import MERGE_ON_TYPES, BaseDef, FieldDef, TableDef, build_base, is_id, new_id

MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
ATTACHMENT_URL_TTL_S = 2 * 3600
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
PERMISSIONS_MESSAGE = (
    "Invalid permissions, or the requested model was not found. Check that both your user and your token "
    "have the required permissions, and that the model names and/or ids are correct."
)
INVALID_REQUEST_MESSAGE = "Invalid request: parameter validation failed. Check your request data."


class ApiError(Exception):
    """An Airtable error answer: status, `error.type`, optional message (or a bare string body)."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str | None = None,
        *,
        bare: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.bare = bare
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.bare:
            return {"error": self.type}
        err: dict[str, Any] = {"type": self.type}
        if self.message is not None:
            err["message"] = self.message
        return {"error": err}


def not_permitted() -> ApiError:
    return ApiError(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", PERMISSIONS_MESSAGE)


def invalid_request(message: str = INVALID_REQUEST_MESSAGE) -> ApiError:
    return ApiError(422, "INVALID_REQUEST_UNKNOWN", message)


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", bare=True)


class IdsTaken(ValueError):
    """A new base's table ids belong to another base of the file (ids are unique, as in Airtable)."""


class Rec:
    """One record; its per-field modification times are decoded only when first needed."""

    __slots__ = ("_mt", "_mt_raw", "created", "fields", "id", "seq")

    def __init__(self, id: str, seq: int, created: str, fields: dict[str, Any], mtimes: dict[str, str] | str):
        self.id = id
        self.seq = seq
        self.created = created
        self.fields = fields
        self._mt: dict[str, str] | None = mtimes if isinstance(mtimes, dict) else None
        self._mt_raw: str | None = mtimes if isinstance(mtimes, str) else None

    @property
    def mtimes(self) -> dict[str, str]:
        if self._mt is None:
            self._mt = json.loads(self._mt_raw or "{}")
            self._mt_raw = None
        return self._mt

    def mtimes_json(self) -> str:
        return self._mt_raw if self._mt is None and self._mt_raw is not None else json.dumps(self.mtimes)


class TableCache:
    __slots__ = ("records", "version")

    def __init__(self, version: int, records: dict[str, Rec]):
        self.version = version
        self.records = records  # insertion order == creation order (seq)


@dataclass
class ListParams:
    fields: list[str] | None = None
    formula: str | None = None
    max_records: int | None = None
    page_size: int = MAX_PAGE_SIZE
    sort: list[tuple[str, str]] | None = None
    view: str | None = None
    offset: str | None = None
    cell_format: str = "json"
    time_zone: str | None = None
    user_locale: str | None = None
    by_field_id: bool = False
    comment_count: bool = False


@dataclass
class _Iterator:
    table_id: str
    signature: tuple[Any, ...]
    ids: list[str]
    expires: float
    positions: dict[str, int]


class RecordContext:
    """EvalContext for the formula engine over one record."""

    __slots__ = ("_conv", "created_time", "now", "rec", "record_id")

    def __init__(self, conv: dict[str, Callable[[Rec], Any]], now: datetime):
        self._conv = conv
        self.now = now
        self.rec: Rec | None = None
        self.record_id = ""
        self.created_time = now

    def bind(self, rec: Rec) -> RecordContext:
        self.rec = rec
        self.record_id = rec.id
        self.created_time = parse_instant(rec.created)
        return self

    def value(self, key: Any) -> Any:
        return self._conv[key](self.rec)  # type: ignore[arg-type]

    def last_modified(self, keys: list[Any] | None) -> datetime | None:
        assert self.rec is not None
        m = self.rec.mtimes
        vals = [m[k] for k in keys if k in m] if keys is not None else list(m.values())
        return parse_instant(max(vals)) if vals else None


_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS bases (id TEXT PRIMARY KEY, name TEXT NOT NULL, schema TEXT NOT NULL,
                                  position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, base_id TEXT NOT NULL, table_id TEXT NOT NULL,
                                    seq INTEGER NOT NULL, created TEXT NOT NULL, fields TEXT NOT NULL,
                                    mtimes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_by_table ON records(table_id, seq);
CREATE TABLE IF NOT EXISTS versions (scope TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (table_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, auto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _now_iso() -> str:
    return format_instant(clock.now())


class SandboxStore:
    """The sandbox's data: bases, schemas, records, attachments; thread-safe, multi-process-safe."""

    def __init__(self, path: str | Path, *, iterator_ttl_s: float = 300.0, rng_seed: int | None = None) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA_SQL)
        from . import webhooks  # only stores pay for its import

        webhooks.install(self._db, ApiError, Rec)  # its tables and the triggers that capture every write
        self.webhooks = webhooks.WebhookHub(self)
        self._db.executescript(comment_rows.SCHEMA_SQL)
        self._lock = threading.RLock()
        self._rng = random.Random(rng_seed) if rng_seed is not None else random.Random()
        self._bases: dict[str, BaseDef] = {}
        self._base_versions: dict[str, int] = {}
        self._tables: dict[str, TableCache] = {}
        self._formulas: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._computed: dict[Any, Any] = {}  # computed.py's per-operation cache
        self.user_id = computed.DEFAULT_USER["id"]  # who writes: createdBy / lastModifiedBy
        self._iterators: OrderedDict[str, _Iterator] = OrderedDict()
        self.iterator_ttl_s = iterator_ttl_s
        self._secret = self._load_secret()

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.webhooks.close()
        with self._lock:
            self._db.close()

    def _load_secret(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key='url_secret'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        secret = os.urandom(32)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('url_secret', ?)", (secret.hex(),))
        row = self._db.execute("SELECT value FROM meta WHERE key='url_secret'").fetchone()
        return bytes.fromhex(row[0])

    def _versions(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT scope, version FROM versions").fetchall())

    def _sync(self) -> None:
        """Drop cached schemas and tables that another connection changed."""
        versions = self._versions()
        self._computed.clear()
        for base_id in list(self._bases):
            if versions.get("schema:" + base_id, 0) != self._base_versions.get(base_id):
                del self._bases[base_id]
        for table_id in list(self._tables):
            if versions.get(table_id, 0) != self._tables[table_id].version:
                del self._tables[table_id]
        self._last_versions = versions

    def _bump(self, scopes: Iterable[str]) -> dict[str, int]:
        out = {}
        for scope in set(scopes):
            self._db.execute(
                "INSERT INTO versions VALUES (?, 1) ON CONFLICT(scope) DO UPDATE SET version = version + 1",
                (scope,),
            )
            out[scope] = self._db.execute("SELECT version FROM versions WHERE scope=?", (scope,)).fetchone()[0]
        return out

    def _base(self, base_id: str) -> BaseDef:
        b = self._bases.get(base_id)
        if b is None:
            row = self._db.execute("SELECT schema FROM bases WHERE id=?", (base_id,)).fetchone()
            if row is None:
                raise not_permitted()
            b = BaseDef.from_json(json.loads(row[0]))
            self._bases[base_id] = b
            self._base_versions[base_id] = self._last_versions.get("schema:" + base_id, 0)
        return b

    def _table(self, base_id: str, table: str) -> tuple[BaseDef, TableDef]:
        b = self._base(base_id)
        t = b.table(table)
        if t is None:
            raise not_permitted()
        return b, t

    def _records(self, table_id: str) -> dict[str, Rec]:
        tc = self._tables.get(table_id)
        if tc is None:
            rows = self._db.execute(
                "SELECT id, seq, created, fields, mtimes FROM records WHERE table_id=? ORDER BY seq", (table_id,)
            ).fetchall()
            loads = json.loads
            recs = {r[0]: Rec(r[0], r[1], r[2], loads(r[3]), r[4]) for r in rows}
            tc = TableCache(self._last_versions.get(table_id, 0), recs)
            self._tables[table_id] = tc
        return tc.records

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._sync()

    def _save_schema(self, base: BaseDef) -> None:
        self._db.execute("UPDATE bases SET schema=? WHERE id=?", (json.dumps(base.to_json()), base.id))

    def _commit(self, touched_tables: set[str], schema_base: str | None = None) -> None:
        scopes = set(touched_tables)
        if schema_base:
            scopes.add("schema:" + schema_base)
        self.webhooks.on_commit()  # payloads for this write, in its transaction
        new = self._bump(scopes)
        self._db.execute("COMMIT")
        for scope, v in new.items():
            if scope.startswith("schema:"):
                self._base_versions[scope[7:]] = v
            elif scope in self._tables:
                self._tables[scope].version = v

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        # the in-memory copies may hold half-applied changes: drop them
        self._tables.clear()
        self._bases.clear()

    def _write(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self._begin()
            try:
                return fn()
            except BaseException:
                self._rollback()
                raise

    def _read(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self._sync()
            return fn()

    # ------------------------------------------------------------------ bases and schema
    def create_base(self, spec: dict[str, Any], base_id: str | None = None, *, seed: int | None = None) -> BaseDef:
        base_id = base_id or new_id("app", self._rng)
        # ids derive from the seed *and* the base: two bases built from one spec never share table ids
        rng = random.Random(f"{seed}:{base_id}") if seed is not None else self._rng
        return self.insert_base(build_base(spec, base_id, rng))

    def insert_base(self, base: BaseDef, *, info: dict[str, Any] | None = None) -> BaseDef:
        """Store a ready BaseDef (ids kept: `sandbox load`, `POST /v0/meta/bases`); ValueError when its id or
        a table id is taken. ``info``: what `GET /v0/meta/bases/{id}` shows besides the schema (workspace…)."""

        def op() -> BaseDef:
            if self._db.execute("SELECT 1 FROM bases WHERE id=?", (base.id,)).fetchone():
                raise ValueError(f"base {base.id} exists")
            taken = {t.id for b in (self._base(i) for i in self.base_ids()) for t in b.tables}
            if taken & {t.id for t in base.tables}:
                raise IdsTaken("table ids collide with another base")
            pos = self._db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM bases").fetchone()[0]
            self._db.execute(
                "INSERT INTO bases VALUES (?, ?, ?, ?)", (base.id, base.name, json.dumps(base.to_json()), pos)
            )
            for t in base.tables:
                self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, 0, 0)", (t.id,))
            if info is not None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("baseinfo:" + base.id, json.dumps(info)))
            self._commit({t.id for t in base.tables}, base.id)
            return base

        return self._write(op)

    def base_info(self, base_id: str) -> dict[str, Any]:
        """What `insert_base(info=…)` kept for the base ({} for bases made otherwise)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", ("baseinfo:" + base_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def alter_schema(self, base_id: str, fn: Callable[[BaseDef, random.Random], Any]) -> Any:
        """Run a metadata write: ``fn`` changes the base's BaseDef in place (or raises ApiError, which undoes
        it); new tables get their counters. Used by `meta.py`."""

        def op() -> Any:
            b = self._base(base_id)
            before = {t.id for t in b.tables}
            out = fn(b, self._rng)
            for t in b.tables:
                t.reindex()
                if t.id not in before:
                    self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, 0, 0)", (t.id,))
            self._db.execute("UPDATE bases SET name=?, schema=? WHERE id=?", (b.name, json.dumps(b.to_json()), b.id))
            self._commit({t.id for t in b.tables if t.id not in before}, base_id)
            return out

        return self._write(op)

    def drop_base(self, base_id: str) -> None:
        def op() -> None:
            b = self._base(base_id)
            self._db.execute("DELETE FROM records WHERE base_id=?", (base_id,))
            self._db.execute("DELETE FROM comments WHERE base_id=?", (base_id,))
            self._db.execute("DELETE FROM bases WHERE id=?", (base_id,))
            self._db.execute("DELETE FROM meta WHERE key=?", ("baseinfo:" + base_id,))
            for t in b.tables:
                self._db.execute("DELETE FROM counters WHERE table_id=?", (t.id,))
                self._tables.pop(t.id, None)  # a base loaded later with the same ids must not see these
            self._commit({t.id for t in b.tables}, base_id)
            self._bases.pop(base_id, None)

        self._write(op)

    def reset(self) -> None:
        """Delete every base, record and attachment."""

        def op() -> None:
            ids = [r[0] for r in self._db.execute("SELECT scope FROM versions")]
            for table in ("records", "bases", "counters", "blobs", "comments"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key LIKE 'baseinfo:%'")
            self._commit(set(ids))
            self._tables.clear()
            self._bases.clear()

        self._write(op)

    def base_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM bases ORDER BY position")]

    def has_base(self, base_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM bases WHERE id=?", (base_id,)).fetchone() is not None

    def list_bases(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, name FROM bases ORDER BY position").fetchall()
        return [{"id": r[0], "name": r[1], "permissionLevel": "create"} for r in rows]

    def base_schema(self, base_id: str, include_visible: bool = False) -> dict[str, Any]:
        return self._read(lambda: self._base(base_id).to_meta(include_visible))

    def base_def(self, base_id: str) -> BaseDef:
        return self._read(lambda: self._base(base_id))

    def count(self, base_id: str, table: str) -> int:
        def op() -> int:
            _, t = self._table(base_id, table)
            return len(self._records(t.id))

        return self._read(op)

    # ------------------------------------------------------------------ formula support
    def _converters(self, base: BaseDef, table: TableDef) -> dict[str, Callable[[Rec], Any]]:
        conv: dict[str, Callable[[Rec], Any]] = {}
        for f in table.fields:
            conv[f.id] = self._converter(base, table, f)
        return conv

    def _display(self, base: BaseDef, table_id: str) -> Callable[[str], Any]:
        t = base.table_by_id(table_id)
        prim = t.primary
        recs = self._records(table_id)
        if prim.type in computed.EVALUATED:  # a formula primary field (common in real bases)
            return computed.display(self, base, t, prim, recs)

        def show(rid: str) -> Any:
            r = recs.get(rid)
            if r is None:
                return None
            v = (
                formula_value(prim, r.fields.get(prim.id))
                if prim.type not in ("createdTime", "autoNumber")
                else (r.created if prim.type == "createdTime" else r.fields.get(prim.id))
            )
            if isinstance(v, datetime):
                return format_instant(v)
            return v if isinstance(v, str) else ("" if v is None else _fmt_num(v))

        return show

    def _converter(self, base: BaseDef, table: TableDef, f: FieldDef) -> Callable[[Rec], Any]:
        fid = f.id
        if f.type in computed.EVALUATED:
            return computed.converter(self, base, table, f)
        if f.type == "multipleRecordLinks":
            show = self._display(base, f.options["linkedTableId"])  # type: ignore[index]
            return lambda r: [show(x) for x in r.fields.get(fid, ())] or None
        if f.type == "multipleLookupValues":
            opts = f.options or {}
            link = table.field_by_id(opts["recordLinkFieldId"])
            other = base.table_by_id(link.options["linkedTableId"])  # type: ignore[index]
            target = other.field_by_id(opts["fieldIdInLinkedTable"])
            inner = self._converter(base, other, target)
            orecs = self._records(other.id)
            lid = link.id

            def lookup(r: Rec) -> Any:
                out: list[Any] = []
                for x in r.fields.get(lid, ()):
                    o = orecs.get(x)
                    if o is None:
                        continue
                    v = inner(o)
                    if isinstance(v, list):
                        out.extend(v)
                    elif v is not None and v is not False:
                        out.append(v)
                return out or None

            return lookup
        if f.type == "createdTime":
            return lambda r: parse_instant(r.created)
        if f.type == "lastModifiedTime":
            refs = (f.options or {}).get("referencedFieldIds") or None

            def lm(r: Rec) -> Any:
                vals = [r.mtimes[k] for k in refs if k in r.mtimes] if refs else list(r.mtimes.values())
                return parse_instant(max(vals)) if vals else None

            return lm
        if f.type == "checkbox":
            return lambda r: True if r.fields.get(fid) else None  # unchecked reads as blank
        if f.type in ("date", "dateTime", "multipleAttachments", "multipleSelects"):
            return lambda r: formula_value(f, r.fields.get(fid))
        return lambda r: r.fields.get(fid)

    def _compile(self, base: BaseDef, table: TableDef, text: str) -> Any:
        from .formula import FormulaError, compile_formula

        key = (base.id, table.id, self._base_versions.get(base.id), text)
        hit = self._formulas.get(key)
        if hit is not None:
            self._formulas.move_to_end(key)
            return hit

        def resolve(name: str) -> str:
            f = table.field(name)
            if f is None:
                raise KeyError(name)
            return f.id

        try:
            compiled = compile_formula(text, resolve)
        except FormulaError as e:
            raise ApiError(
                422, "INVALID_FILTER_BY_FORMULA", f"The formula for filtering records is invalid: {e.message}"
            ) from None
        self._formulas[key] = compiled
        if len(self._formulas) > 256:
            self._formulas.popitem(last=False)
        return compiled

    def _filter(self, base: BaseDef, table: TableDef, recs: Iterable[Rec], text: str) -> list[Rec]:
        compiled = self._compile(base, table, text)
        ctx = RecordContext(self._converters(base, table), clock.now())
        matches = compiled.matches
        return [r for r in recs if matches(ctx.bind(r))]

    # ------------------------------------------------------------------ reading
    def _sort_key(self, base: BaseDef, table: TableDef, f: FieldDef) -> Callable[[Rec], Any]:
        fid = f.id
        if f.type == "singleSelect":
            order = {n: i for i, n in enumerate(f.choice_names())}
            return lambda r: (1, order.get(r.fields[fid], 1 << 30)) if fid in r.fields else (0, 0)
        if f.type in ("number", "percent", "currency", "duration", "rating", "autoNumber"):
            return lambda r: (1, r.fields[fid]) if fid in r.fields else (0, 0)
        if f.type == "checkbox":
            return lambda r: (1 if r.fields.get(fid) else 0,)
        if f.type == "createdTime":
            return lambda r: (1, r.created)
        if f.type in computed.EVALUATED:
            return computed.sort_key(self, base, table, f)
        conv = self._converter(base, table, f)

        def key(r: Rec) -> Any:
            v = conv(r)
            if v is None or v == "" or v == []:
                return (0, "")
            if isinstance(v, datetime):
                return (1, v.timestamp())
            if isinstance(v, list):
                v = ", ".join("" if x is None else (x if isinstance(x, str) else _fmt_num(x)) for x in v)
            return (1, v.casefold() if isinstance(v, str) else str(v))

        return key

    def _ordered(self, base: BaseDef, table: TableDef, recs: list[Rec], sort: list[tuple[str, str]]) -> list[Rec]:
        out = list(recs)
        for fid, direction in reversed(sort):
            f = table.field_by_id(fid)
            out.sort(key=self._sort_key(base, table, f), reverse=direction == "desc")
        return out

    def _resolve_fields(self, table: TableDef, names: list[str]) -> list[FieldDef]:
        out = []
        for n in names:
            f = table.field(n)
            if f is None:
                raise ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{n}"')
            out.append(f)
        return out

    def list_records(self, base_id: str, table: str, p: ListParams, *, url_base: str = "") -> dict[str, Any]:
        def op() -> dict[str, Any]:
            b, t = self._table(base_id, table)
            if not 1 <= p.page_size <= MAX_PAGE_SIZE:
                raise invalid_request()
            if p.max_records is not None and p.max_records < 0:
                raise invalid_request()
            if p.cell_format not in ("json", "string"):
                raise invalid_request()
            if p.cell_format == "string" and not (p.time_zone and p.user_locale):
                raise invalid_request("The cellFormat parameter of 'string' requires timeZone and userLocale")
            sel = self._resolve_fields(t, p.fields) if p.fields is not None else None
            sort = []
            for name, direction in p.sort or []:
                f = t.field(name)
                if f is None:
                    raise ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')
                if direction not in ("asc", "desc"):
                    raise invalid_request()
                sort.append((f.id, direction))
            view = None
            if p.view is not None:
                view = t.view(p.view)
                if view is None:
                    raise ApiError(422, "VIEW_NAME_NOT_FOUND", f"View {p.view} not found")
            if p.formula:
                self._compile(b, t, p.formula)  # a bad formula is an error even on later pages
            signature = (t.id, p.formula or "", tuple(sort), view.id if view else None, p.max_records)
            if p.offset:
                ids, start = self._resume(p.offset, signature)
            else:
                recs: list[Rec] = list(self._records(t.id).values())
                if view is not None and view.filter:
                    recs = self._filter(b, t, recs, view.filter)
                if p.formula:
                    recs = self._filter(b, t, recs, p.formula)
                order = sort or (view.sort if view is not None else [])
                if order:
                    recs = self._ordered(b, t, recs, order)
                if p.max_records:
                    recs = recs[: p.max_records]
                ids = [r.id for r in recs]
                start = 0
            records = self._records(t.id)
            page: list[dict[str, Any]] = []
            pos = start
            while pos < len(ids) and len(page) < p.page_size:
                r = records.get(ids[pos])
                pos += 1
                if r is not None:
                    page.append(self._record_json(b, t, r, sel, p, url_base))
            out: dict[str, Any] = {"records": page}
            if pos < len(ids):
                out["offset"] = self._save_iterator(t.id, signature, ids, pos)
            return out

        return self._read(op)

    def _save_iterator(self, table_id: str, signature: tuple[Any, ...], ids: list[str], pos: int) -> str:
        now = time.monotonic()
        # reuse the iterator that served this page when paging onwards
        for itr_id, itr in self._iterators.items():
            if itr.ids is ids:
                token = f"{itr_id}/{ids[pos]}"
                itr.positions[token] = pos
                itr.expires = now + self.iterator_ttl_s
                return token
        itr_id = new_id("itr", self._rng)
        token = f"{itr_id}/{ids[pos]}"
        self._iterators[itr_id] = _Iterator(table_id, signature, ids, now + self.iterator_ttl_s, {token: pos})
        while len(self._iterators) > 512:
            self._iterators.popitem(last=False)
        return token

    def _resume(self, token: str, signature: tuple[Any, ...]) -> tuple[list[str], int]:
        itr_id, _, rec_id = token.partition("/")
        if not (is_id(itr_id, "itr") and is_id(rec_id, "rec")):
            raise ApiError(422, "INVALID_OFFSET_VALUE", f"The value of offset {token} is invalid")
        itr = self._iterators.get(itr_id)
        now = time.monotonic()
        if itr is None or itr.expires < now or itr.signature != signature or token not in itr.positions:
            self._iterators.pop(itr_id, None)
            raise ApiError(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")
        itr.expires = now + self.iterator_ttl_s
        self._iterators.move_to_end(itr_id)
        return itr.ids, itr.positions[token]

    def expire_iterators(self) -> None:
        """Forget every list iterator (tests use it to simulate Airtable's timeout)."""
        with self._lock:
            self._iterators.clear()

    def get_record(
        self, base_id: str, table: str, record_id: str, p: ListParams | None = None, *, url_base: str = ""
    ) -> dict[str, Any]:
        p = p or ListParams()

        def op() -> dict[str, Any]:
            b, t = self._table(base_id, table)
            r = self._records(t.id).get(record_id)
            if r is None:
                # Airtable answers a record of another table of the same base (record ids are unique in a
                # base; airtable.js#117, pyairtable#375): reads only, writes stay bound to the table
                row = self._db.execute(
                    "SELECT table_id FROM records WHERE id=? AND base_id=?", (record_id, base_id)
                ).fetchone()
                other = b.table(row[0]) if row else None
                r = self._records(other.id).get(record_id) if other is not None else None
                if other is None or r is None:
                    raise not_found()
                t = other
            return self._record_json(b, t, r, None, p, url_base)

        return self._read(op)

    def _cell_json(self, b: BaseDef, t: TableDef, f: FieldDef, r: Rec, url_base: str) -> Any:
        ft = f.type
        if ft == "createdTime":
            return r.created
        if ft == "lastModifiedTime":
            refs = (f.options or {}).get("referencedFieldIds") or None
            vals = [r.mtimes[k] for k in refs if k in r.mtimes] if refs else list(r.mtimes.values())
            return max(vals) if vals else None
        if ft == "multipleLookupValues":
            opts = f.options or {}
            link = t.field_by_id(opts["recordLinkFieldId"])
            other = b.table_by_id(link.options["linkedTableId"])  # type: ignore[index]
            target = other.field_by_id(opts["fieldIdInLinkedTable"])
            orecs = self._records(other.id)
            out: list[Any] = []
            for x in r.fields.get(link.id, ()):
                o = orecs.get(x)
                if o is None:
                    continue
                v = self._cell_json(b, other, target, o, url_base)
                if isinstance(v, list):
                    out.extend(v)
                elif v is not None:
                    out.append(v)
            return out or None
        v = r.fields.get(f.id)
        if v is None:  # formula, rollup, count, button are never stored: plain cells pay one test
            return computed.cell_json(self, b, t, f, r) if ft in computed.EVALUATED else None
        if ft == "multipleAttachments" and v:
            return [self._attachment_json(a, url_base) for a in v]
        return v

    def _record_json(
        self, b: BaseDef, t: TableDef, r: Rec, sel: list[FieldDef] | None, p: ListParams, url_base: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        tz = ZoneInfo(p.time_zone) if p.cell_format == "string" and p.time_zone else None
        for f in sel if sel is not None else t.fields:
            v = self._cell_json(b, t, f, r, url_base)
            if v is None or v == "" or v == [] or v is False:
                continue
            if f.type == "multipleRecordLinks" and p.cell_format == "string":
                show = self._display(b, f.options["linkedTableId"])  # type: ignore[index]
                v = ", ".join(str(show(x)) for x in v)
            elif tz is not None:
                v = string_cell(f, v, tz, p.user_locale)
                if v is None:
                    continue
            fields[f.id if p.by_field_id else f.name] = v
        out: dict[str, Any] = {"id": r.id, "createdTime": r.created, "fields": fields}
        if p.comment_count:
            out["commentCount"] = comment_rows.count(self._db, r.id)
        return out

    # ------------------------------------------------------------------ attachments
    def _sign(self, att_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{att_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _attachment_json(self, a: dict[str, Any], url_base: str) -> dict[str, Any]:
        out = {"id": a["id"], "url": a.get("url", ""), "filename": a.get("filename", "")}
        if "size" in a:  # absent while "Airtable downloads" a URL the sandbox may not reach (localfetch.py)
            out["size"] = a["size"]
            out["type"] = a.get("type", "application/octet-stream")
        if a.get("sha256"):
            expires = int(clock.timestamp()) + ATTACHMENT_URL_TTL_S
            out["url"] = (
                f"{url_base}/_sandbox/attachments/{a['id']}/{quote(a.get('filename') or 'file')}"
                f"?expires={expires}&sig={self._sign(a['id'], expires)}"
            )
            out.update(image_json(a, out["url"]))  # images.py: width/height/thumbnails
        return out

    def _put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (digest, data))
        return digest

    def _find_attachment(self, att_id: str) -> dict[str, Any] | None:
        for (fields,) in self._db.execute("SELECT fields FROM records WHERE instr(fields, ?) > 0", (att_id,)):
            for v in json.loads(fields).values():
                if isinstance(v, list):
                    for a in v:
                        if isinstance(a, dict) and a.get("id") == att_id:
                            return a
        return None

    def download_attachment(self, att_id: str, expires: str, sig: str) -> tuple[str, bytes, str]:
        """(content type, bytes, filename) for a signed URL; ApiError 410/404 when expired or unknown."""
        with self._lock:
            try:
                exp = int(expires)
            except ValueError:
                raise not_found() from None
            if not hmac.compare_digest(self._sign(att_id, exp), sig):
                raise not_found()
            if exp < clock.timestamp():
                raise ApiError(410, "EXPIRED", "This attachment URL has expired")
            a = self._find_attachment(att_id)
            if a is None or not a.get("sha256"):
                raise not_found()
            row = self._db.execute("SELECT data FROM blobs WHERE sha256=?", (a["sha256"],)).fetchone()
            if row is None:
                raise not_found()
            return a.get("type", "application/octet-stream"), bytes(row[0]), a.get("filename", "file")

    def _attachment_from_bytes(self, data: bytes, filename: str, content_type: str) -> dict[str, Any]:
        att: dict[str, Any] = {
            "id": new_id("att", self._rng),
            "filename": filename,
            "type": content_type,
            "size": len(data),
            "sha256": self._put_blob(data),
        }
        att.update(image_dimensions(data, content_type))  # images.py: width/height of images
        return att

    def upload_attachment(
        self,
        base_id: str,
        record_id: str,
        field_name: str,
        *,
        content_type: str,
        file_b64: str,
        filename: str,
        url_base: str = "",
    ) -> dict[str, Any]:
        try:
            data = base64.b64decode("".join(file_b64.split()), validate=True)  # MIME base64 has newlines
        except (ValueError, TypeError):
            raise ApiError(422, "INVALID_ATTACHMENT_OBJECT", "Could not decode the base64 file") from None
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "REQUEST_TOO_LARGE", "Attachment is larger than 5 MB")

        def op() -> dict[str, Any]:
            b = self._base(base_id)
            for t in b.tables:
                recs = self._records(t.id)
                if record_id in recs:
                    break
            else:
                raise not_found()
            f = t.field(field_name)
            if f is None:
                raise ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{field_name}"')
            if f.type != "multipleAttachments":
                raise ApiError(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{f.name}" cannot accept the provided value')
            r = recs[record_id]
            att = self._attachment_from_bytes(data, filename, content_type)
            r.fields[f.id] = [*r.fields.get(f.id, []), att]
            r.mtimes[f.id] = _now_iso()
            self._persist([r], t, b)
            self._commit({t.id})
            return {
                "id": r.id,
                "createdTime": r.created,
                "fields": {f.id: [self._attachment_json(a, url_base) for a in r.fields[f.id]]},
            }

        return self._write(op)

    def attachment_bytes(self, sha256: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM blobs WHERE sha256=?", (sha256,)).fetchone()
            return bytes(row[0]) if row else None

    # ------------------------------------------------------------------ writing
    def _persist(self, recs: Iterable[Rec], t: TableDef, b: BaseDef) -> None:
        self._db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "fields=excluded.fields, mtimes=excluded.mtimes",
            [
                (r.id, b.id, t.id, r.seq, r.created, json.dumps(r.fields, ensure_ascii=False), r.mtimes_json())
                for r in recs
            ],
        )

    class _Ctx:
        """WriteContext over the store for one request."""

        def __init__(self, store: SandboxStore, base: BaseDef, typecast: bool):
            self.store = store
            self.base = base
            self.schema_changed = False
            self.created: dict[str, list[Rec]] = {}

        def link_target_exists(self, table_id: str, record_id: str) -> bool:
            return record_id in self.store._records(table_id)

        def find_by_primary(self, table_id: str, text: str) -> str | None:
            prim = self.base.table_by_id(table_id).primary
            for r in self.store._records(table_id).values():
                if r.fields.get(prim.id) == text:
                    return r.id
            return None

        def create_by_primary(self, table_id: str, text: str) -> str:
            t = self.base.table_by_id(table_id)
            r = self.store._new_rec(t, {t.primary_field_id: text}, _now_iso())
            self.created.setdefault(table_id, []).append(r)
            return r.id

        def attachment_from_url(self, url: str, filename: str | None) -> dict[str, Any]:
            return self.store._attachment_from_url(url, filename)

        def add_choice(self, field: FieldDef, name: str) -> None:
            choices = (field.options or {}).setdefault("choices", [])
            if name not in [c["name"] for c in choices]:
                choices.append({"id": new_id("sel", self.store._rng), "name": name, "color": "grayLight2"})
                self.schema_changed = True

    def _attachment_from_url(self, url: str, filename: str | None) -> dict[str, Any]:
        """New attachment from a URL: our own signed URLs, data: URLs and loopback URLs are copied; others kept
        by URL."""
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(url)
        name = filename or unquote(parts.path.rsplit("/", 1)[-1]) or "file"
        if parts.scheme == "data":
            header, _, payload = parts.path.partition(",")
            ctype = header.split(";")[0] or "application/octet-stream"
            data = base64.b64decode(payload) if header.endswith(";base64") else unquote(payload).encode()
            return self._attachment_from_bytes(data, filename or "file", ctype)
        if "/_sandbox/attachments/" in parts.path:
            seg = parts.path.split("/_sandbox/attachments/", 1)[1].split("/")
            q = parse_qs(parts.query)
            try:
                ctype, data, fname = self.download_attachment(seg[0], q["expires"][0], q["sig"][0])
                return self._attachment_from_bytes(data, filename or fname, ctype)
            except (ApiError, KeyError, IndexError):
                pass
        fetched = fetch_loopback(url, MAX_UPLOAD_BYTES)  # localfetch.py: loopback hosts only
        if fetched is not None:
            return self._attachment_from_bytes(fetched[0], name, attachment_type(name, fetched))
        # What Airtable answers before its download finishes: the URL, a filename and an id.
        return {"id": new_id("att", self._rng), "url": url, "filename": name}

    def _new_rec(self, t: TableDef, fields: dict[str, Any], created: str) -> Rec:
        row = self._db.execute(
            "UPDATE counters SET seq = seq + 1, auto = auto + 1 WHERE table_id=? RETURNING seq, auto", (t.id,)
        ).fetchone()
        seq, auto = row
        for f in t.fields:
            if f.type == "autoNumber":
                fields[f.id] = auto
        computed.stamp_user(t, fields, self.user_id, created=True)
        r = Rec(new_id("rec", self._rng), seq, created, fields, {k: created for k in fields})
        self._records(t.id)[r.id] = r
        return r

    def _check_batch(self, items: Any, verb: str) -> list[Any]:
        if not isinstance(items, list):
            raise invalid_request()
        if len(items) > MAX_RECORDS_PER_REQUEST:
            raise ApiError(
                422,
                "INVALID_RECORDS",
                f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be {verb} per request "
                f"but you have provided {len(items)}.",
            )
        if not items:
            raise ApiError(422, "INVALID_RECORDS", f"At least one record must be {verb}.")
        return items

    def _validate(self, t: TableDef, values: Any, ctx: _Ctx, typecast: bool, current: Rec | None) -> dict[str, Any]:
        """Field names → {field id: stored value or EMPTY}; raises ApiError on the first bad cell."""
        if not isinstance(values, dict):
            raise ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body')
        out: dict[str, Any] = {}
        for name, value in values.items():
            f = t.field(name)
            if f is None:
                raise ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')
            try:
                out[f.id] = validate_cell(
                    f, value, typecast=typecast, ctx=ctx, current=current.fields.get(f.id) if current else None
                )
            except CellError as e:
                raise ApiError(422, e.type, e.message) from None
        return out

    def _apply(
        self, b: BaseDef, t: TableDef, r: Rec, cells: dict[str, Any], replace: bool, now: str, touched: set[str]
    ) -> None:
        """Set cells on a record (PUT clears the rest) and keep inverse links in sync."""
        changed = False
        if replace:
            for f in t.fields:
                if not f.computed and f.id not in cells and f.id in r.fields:
                    cells[f.id] = EMPTY
        for fid, value in cells.items():
            old = r.fields.get(fid)
            new = None if value is EMPTY else value
            if old == new:
                continue
            f = t.field_by_id(fid)
            if f.type == "multipleRecordLinks":
                self._relink(b, f, r.id, old or [], new or [], now, touched)
            if new is None:
                r.fields.pop(fid, None)
            else:
                r.fields[fid] = new
            r.mtimes[fid] = now
            changed = True
        if changed:
            computed.stamp_user(t, r.fields, self.user_id, created=False)

    def _relink(
        self, b: BaseDef, f: FieldDef, rid: str, old: list[str], new: list[str], now: str, touched: set[str]
    ) -> None:
        opts = f.options or {}
        inv_id = opts.get("inverseLinkFieldId")
        if not inv_id:
            return
        other = b.table_by_id(opts["linkedTableId"])
        orecs = self._records(other.id)
        changed = []
        for x in set(old) - set(new):
            o = orecs.get(x)
            if o is not None and rid in o.fields.get(inv_id, []):
                rest = [y for y in o.fields[inv_id] if y != rid]
                if rest:
                    o.fields[inv_id] = rest
                else:
                    del o.fields[inv_id]
                o.mtimes[inv_id] = now
                changed.append(o)
        for x in new:
            o = orecs.get(x)
            if o is not None and rid not in o.fields.get(inv_id, []):
                o.fields[inv_id] = [*o.fields.get(inv_id, []), rid]
                o.mtimes[inv_id] = now
                changed.append(o)
        if changed:
            self._persist(changed, other, b)
            touched.add(other.id)

    def _finish_write(self, b: BaseDef, ctx: _Ctx, touched: set[str]) -> None:
        for table_id, recs in ctx.created.items():
            self._persist(recs, b.table_by_id(table_id), b)
            touched.add(table_id)
        if ctx.schema_changed:
            self._save_schema(b)
        self._commit(touched, b.id if ctx.schema_changed else None)

    def create_records(
        self,
        base_id: str,
        table: str,
        items: list[dict[str, Any]],
        *,
        typecast: bool = False,
        url_base: str = "",
        by_field_id: bool = False,
    ) -> list[dict[str, Any]]:
        """Create up to 10 records; `items` are the `fields` dicts."""

        def op() -> list[dict[str, Any]]:
            b, t = self._table(base_id, table)
            self._check_batch(items, "created")
            ctx = self._Ctx(self, b, typecast)
            staged = [self._validate(t, fields, ctx, typecast, None) for fields in items]
            now = _now_iso()
            touched = {t.id}
            out = []
            for cells in staged:
                r = self._new_rec(t, {}, now)
                self._apply(b, t, r, cells, False, now, touched)
                out.append(r)
            self._persist(out, t, b)
            self._finish_write(b, ctx, touched)
            p = ListParams(by_field_id=by_field_id)
            return [self._record_json(b, t, r, None, p, url_base) for r in out]

        return self._write(op)

    def update_records(
        self,
        base_id: str,
        table: str,
        items: list[tuple[str, dict[str, Any]]],
        *,
        replace: bool = False,
        typecast: bool = False,
        url_base: str = "",
        by_field_id: bool = False,
        single: bool = False,
    ) -> list[dict[str, Any]]:
        def op() -> list[dict[str, Any]]:
            b, t = self._table(base_id, table)
            self._check_batch(items, "updated")
            recs = self._records(t.id)
            ctx = self._Ctx(self, b, typecast)
            staged = []
            for rid, fields in items:
                r = recs.get(rid) if isinstance(rid, str) else None
                if r is None:
                    if single:
                        raise not_found()
                    raise ApiError(422, "ROW_DOES_NOT_EXIST", f"Record ID {rid} does not exist in this table")
                staged.append((r, self._validate(t, fields, ctx, typecast, r)))
            now = _now_iso()
            touched = {t.id}
            for r, cells in staged:
                self._apply(b, t, r, cells, replace, now, touched)
            self._persist([r for r, _ in staged], t, b)
            self._finish_write(b, ctx, touched)
            p = ListParams(by_field_id=by_field_id)
            return [self._record_json(b, t, r, None, p, url_base) for r, _ in staged]

        return self._write(op)

    def upsert_records(
        self,
        base_id: str,
        table: str,
        items: list[dict[str, Any]],
        merge_on: object,
        *,
        replace: bool = False,
        typecast: bool = False,
        url_base: str = "",
        by_field_id: bool = False,
    ) -> dict[str, Any]:
        """performUpsert: items are {"fields": ..} or {"id": .., "fields": ..}."""

        def op() -> dict[str, Any]:
            b, t = self._table(base_id, table)
            self._check_batch(items, "upserted")
            if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3:
                raise invalid_request("fieldsToMergeOn must list between 1 and 3 fields")
            keys = self._resolve_fields(t, [str(m) for m in merge_on])
            for k in keys:
                if k.type not in MERGE_ON_TYPES:
                    raise invalid_request(f'Field "{k.name}" cannot be used in fieldsToMergeOn')
            recs = self._records(t.id)
            ctx = self._Ctx(self, b, typecast)
            plan: list[tuple[Rec | None, dict[str, Any]]] = []
            for item in items:
                if not isinstance(item, dict):
                    raise invalid_request()
                cells = self._validate(t, item.get("fields"), ctx, typecast, None)
                if "id" in item:
                    r = recs.get(item["id"])
                    if r is None:
                        raise ApiError(
                            422, "ROW_DOES_NOT_EXIST", f"Record ID {item['id']} does not exist in this table"
                        )
                    plan.append((r, cells))
                    continue
                want = []
                for k in keys:
                    if k.id not in cells:
                        raise invalid_request(f'Missing value for merge field "{k.name}"')
                    want.append((k.id, None if cells[k.id] is EMPTY else cells[k.id]))
                found = [r for r in recs.values() if all(r.fields.get(fid) == v for fid, v in want)]
                if len(found) > 1:
                    raise ApiError(
                        422,
                        "INVALID_VALUE_FOR_COLUMN",
                        "Cannot update more than one record with the same fieldsToMergeOn values",
                    )
                plan.append((found[0] if found else None, cells))
            now = _now_iso()
            touched = {t.id}
            done, created, updated = [], [], []
            for r, cells in plan:
                if r is None:
                    r = self._new_rec(t, {}, now)
                    self._apply(b, t, r, cells, False, now, touched)
                    created.append(r.id)
                else:
                    self._apply(b, t, r, cells, replace, now, touched)
                    updated.append(r.id)
                done.append(r)
            self._persist(done, t, b)
            self._finish_write(b, ctx, touched)
            p = ListParams(by_field_id=by_field_id)
            return {
                "records": [self._record_json(b, t, r, None, p, url_base) for r in done],
                "createdRecords": created,
                "updatedRecords": updated,
            }

        return self._write(op)

    def delete_records(self, base_id: str, table: str, ids: list[str], *, single: bool = False) -> list[dict[str, Any]]:
        def op() -> list[dict[str, Any]]:
            b, t = self._table(base_id, table)
            self._check_batch(ids, "deleted")
            recs = self._records(t.id)
            for rid in ids:
                if not isinstance(rid, str) or rid not in recs:
                    if single:
                        raise not_found()
                    raise (
                        ApiError(404, "NOT_FOUND", bare=True)
                        if not is_id(rid, "rec")
                        else ApiError(422, "ROW_DOES_NOT_EXIST", f"Record ID {rid} does not exist in this table")
                    )
            now = _now_iso()
            touched = {t.id}
            for rid in dict.fromkeys(ids):
                r = recs.pop(rid)
                for f in t.fields:
                    if f.type == "multipleRecordLinks" and r.fields.get(f.id):
                        self._relink(b, f, rid, r.fields[f.id], [], now, touched)
                self._db.execute("DELETE FROM records WHERE id=?", (rid,))
            comment_rows.delete_for_records(self._db, list(dict.fromkeys(ids)))
            self._commit(touched)
            return [{"id": rid, "deleted": True} for rid in ids]

        return self._write(op)

    # ------------------------------------------------------------------ loading a copy (sandbox load --from-backup)
    def insert_records(
        self,
        base_id: str,
        rows: dict[str, list[tuple[str, str, dict[str, Any], dict[str, str]]]],
        blobs: Iterable[bytes] = (),
    ) -> dict[str, int]:
        """Insert records exactly as given (ids, created times, cells by field id in the store's form,
        per-field modification times) and attachment blobs; table id → count. Both sides of a link must
        be given (a copy of a real base has them): nothing is relinked."""

        def op() -> dict[str, int]:
            b = self._base(base_id)
            ids = json.dumps([r[0] for items in rows.values() for r in items])
            clash = self._db.execute(
                "SELECT r.id, r.base_id FROM records r JOIN json_each(?) j ON r.id = j.value LIMIT 1", (ids,)
            ).fetchone()
            if clash:  # record ids are unique across the file, as in Airtable
                raise ValueError(f"record {clash[0]} already exists in base {clash[1]}")
            for data in blobs:
                self._put_blob(data)
            out = {}
            for table_id, items in rows.items():
                t = b.table_by_id(table_id)
                seq0, auto0 = self._db.execute("SELECT seq, auto FROM counters WHERE table_id=?", (t.id,)).fetchone()
                autos = [f.id for f in t.fields if f.type == "autoNumber"]
                recs = [Rec(rid, seq0 + i + 1, created, cells, mt) for i, (rid, created, cells, mt) in enumerate(items)]
                top = max([auto0, *(r.fields.get(a, 0) for r in recs for a in autos)])
                self._db.execute(
                    "UPDATE counters SET seq=?, auto=? WHERE table_id=?", (seq0 + len(recs), int(top), t.id)
                )
                self._persist(recs, t, b)
                self._tables.pop(t.id, None)  # written behind the decoded copy: reload it on next read
                out[table_id] = len(recs)
            self._commit(set(rows))
            return out

        return self._write(op)

    # ------------------------------------------------------------------ bulk load (seeding)
    def bulk_load(
        self,
        base_id: str,
        tables: dict[str, list[tuple[str, str, str, dict[str, Any]]]],
        progress: Reporter | None = None,
    ) -> dict[str, dict[str, str]]:
        """Insert many records without the per-request limits (seeding only).

        `tables`: table name → list of (key, created ISO, modified ISO, fields by name) where link values
        are lists of keys and attachment values are lists of (filename, content type, bytes).
        Returns table name → key → record id. Inverse links are filled in. ``progress``: one task a
        table (records staged, attachment bytes stored), done once the table is written.
        """
        reporter = guard(progress)

        def op() -> dict[str, dict[str, str]]:
            b = self._base(base_id)
            ids: dict[str, dict[str, str]] = {}
            for name, rows in tables.items():
                t = b.table(name)
                if t is None:
                    raise KeyError(name)
                ids[name] = {key: new_id("rec", self._rng) for key, *_ in rows}
            staged: dict[str, list[Rec]] = {}
            tasks: dict[str, Task] = {}
            for name, rows in tables.items():
                t = b.table(name)
                assert t is not None
                task = tasks[t.id] = reporter.task(f"seed {name}", total=len(rows))
                auto_fields = [f.id for f in t.fields if f.type == "autoNumber"]
                seq0, auto0 = self._db.execute("SELECT seq, auto FROM counters WHERE table_id=?", (t.id,)).fetchone()
                out = []
                for i, (key, created, modified, values) in enumerate(rows):
                    cells: dict[str, Any] = {}
                    stored = 0
                    for fname, v in values.items():
                        f = t.field(fname)
                        if f is None:
                            raise KeyError(f"{name}.{fname}")
                        if f.type == "multipleRecordLinks":
                            target = b.table_by_id(f.options["linkedTableId"]).name  # type: ignore[index]
                            v = [ids[target][k] for k in v]
                        elif f.type == "multipleAttachments":
                            v = [self._attachment_from_bytes(data, fn, ct) for fn, ct, data in v]
                            stored += sum(a["size"] for a in v)
                        if v is None or v == "" or v == [] or v is False:
                            continue
                        cells[f.id] = v
                    for fid in auto_fields:
                        cells[fid] = auto0 + i + 1
                    mt = {k: (modified if j % 2 == 0 else created) for j, k in enumerate(cells)}
                    out.append(Rec(ids[name][key], seq0 + i + 1, created, cells, mt))
                    task.advance(1, bytes=stored)
                self._db.execute(
                    "UPDATE counters SET seq=?, auto=? WHERE table_id=?", (seq0 + len(rows), auto0 + len(rows), t.id)
                )
                staged[t.id] = out
            # inverse links
            by_id = {r.id: r for recs in staged.values() for r in recs}
            for t in b.tables:
                for f in t.fields:
                    if f.type != "multipleRecordLinks" or not (f.options or {}).get("inverseLinkFieldId"):
                        continue
                    inv = f.options["inverseLinkFieldId"]  # type: ignore[index]
                    for r in staged.get(t.id, []):
                        for x in r.fields.get(f.id, []):
                            o = by_id.get(x)
                            if o is not None and r.id not in o.fields.get(inv, []):
                                o.fields.setdefault(inv, []).append(r.id)
                                o.mtimes.setdefault(inv, o.created)
            for table_id, recs in staged.items():
                self._persist(recs, b.table_by_id(table_id), b)
                tasks[table_id].done(f"{len(recs):,} records")
            self._commit(set(staged))
            return ids

        return self._write(op)


def _fmt_num(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def utc_from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
