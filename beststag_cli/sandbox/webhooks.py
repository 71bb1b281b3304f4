"""The sandbox's webhooks API: `/v0/bases/{baseId}/webhooks`, payloads with cursors, and pings.

Shapes follow Airtable's docs (shared/reference/airtable-api.md §9; airtable.com/developers/web/api/
create-a-webhook, list-webhook-payloads, model/webhooks-table-changed, model/webhooks-changed-record)
and pyairtable 3.5.1's strict models (`pyairtable/models/webhook.py`): every payload served here parses.

How changes are captured: SQLite triggers on `records` (insert/update/delete) and on `bases.schema`
append raw before/after rows to `wh_changes` in the writer's own transaction, only for bases that
have a webhook. The store calls `on_commit(store)` just before COMMIT; it folds those rows into one
payload per matching webhook (one base transaction = one payload) and clears them, so payloads are
recorded atomically with the write, whichever process or client made it. Schema changes made by any
code that saves the schema inside a store transaction (typecast select choices, metadata writes) are
diffed the same way; `record_schema_change` is only needed by writers that bypass `bases.schema`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import clock
from .fields import format_instant
from .schema import BaseDef, TableDef, new_id

if TYPE_CHECKING:
    from .store import SandboxStore

MAX_WEBHOOKS_PER_BASE = 10  # create-a-webhook: "The number of webhooks per base is limited to 10"
LIFETIME = timedelta(days=7)  # "will expire and be disabled after 7 days"
#: "After a webhook has expired and been disabled, the webhook's metadata and past payloads can be
#: accessed for an additional 7 days"; payloads themselves are kept 7 days (reference §9)
AFTERLIFE = timedelta(days=7)
PAYLOAD_RETENTION = timedelta(days=7)
MAX_PAGE = 50
DATA_TYPES = ("tableData", "tableFields", "tableMetadata")
CHANGE_TYPES = ("add", "remove", "update")
SOURCES = (
    "client",
    "publicApi",
    "formSubmission",
    "formPageSubmission",
    "automation",
    "system",
    "sync",
    "anonymousUser",
    "unknown",
)
#: who the sandbox says made every write (its whoami user); API writes are source `publicApi`
SANDBOX_USER = {
    "id": "usrSandboxUser000",
    "email": "sandbox@beststag.test",  # main's users.DEFAULT_USER (i18/meta) has these values
    "permissionLevel": "create",
    "name": "Sandbox User",
}
#: set to "1" to let pings reach non-loopback notification URLs (tests run behind a proxy trap)
ANY_HOST_ENV = "BESTSTAG_SANDBOX_WEBHOOK_ANY_HOST"

_SQL = """
CREATE TABLE IF NOT EXISTS wh_hooks (id TEXT PRIMARY KEY, base_id TEXT NOT NULL, position INTEGER NOT NULL,
    secret TEXT NOT NULL, url TEXT, spec TEXT NOT NULL, expires REAL NOT NULL, notify INTEGER NOT NULL,
    next_cursor INTEGER NOT NULL, last_result TEXT, last_success TEXT);
CREATE INDEX IF NOT EXISTS wh_hooks_by_base ON wh_hooks(base_id);
CREATE TABLE IF NOT EXISTS wh_payloads (hook_id TEXT NOT NULL, n INTEGER NOT NULL, ts REAL NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (hook_id, n));
CREATE TABLE IF NOT EXISTS wh_txn (base_id TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wh_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, base_id TEXT NOT NULL,
    kind TEXT NOT NULL, table_id TEXT, rec_id TEXT, created TEXT, old TEXT, new TEXT);
CREATE TRIGGER IF NOT EXISTS wh_rec_ins AFTER INSERT ON records
    WHEN EXISTS (SELECT 1 FROM wh_hooks WHERE base_id = NEW.base_id)
    BEGIN INSERT INTO wh_changes (base_id, kind, table_id, rec_id, created, old, new)
          VALUES (NEW.base_id, 'rec', NEW.table_id, NEW.id, NEW.created, NULL, NEW.fields); END;
CREATE TRIGGER IF NOT EXISTS wh_rec_upd AFTER UPDATE OF fields ON records
    WHEN OLD.fields IS NOT NEW.fields AND EXISTS (SELECT 1 FROM wh_hooks WHERE base_id = NEW.base_id)
    BEGIN INSERT INTO wh_changes (base_id, kind, table_id, rec_id, created, old, new)
          VALUES (NEW.base_id, 'rec', NEW.table_id, NEW.id, NEW.created, OLD.fields, NEW.fields); END;
CREATE TRIGGER IF NOT EXISTS wh_rec_del AFTER DELETE ON records
    WHEN EXISTS (SELECT 1 FROM wh_hooks WHERE base_id = OLD.base_id)
    BEGIN INSERT INTO wh_changes (base_id, kind, table_id, rec_id, created, old, new)
          VALUES (OLD.base_id, 'rec', OLD.table_id, OLD.id, OLD.created, OLD.fields, NULL); END;
CREATE TRIGGER IF NOT EXISTS wh_schema_upd AFTER UPDATE OF schema ON bases
    WHEN OLD.schema IS NOT NEW.schema AND EXISTS (SELECT 1 FROM wh_hooks WHERE base_id = NEW.id)
    BEGIN INSERT INTO wh_changes (base_id, kind, old, new) VALUES (NEW.id, 'schema', OLD.schema, NEW.schema); END;
"""


def install(db: Any, error: Callable[..., Exception], rec: Callable[..., Any]) -> None:
    """Create the webhook tables and capture triggers (idempotent; called when a store opens).

    `error` is the store's ApiError (status, type, message, bare=), `rec` its record class."""
    global _ERROR, _REC
    _ERROR, _REC = error, rec
    db.executescript(_SQL)


#: the store's error class and record class, handed over by `install` (importing store.py from
#: here would make an import cycle: store.py creates the hub)
_ERROR: Callable[..., Exception] = Exception
_REC: Callable[..., Any] = dict


def _api_error(status: int, type_: str, message: str | None = None, *, bare: bool = False) -> Exception:
    return _ERROR(status, type_, message, bare=bare)


def _invalid(message: str) -> Exception:
    # The real type for a bad specification is not documented; the sandbox answers Airtable's
    # generic validation error with a message naming the offending key (docs/sandbox.md: gaps).
    return _api_error(422, "INVALID_REQUEST_UNKNOWN", message)


def _hook_not_found() -> Exception:
    return _api_error(404, "NOT_FOUND", bare=True)


def _iso(ts: float) -> str:
    return format_instant(datetime.fromtimestamp(ts, UTC))


# ---------------------------------------------------------------------- specification


def validate_spec(spec: Any, base: BaseDef) -> dict[str, Any]:
    """Check a `specification` against the documented model and return it (keys as sent)."""
    if not isinstance(spec, dict) or set(spec) != {"options"} or not isinstance(spec["options"], dict):
        raise _invalid("specification must be an object with one key, options")
    opts = spec["options"]
    if set(opts) - {"filters", "includes"} or not isinstance(opts.get("filters"), dict):
        raise _invalid("specification.options must have filters (and optionally includes)")
    f = opts["filters"]
    known = {
        "dataTypes",
        "recordChangeScope",
        "changeTypes",
        "fromSources",
        "sourceOptions",
        "watchDataInFieldIds",
        "watchSchemasOfFieldIds",
    }
    if set(f) - known:
        raise _invalid(f"unknown filters key {sorted(set(f) - known)[0]}")
    dt = f.get("dataTypes")
    if not isinstance(dt, list) or not dt or any(d not in DATA_TYPES for d in dt):
        raise _invalid("filters.dataTypes must list tableData, tableFields and/or tableMetadata")
    for key, allowed in (("changeTypes", CHANGE_TYPES), ("fromSources", SOURCES)):
        v = f.get(key)
        if v is not None and (not isinstance(v, list) or any(x not in allowed for x in v)):
            raise _invalid(f"filters.{key} has an unknown value")
    scope = f.get("recordChangeScope")
    table: TableDef | None = None
    if scope is not None:
        table = next((t for t in base.tables if t.id == scope), None)
        if table is None:  # views as scope are a deliberate gap (docs/sandbox.md)
            raise _invalid("filters.recordChangeScope must be the id of a table of this base")
    for key in ("watchDataInFieldIds", "watchSchemasOfFieldIds"):
        v = f.get(key)
        if v is None:
            continue
        fields = {x.id for t in ([table] if table else base.tables) for x in t.fields}
        if not isinstance(v, list) or any(x not in fields for x in v):
            raise _invalid(f"filters.{key} must list field ids of the scope")
    if "sourceOptions" in f and not isinstance(f["sourceOptions"], dict):
        raise _invalid("filters.sourceOptions must be an object")
    inc = opts.get("includes")
    if inc is not None:
        if not isinstance(inc, dict) or set(inc) - {
            "includeCellValuesInFieldIds",
            "includePreviousCellValues",
            "includePreviousFieldDefinitions",
        }:
            raise _invalid("unknown includes key")
        cv = inc.get("includeCellValuesInFieldIds")
        if cv is not None and cv != "all" and not (isinstance(cv, list) and all(isinstance(x, str) for x in cv)):
            raise _invalid('includes.includeCellValuesInFieldIds must be "all" or a list of field ids')
        for key in ("includePreviousCellValues", "includePreviousFieldDefinitions"):
            if key in inc and not isinstance(inc[key], bool):
                raise _invalid(f"includes.{key} must be a boolean")
    return spec


# ---------------------------------------------------------------------- the hub


class WebhookHub:
    """Webhook state of one store: routes, payload recording and the ping thread."""

    def __init__(self, store: SandboxStore) -> None:
        self.store = store
        #: pings: first retry after this many seconds, doubling; at most `ping_attempts` tries
        self.ping_backoff_s = 1.0
        self.ping_attempts = 5
        self.ping_timeout_s = 5.0
        self._due: list[str] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False

    # ------------------------------------------------------------ housekeeping
    def _now(self) -> float:
        return clock.timestamp()

    def _purge(self) -> None:
        """Drop webhooks past their afterlife and payloads past retention (sandbox clock)."""
        db = self.store._db
        now = self._now()
        dead = [
            r[0] for r in db.execute("SELECT id FROM wh_hooks WHERE expires + ? <= ?", (AFTERLIFE.total_seconds(), now))
        ]
        for hid in dead:
            db.execute("DELETE FROM wh_payloads WHERE hook_id=?", (hid,))
            db.execute("DELETE FROM wh_hooks WHERE id=?", (hid,))
        db.execute("DELETE FROM wh_payloads WHERE ts <= ?", (now - PAYLOAD_RETENTION.total_seconds(),))
        # webhooks of a dropped base (drop_base, reset) go with it
        db.execute("DELETE FROM wh_hooks WHERE base_id NOT IN (SELECT id FROM bases)")
        db.execute("DELETE FROM wh_payloads WHERE hook_id NOT IN (SELECT id FROM wh_hooks)")

    def _txn(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in a store write transaction (webhook tables only: no table versions move)."""
        store = self.store
        with store._lock:
            store._db.execute("BEGIN IMMEDIATE")
            try:
                store._sync()
                self._purge()
                out = fn()
                store._db.execute("COMMIT")
                return out
            except BaseException:
                if store._db.in_transaction:
                    store._db.execute("ROLLBACK")
                raise

    def _row(self, base_id: str, hook_id: str) -> tuple[Any, ...]:
        row = self.store._db.execute(
            "SELECT id, base_id, secret, url, spec, expires, notify, next_cursor, last_result, last_success "
            "FROM wh_hooks WHERE id=? AND base_id=?",
            (hook_id, base_id),
        ).fetchone()
        if row is None:
            raise _hook_not_found()
        return tuple(row)

    # ------------------------------------------------------------ routes
    def dispatch(self, method: str, base_id: str, rest: list[str], query: list[tuple[str, str]], body: Any) -> Any:
        """`rest`: the path after `/v0/bases/{baseId}/webhooks`. `body` is a thunk reading the JSON body."""
        if not rest:
            if method == "POST":
                return self.create(base_id, body())
            if method == "GET":
                return self.list(base_id)
        elif len(rest) == 1 and method == "DELETE":
            self.delete(base_id, rest[0])
            return {}
        elif len(rest) == 2 and method == "POST" and rest[1] == "refresh":
            return self.refresh(base_id, rest[0])
        elif len(rest) == 2 and method == "POST" and rest[1] == "enableNotifications":
            b = body()
            if not isinstance(b, dict) or set(b) != {"enable"} or not isinstance(b["enable"], bool):
                raise _invalid("body must be {enable: boolean}")
            self.enable_notifications(base_id, rest[0], b["enable"])
            return {}
        elif len(rest) == 2 and method == "GET" and rest[1] == "payloads":
            cursor, limit = 1, MAX_PAGE
            for k, v in query:
                if k not in ("cursor", "limit") or not v.isascii() or not v.isdigit():
                    raise _invalid("payloads accepts cursor and limit (positive integers)")
                if k == "cursor":
                    cursor = int(v)
                else:
                    limit = int(v)
            # sqlite holds 64-bit integers: a larger cursor raised OverflowError (a 500)
            if not 1 <= cursor < 2**63 or not 1 <= limit <= MAX_PAGE:
                raise _invalid(f"cursor must be >= 1 and limit between 1 and {MAX_PAGE}")
            return self.payloads(base_id, rest[0], cursor, limit)
        raise _hook_not_found()  # an unknown webhooks route: the store's bare NOT_FOUND

    def create(self, base_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"notificationUrl", "specification"}:
            raise _invalid("body accepts notificationUrl and specification")
        url = body.get("notificationUrl")
        if url is not None:
            try:  # "http://[::1/" or a port out of range raise ValueError (a 500, or a dead ping later)
                parts = urlsplit(url) if isinstance(url, str) else None
                _ = parts and parts.port
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise _invalid("notificationUrl must be an http(s) URL")

        def op() -> dict[str, Any]:
            base = self.store._base(base_id)
            spec = validate_spec(body.get("specification"), base)
            n = self.store._db.execute("SELECT COUNT(*) FROM wh_hooks WHERE base_id=?", (base_id,)).fetchone()[0]
            if n >= MAX_WEBHOOKS_PER_BASE:
                # the documented limit; the real error type is unconfirmed (docs/sandbox.md: gaps)
                raise _api_error(422, "TOO_MANY_WEBHOOKS", f"A base can have at most {MAX_WEBHOOKS_PER_BASE} webhooks")
            hid = new_id("ach", self.store._rng)
            secret = base64.b64encode(os.urandom(32)).decode()
            expires = self._now() + LIFETIME.total_seconds()
            pos = self.store._db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM wh_hooks").fetchone()[0]
            self.store._db.execute(
                "INSERT INTO wh_hooks VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1, NULL, NULL)",
                (hid, base_id, pos, secret, url, json.dumps(spec), expires),
            )
            return {"id": hid, "macSecretBase64": secret, "expirationTime": _iso(expires)}

        out: dict[str, Any] = self._txn(op)
        if url:  # "the notification URL (if given) will get a ping shortly after this completes"
            self._kick(out["id"])
        return out

    def list(self, base_id: str) -> dict[str, Any]:
        def op() -> list[dict[str, Any]]:
            self.store._base(base_id)
            rows = self.store._db.execute(
                "SELECT id, base_id, secret, url, spec, expires, notify, next_cursor, last_result, last_success "
                "FROM wh_hooks WHERE base_id=? ORDER BY position",
                (base_id,),
            ).fetchall()
            now = self._now()
            return [
                {
                    "id": r[0],
                    "areNotificationsEnabled": bool(r[6]),
                    "cursorForNextPayload": r[7],
                    "isHookEnabled": r[5] > now,
                    "lastSuccessfulNotificationTime": r[9],
                    "notificationUrl": r[3],
                    "lastNotificationResult": json.loads(r[8]) if r[8] else None,
                    "expirationTime": _iso(r[5]),
                    "specification": json.loads(r[4]),
                }
                for r in rows
            ]

        return {"webhooks": self._txn(op)}

    def delete(self, base_id: str, hook_id: str) -> None:
        def op() -> None:
            self._row(base_id, hook_id)
            self.store._db.execute("DELETE FROM wh_payloads WHERE hook_id=?", (hook_id,))
            self.store._db.execute("DELETE FROM wh_hooks WHERE id=?", (hook_id,))

        self._txn(op)

    def refresh(self, base_id: str, hook_id: str) -> dict[str, Any]:
        def op() -> dict[str, Any]:
            row = self._row(base_id, hook_id)
            if row[5] <= self._now():
                # "The webhook life can be extended while it is still active": an expired hook stays
                # disabled; the real error for refreshing one is unconfirmed (docs/sandbox.md)
                raise _invalid("This webhook has expired and can no longer be refreshed")
            expires = self._now() + LIFETIME.total_seconds()
            self.store._db.execute("UPDATE wh_hooks SET expires=? WHERE id=?", (expires, hook_id))
            return {"expirationTime": _iso(expires)}

        out: dict[str, Any] = self._txn(op)
        return out

    def enable_notifications(self, base_id: str, hook_id: str, enable: bool) -> None:
        def op() -> None:
            self._row(base_id, hook_id)
            self.store._db.execute("UPDATE wh_hooks SET notify=? WHERE id=?", (int(enable), hook_id))

        self._txn(op)

    def payloads(self, base_id: str, hook_id: str, cursor: int, limit: int) -> dict[str, Any]:
        def op() -> dict[str, Any]:
            row = self._row(base_id, hook_id)
            now = self._now()
            if row[5] > now:  # listing payloads extends an active webhook's life (create-a-webhook)
                self.store._db.execute(
                    "UPDATE wh_hooks SET expires=? WHERE id=?", (now + LIFETIME.total_seconds(), hook_id)
                )
            rows = self.store._db.execute(
                "SELECT n, body FROM wh_payloads WHERE hook_id=? AND n >= ? ORDER BY n LIMIT ?",
                (hook_id, cursor, limit + 1),
            ).fetchall()
            page = rows[:limit]
            # the returned cursor is the number after the last payload returned, unchanged if none (§9)
            nxt = page[-1][0] + 1 if page else cursor
            return {
                "cursor": nxt,
                "mightHaveMore": len(rows) > limit,
                "payloads": [json.loads(b) for _, b in page],
                "payloadFormat": "v0",
            }

        out: dict[str, Any] = self._txn(op)
        return out

    # ------------------------------------------------------------ recording (inside the writer's transaction)
    def on_commit(self) -> None:
        """Fold the captured row changes of this transaction into payloads. Called before COMMIT."""
        db = self.store._db
        rows = db.execute(
            "SELECT base_id, kind, table_id, rec_id, created, old, new FROM wh_changes ORDER BY seq"
        ).fetchall()
        if not rows:
            return
        db.execute("DELETE FROM wh_changes")
        by_base: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_base.setdefault(r[0], []).append(tuple(r))
        now = self._now()
        due = []
        for base_id, changes in by_base.items():
            hooks = db.execute(
                "SELECT id, spec, url, notify FROM wh_hooks WHERE base_id=? AND expires > ? ORDER BY position",
                (base_id, now),
            ).fetchall()
            if db.execute("SELECT 1 FROM bases WHERE id=?", (base_id,)).fetchone() is None:
                # the base was dropped (or the sandbox reset): its webhooks go with it
                db.execute(
                    "DELETE FROM wh_payloads WHERE hook_id IN (SELECT id FROM wh_hooks WHERE base_id=?)", (base_id,)
                )
                db.execute("DELETE FROM wh_hooks WHERE base_id=?", (base_id,))
                continue
            if not hooks:
                continue
            change = _fold(self.store, base_id, changes)
            db.execute("INSERT INTO wh_txn VALUES (?, 1) ON CONFLICT(base_id) DO UPDATE SET n = n + 1", (base_id,))
            txn = db.execute("SELECT n FROM wh_txn WHERE base_id=?", (base_id,)).fetchone()[0]
            for hid, spec_text, url, notify in hooks:
                body = change.payload_for(json.loads(spec_text))
                if body is None:
                    continue
                payload = {
                    "timestamp": format_instant(clock.now()),
                    "baseTransactionNumber": txn,
                    "actionMetadata": {"source": "publicApi", "sourceMetadata": {"user": dict(SANDBOX_USER)}},
                    "payloadFormat": "v0",
                    **body,
                }
                n = db.execute("SELECT next_cursor FROM wh_hooks WHERE id=?", (hid,)).fetchone()[0]
                db.execute(
                    "INSERT INTO wh_payloads VALUES (?, ?, ?, ?)",
                    (hid, n, now, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))),
                )
                db.execute("UPDATE wh_hooks SET next_cursor = ? WHERE id=?", (n + 1, hid))
                if url and notify:
                    due.append(hid)
        for hid in due:
            self._kick(hid)

    # ------------------------------------------------------------ pings
    def _kick(self, hook_id: str) -> None:
        with self._cond:
            if self._closed:
                return
            if hook_id not in self._due:
                self._due.append(hook_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sandbox-webhook-pings", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._due.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due and not self._closed:
                    if not self._cond.wait(timeout=30.0):
                        self._thread = None  # idle: let the thread end; the next kick starts one
                        return
                if self._closed:
                    return
                hook_id = self._due.pop(0)
                self._busy = True
            try:
                self._deliver(hook_id)
            except Exception:  # a broken receiver or a closed store must not kill the thread
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued ping was delivered or given up (tests; `sandbox serve` shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or not (self._due or self._busy), timeout=timeout)

    def _hook_for_ping(self, hook_id: str) -> tuple[str, str, str] | None:
        store = self.store
        with store._lock:  # also waits for the writer's COMMIT that queued this ping
            row = store._db.execute(
                "SELECT base_id, secret, url, notify, expires FROM wh_hooks WHERE id=?", (hook_id,)
            ).fetchone()
        if row is None or not row[2] or not row[3] or row[4] <= self._now():
            return None
        return row[0], row[1], row[2]

    def _deliver(self, hook_id: str) -> None:
        for attempt in range(self.ping_attempts):
            hook = self._hook_for_ping(hook_id)  # re-read: notifications may be disabled meanwhile
            if hook is None:
                return
            base_id, secret, url = hook
            body = json.dumps(
                {"base": {"id": base_id}, "webhook": {"id": hook_id}, "timestamp": format_instant(clock.now())},
                separators=(",", ":"),
            ).encode()
            mac = hmac.new(base64.b64decode(secret), body, hashlib.sha256).hexdigest()
            started = time.monotonic()
            error = _post(url, body, {"X-Airtable-Content-MAC": f"hmac-sha256={mac}"}, self.ping_timeout_s)
            result: dict[str, Any] = {
                "success": error is None,
                "completionTimestamp": format_instant(clock.now()),
                "durationMs": round((time.monotonic() - started) * 1000, 3),
                "retryNumber": attempt,
            }
            retry = error is not None and error[1] and attempt + 1 < self.ping_attempts
            if error is not None:
                result["error"] = {"message": error[0]}
                result["willBeRetried"] = bool(retry)
            self._save_result(hook_id, result)
            if not retry:
                return
            with self._cond:  # back off; close() wakes us
                self._cond.wait(timeout=self.ping_backoff_s * (2**attempt))
                if self._closed:
                    return

    def _save_result(self, hook_id: str, result: dict[str, Any]) -> None:
        store = self.store
        with store._lock:
            if store._db.in_transaction:  # never reached: writers hold the lock until COMMIT
                return
            store._db.execute(
                "UPDATE wh_hooks SET last_result=?, last_success=COALESCE(?, last_success) WHERE id=?",
                (json.dumps(result), result["completionTimestamp"] if result["success"] else None, hook_id),
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[str, bool] | None:
    """POST the ping; None on 200/204, else (message, worth retrying)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not _is_loopback(host) and os.environ.get(ANY_HOST_ENV) != "1":
        # the sandbox never leaves the machine unless told to (docs/sandbox.md)
        return f"The sandbox does not deliver notifications to non-loopback hosts (set {ANY_HOST_ENV}=1)", False
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(host, parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        resp.read()
        if resp.status in (200, 204):
            return None
        return f"The HTTP request returned a {resp.status} status code instead of 200 or 204", True
    except OSError as e:
        return f"The HTTP request failed: {e}", True
    finally:
        conn.close()


# ---------------------------------------------------------------------- folding changes into payloads


class _Change:
    """All changes of one base transaction, in API form, ready to be filtered per webhook."""

    def __init__(self) -> None:
        #: table id → record id → (createdTime, old cells or None, new cells or None)
        self.records: dict[str, dict[str, tuple[str, dict[str, Any] | None, dict[str, Any] | None]]] = {}
        self.old_schema: dict[str, Any] | None = None
        self.new_schema: dict[str, Any] | None = None

    def payload_for(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        opts = spec["options"]
        f = opts["filters"]
        inc = opts.get("includes") or {}
        sources = f.get("fromSources") or []
        if sources and "publicApi" not in sources:
            return None
        types = set(f["dataTypes"])
        changes = set(f.get("changeTypes") or CHANGE_TYPES)
        scope = f.get("recordChangeScope")
        watch = set(f.get("watchDataInFieldIds") or [])
        watch_schema = set(f.get("watchSchemasOfFieldIds") or [])
        cell_ids = inc.get("includeCellValuesInFieldIds")
        prev_cells = bool(inc.get("includePreviousCellValues"))
        prev_defs = bool(inc.get("includePreviousFieldDefinitions"))
        tables: dict[str, dict[str, Any]] = {}
        created_tables: dict[str, Any] = {}
        destroyed_tables: list[str] = []
        if "tableData" in types:
            for tid, recs in self.records.items():
                if scope and tid != scope:
                    continue
                tc: dict[str, Any] = {}
                for rid, (created, old, new) in recs.items():
                    if old is None and new is not None:
                        if "add" in changes:
                            tc.setdefault("createdRecordsById", {})[rid] = {
                                "createdTime": created,
                                "cellValuesByFieldId": new,
                            }
                    elif new is None and old is not None:
                        if "remove" in changes:
                            tc.setdefault("destroyedRecordIds", []).append(rid)
                    elif old is not None and new is not None and "update" in changes:
                        diff = [k for k in {**old, **new} if old.get(k) != new.get(k)]
                        if not diff or (watch and not watch & set(diff)):
                            continue
                        # a cleared cell is null ("Cell value V2 or null by fieldId", webhooks-changed-record)
                        ch: dict[str, Any] = {"current": {"cellValuesByFieldId": {k: new.get(k) for k in diff}}}
                        if prev_cells:
                            ch["previous"] = {"cellValuesByFieldId": {k: old.get(k) for k in diff}}
                        if cell_ids:
                            keep = (
                                {k: v for k, v in new.items() if k not in diff}
                                if cell_ids == "all"
                                else {k: new.get(k) for k in cell_ids if k not in diff}
                            )
                            ch["unchanged"] = {"cellValuesByFieldId": keep}
                        tc.setdefault("changedRecordsById", {})[rid] = ch
                if tc:
                    tables[tid] = tc
        if self.old_schema is not None and self.new_schema is not None and types & {"tableFields", "tableMetadata"}:
            old_t = {t["id"]: t for t in self.old_schema["tables"]}
            new_t = {t["id"]: t for t in self.new_schema["tables"]}
            for tid, t in new_t.items():
                if scope and tid != scope:
                    continue
                if tid not in old_t:
                    if "add" in changes:
                        created_tables[tid] = {
                            "metadata": {"name": t["name"], "description": t.get("description")},
                            "fieldsById": {x["id"]: {"name": x["name"], "type": x["type"]} for x in t["fields"]},
                        }
                    continue
                o = old_t[tid]
                tc = tables.get(tid, {})
                meta_changed = (o["name"], o.get("description")) != (t["name"], t.get("description"))
                if "tableMetadata" in types and "update" in changes and meta_changed:
                    tc["changedMetadata"] = {
                        "current": {"name": t["name"], "description": t.get("description")},
                        "previous": {"name": o["name"], "description": o.get("description")},
                    }
                if "tableFields" in types:
                    of = {x["id"]: x for x in o["fields"]}
                    nf = {x["id"]: x for x in t["fields"]}
                    for fid, x in nf.items():
                        if watch_schema and fid not in watch_schema:
                            continue
                        if fid not in of:
                            if "add" in changes:
                                tc.setdefault("createdFieldsById", {})[fid] = {"name": x["name"], "type": x["type"]}
                            continue
                        keys = [k for k in ("name", "type", "options", "description") if of[fid].get(k) != x.get(k)]
                        if keys and "update" in changes:
                            fc: dict[str, Any] = {"current": {k: x.get(k) for k in keys}}
                            if prev_defs:
                                fc["previous"] = {k: of[fid].get(k) for k in keys}
                            tc.setdefault("changedFieldsById", {})[fid] = fc
                    if "remove" in changes:
                        gone = [fid for fid in of if fid not in nf and (not watch_schema or fid in watch_schema)]
                        if gone:
                            tc["destroyedFieldIds"] = gone
                if tc:
                    tables[tid] = tc
            if not scope and "remove" in changes:
                destroyed_tables = [tid for tid in old_t if tid not in new_t]
        if not (tables or created_tables or destroyed_tables):
            return None
        # keys without changes are left out, as in pyairtable's recorded WebhookPayload.json
        out: dict[str, Any] = {"changedTablesById": tables} if tables else {}
        if created_tables:
            out["createdTablesById"] = created_tables
        if destroyed_tables:
            out["destroyedTableIds"] = destroyed_tables
        return out


def _fold(store: SandboxStore, base_id: str, rows: list[tuple[Any, ...]]) -> _Change:
    change = _Change()
    raw: dict[str, dict[str, list[Any]]] = {}
    for _, kind, table_id, rec_id, created, old, new in rows:
        if kind == "schema":
            if change.old_schema is None:
                change.old_schema = json.loads(old)
            change.new_schema = json.loads(new)
            continue
        slot = raw.setdefault(table_id, {}).get(rec_id)
        if slot is None:
            raw[table_id][rec_id] = [created, old, new]  # first "old", last "new"
        else:
            slot[2] = new
    b = store._base(base_id)
    for table_id, recs in raw.items():
        t = next((x for x in b.tables if x.id == table_id), None)
        if t is None:
            continue

        def cells(rid: str, created: str, text: str | None, t: TableDef = t) -> dict[str, Any] | None:
            if text is None:
                return None
            stored = json.loads(text)
            r = _REC(rid, 0, created, stored, {})
            out = {}
            for f in t.fields:
                if f.computed or f.id not in stored:
                    continue  # computed cells are not reported (docs/sandbox.md: gaps)
                v = store._cell_json(b, t, f, r, "")
                if v is None or v == "" or v == [] or v is False:
                    continue
                out[f.id] = _v2(store, b, f, v)
            return out

        for rid, (created, old, new) in recs.items():
            if old is None and new is None:
                continue  # created and destroyed in one transaction
            change.records.setdefault(table_id, {})[rid] = (
                created,
                cells(rid, created, old),
                cells(rid, created, new),
            )
    return change


def _v2(store: SandboxStore, b: BaseDef, f: Any, v: Any) -> Any:
    """REST (v1) cell → the "v2" cell format webhook payloads use (reference §4.3): selects as
    `{id, name, color}`, links as `[{id, name}]` with the linked record's primary value as name."""
    if f.type in ("singleSelect", "multipleSelects"):
        by_name = {c["name"]: c for c in (f.options or {}).get("choices", [])}

        def choice(name: str) -> dict[str, Any]:
            c = by_name.get(name, {"name": name})
            return {k: c[k] for k in ("id", "name", "color") if k in c}

        return choice(v) if f.type == "singleSelect" else [choice(x) for x in v]
    if f.type == "multipleRecordLinks":
        show = store._display(b, f.options["linkedTableId"])
        out = []
        for rid in v:
            name = show(rid)
            out.append({"id": rid, "name": "Unnamed record" if name in (None, "") else str(name)})
        return out
    return v


def record_schema_change(
    store: SandboxStore, base_id: str, old_schema: dict[str, Any], new_schema: dict[str, Any]
) -> None:
    """For a writer that changes a base's schema without saving `bases.schema` in the same
    transaction: queue the before/after documents (BaseDef.to_json()) so the commit's payloads
    report the table and field changes. Call inside the write transaction, before `_commit`."""
    store._db.execute(
        "INSERT INTO wh_changes (base_id, kind, old, new) SELECT ?, 'schema', ?, ? "
        "WHERE EXISTS (SELECT 1 FROM wh_hooks WHERE base_id = ?)",
        (base_id, json.dumps(old_schema), json.dumps(new_schema), base_id),
    )


__all__ = ["WebhookHub", "install", "record_schema_change", "validate_spec"]
