"""`beststag serve`: the spec's three webhooks for the n8n workflows, on FastAPI.

    POST /webhook/airtable/cache    {"operation": "get|set|invalidate", "table", "recordId", "cacheTTL",
                                     "filters", "fields", "sort", "maxRecords"}
    POST /webhook/airtable/backup   {"backup_type": "incremental|complete|critical", "tables": [...]}
    POST /webhook/airtable/metrics  {"metric_type": "usage|performance|storage", "time_range": "1h|24h|7d|30d"}
    GET  /jobs/{id}, GET /healthz, OpenAPI at /openapi.json, Swagger UI at /docs

Every webhook needs `Authorization: Bearer <BESTSTAG_WEBHOOK_SECRET>` (compared in constant time).
Errors are JSON `{"error": {"type", "message", "hint"}}` with the status of the error's kind; the
OpenAPI document declares the bearer scheme and every status each route answers. /docs loads
its JavaScript and CSS from this server (the `fastapi-offline` package), never from a CDN:
an offline server still shows them.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline  # at the top: a missing [serve] extra is one ImportError for `serve`
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors
from ..cache.policy import MAX_TTL_S
from ..logs import log_event, redact
from .jobs import JOB_ID_PATTERN, JobRunner

if TYPE_CHECKING:
    from ..config import Settings

STATUS_BY_KIND = {
    "unknown_table": 404,
    "unknown_field": 422,
    "filter_error": 422,
    "bad_input": 422,
    "config_error": 422,
    "not_found": 404,
    "lock_held": 409,
    "upstream_unavailable": 503,
    "upstream_auth": 503,
    "partial": 207,
    "operation_failed": 500,
}


class _Body(BaseModel):
    """A webhook body: every string (and key) must be valid Unicode before any field is looked at."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        from pydantic_core import PydanticCustomError

        from ..inputs import check_text

        try:
            return check_text(data, "string")
        except errors.BadInput as e:
            raise PydanticCustomError("lone_surrogate", e.message) from None


class SortItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1)
    direction: Literal["asc", "desc"] = "asc"


class CacheRequest(_Body):
    """The spec's cache body. `data` (records) is needed by `set` only."""

    model_config = ConfigDict(extra="forbid")
    operation: Literal["get", "set", "invalidate"]
    table: str = Field(min_length=1, max_length=200)
    recordId: str | None = Field(default=None, pattern=r"^rec[A-Za-z0-9]{14}$")
    cacheTTL: int | None = Field(default=None, ge=0, le=MAX_TTL_S)
    filters: dict[str, Any] | None = None
    fields: list[str] = Field(default_factory=list, max_length=500)
    sort: list[SortItem] = Field(default_factory=list, max_length=20)
    maxRecords: int | None = Field(default=None, ge=1, le=1_000_000)
    pageSize: int | None = Field(default=None, ge=1, le=100)
    view: str | None = None
    refresh: bool = False
    data: list[dict[str, Any]] | dict[str, Any] | None = None


class BackupRequest(_Body):
    model_config = ConfigDict(extra="forbid")
    backup_type: Literal["incremental", "complete", "critical"]
    tables: list[str] | None = Field(default=None, max_length=100)


class MetricsRequest(_Body):
    model_config = ConfigDict(extra="forbid")
    metric_type: Literal["usage", "performance", "storage", "backup", "all"]
    time_range: Literal["1h", "24h", "7d", "30d"] = "24h"


class FieldProblem(BaseModel):
    field: str
    problem: str
    line: int | None = Field(default=None, description="JSON decode errors: where the body stops being JSON")
    column: int | None = None


class ErrorDetail(BaseModel):
    type: str = Field(description="the error's kind, e.g. unauthorized, invalid_body, unknown_table, lock_held")
    message: str
    hint: str = ""
    fields: list[FieldProblem] | None = Field(default=None, description="422 invalid_body: each problem found")


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {"type", "message", "hint"}}`."""

    error: ErrorDetail


class Health(BaseModel):
    ok: bool
    process: bool
    journal: bool
    upstream: bool | None
    sandbox: bool


_STATUS_TEXT = {
    401: "missing or wrong bearer token (BESTSTAG_WEBHOOK_SECRET)",
    404: "unknown table (with a did-you-mean) or unknown job",
    409: "a backup is already running (the message names its job)",
    411: "no Content-Length header",
    413: "body over webhook.max_body_bytes",
    415: "Content-Type is not JSON",
    422: "the body is not JSON (line and column given) or does not match the schema (each field named)",
    500: "internal error (details in the server log only)",
    503: "Airtable unreachable and nothing cached to answer from",
}
#: what every POST webhook can answer before its own logic runs (middleware and validation)
_POST_STATUSES = (401, 411, 413, 415, 422, 500)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _STATUS_TEXT[s]} for s in sorted(statuses)}


def _json_position(exc: RequestValidationError, error: dict[str, Any]) -> tuple[int, int] | None:
    """Line and column (1-based, as `json` counts them) of a JSON decode error in the body."""
    loc = error.get("loc", ())
    doc = exc.body
    if error.get("type") != "json_invalid" or len(loc) < 2 or not isinstance(loc[1], int):
        return None
    if isinstance(doc, bytes):
        doc = doc.decode("utf-8", "replace")
    if not isinstance(doc, str):
        return None
    e = json.JSONDecodeError(str(error.get("ctx", {}).get("error", "")), doc, loc[1])
    return e.lineno, e.colno


def _error(status: int, kind: str, message: str, hint: str = "", **extra: Any) -> JSONResponse:
    from ..inputs import printable_tree

    # printable: a lone surrogate echoed from the request (a key in `fields`) must not turn the answer into a 500
    return JSONResponse(
        printable_tree({"error": {"type": kind, "message": redact(message), "hint": redact(hint), **extra}}),
        status_code=status,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The webhook application; `settings` default to `load_config()` (workers build their own)."""
    if settings is None:
        from ..config import load_config

        settings = load_config()
    from ..cache import connect

    secret = settings.webhook.secret.get_secret_value() if settings.webhook.secret else ""
    gateway, cache = connect(settings, source="webhook", lru_items=int(settings.cache.lru_items))
    jobs = JobRunner(settings, gateway)
    health: dict[str, Any] = {"checked": 0.0, "upstream": None}
    answers = _Answers()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed_poller.start()
        yield
        # SIGTERM/SIGINT: uvicorn stops taking requests, then this; the feed's threads end before the
        # cache and gateway close under them (a pull in flight finishes its page, bounded by its timeouts)
        await run_in_threadpool(_stop_feed, feed_poller, feed_puller)
        jobs.close()
        cache.close()
        gateway.close()

    # Swagger UI 5 and ReDoc served from the package's own files (FastAPI's default pulls them
    # from a CDN: a blank /docs on a server without Internet access)
    app = FastAPIOffline(
        title="beststag webhooks",
        version=_version(),
        lifespan=lifespan,
        description="The BestStag persistence webhooks (cache, backup, metrics) for n8n.",
        static_url="/docs-assets",
        # ReDoc's page still fetches its logo from cdn.redoc.ly: Swagger UI only
        redoc_url=None,
    )
    # the middleware checks the token; this only declares the scheme in the OpenAPI document
    bearer = [
        Depends(
            HTTPBearer(
                auto_error=False, scheme_name="webhookSecret", description="BESTSTAG_WEBHOOK_SECRET (n8n: Header Auth)"
            )
        )
    ]
    app.state.settings, app.state.cache, app.state.jobs, app.state.gateway = settings, cache, jobs, gateway

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return (
            bool(secret) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), secret.encode())
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems: list[dict[str, Any]] = []
        for e in exc.errors()[:10]:
            at = _json_position(exc, e)
            if at is not None:  # like the CLI's --data/--filter: what json says, and where
                problems.append(
                    {
                        "field": "body",
                        "problem": f"not valid JSON: {e.get('ctx', {}).get('error', '')}"
                        f" at line {at[0]} column {at[1]}",
                        "line": at[0],
                        "column": at[1],
                    }
                )
                continue
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append({"field": loc, "problem": e.get("msg", "")})
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        return _error(
            422,
            "invalid_body",
            f"{first['field']}: {first['problem']}",
            "see /docs for the body schema",
            fields=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a bare 400 when the body cannot be decoded at all (not UTF-8, nested too
        # deeply to parse): that is a bad body like any other, so 422 in our error shape
        if exc.status_code == 400 and request.method == "POST":
            return _error(
                422,
                "invalid_body",
                "body: not a JSON document that can be read (UTF-8, not nested too deeply)",
                "see /docs for the body schema",
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(errors.BestStagError)
    async def _domain(request: Request, exc: errors.BestStagError) -> JSONResponse:
        return _error(
            STATUS_BY_KIND.get(exc.kind, 500 if exc.exit_code == errors.ExitStatus.FAILED else 422),
            exc.kind,
            exc.message,
            exc.hint,
        )

    @app.middleware("http")
    async def _guard_and_record(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        # Airtable's ping carries no bearer token but its own MAC, checked in the route
        guarded = request.url.path.startswith(("/webhook/", "/jobs/")) and request.url.path != NOTIFY_PATH
        if guarded and not authorized(request):
            # checked before the body is read: an unauthenticated caller learns nothing about it
            response = _error(
                401,
                "unauthorized",
                "missing or wrong webhook secret",
                "send BESTSTAG_WEBHOOK_SECRET as a bearer token in the Authorization header (n8n: Header Auth)",
            )
            return _finish(request, response, t0)
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                response = _error(411, "length_required", "send a Content-Length header")
                return _finish(request, response, t0)
            if int(length) > settings.webhook.max_body_bytes:
                response = _error(
                    413,
                    "body_too_large",
                    f"body of {length} bytes is over the {settings.webhook.max_body_bytes}-byte limit",
                    "webhook.max_body_bytes in the config",
                )
                return _finish(request, response, t0)
            ctype = request.headers.get("content-type", "")
            if not ctype.split(";")[0].strip().lower().endswith("json"):
                response = _error(
                    415,
                    "unsupported_media_type",
                    f"content type {ctype or '(none)'} is not JSON",
                    "send Content-Type: application/json",
                )
                return _finish(request, response, t0)
        try:
            response = await call_next(request)
        except Exception as e:  # a bug: answer 500 without the details, log them
            log_event("webhook.crash", _level=40, path=request.url.path, error=redact(f"{type(e).__name__}: {e}"))
            response = _error(500, "internal_error", "internal error", "see the server log")
        return _finish(request, response, t0)

    def _finish(request: Request, response: Any, t0: float) -> Any:
        ms = (time.perf_counter() - t0) * 1000
        info = getattr(request.state, "info", {})
        log_event(
            "webhook.request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=round(ms, 3),
            **info,
        )
        j = gateway.journal
        if j is not None and request.url.path.startswith("/webhook/"):
            try:
                j.record_webhook_request(
                    endpoint=request.url.path.rsplit("/", 1)[-1],
                    status=response.status_code,
                    duration_ms=ms,
                    operation=info.get("operation"),
                    table_name=info.get("table"),
                    cache_status=info.get("cache"),
                )
            except Exception:
                pass
        return response

    @app.post(
        "/webhook/airtable/cache",
        response_model=None,
        dependencies=bearer,
        responses=_errors(*_POST_STATUSES, 404, 503),
    )
    async def cache_webhook(body: CacheRequest, request: Request) -> Response:
        """get: records plus cache metadata (hit/miss/stale, age, ttl, key); set: store `data`; invalidate."""
        request.state.info = {"operation": body.operation, "table": body.table}
        if body.operation == "get":
            hit = _alias_hit(cache, body)  # microseconds: answered on the event loop
            if hit is not None:
                request.state.info["cache"] = "hit"
                return answers.render(hit)
        return await run_in_threadpool(_cache_slow, body, request)

    def _cache_slow(body: CacheRequest, request: Request) -> Response:
        if body.operation == "invalidate":
            out = cache.invalidate(body.table, body.recordId)
            return JSONResponse({"invalidated": out})
        if body.operation == "set":
            return JSONResponse(_set(cache, body))
        res = _get(cache, body)
        request.state.info["cache"] = res.status
        return answers.render(res)

    @app.post(
        "/webhook/airtable/backup",
        status_code=202,
        dependencies=bearer,
        responses=_errors(*_POST_STATUSES, 404, 409, 503),
    )
    def backup_webhook(body: BackupRequest, request: Request) -> JSONResponse:
        """Start a backup in the background: 202 with a job id; 409 when one is already running."""
        request.state.info = {"operation": body.backup_type}
        job = jobs.start_backup(body.backup_type, body.tables)
        return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    @app.get(
        "/jobs/{job_id}",
        dependencies=bearer,
        responses={
            **_errors(401, 404, 500),
            422: {"model": ErrorBody, "description": "not a job id (12 hexadecimal digits)"},
        },
    )
    def job_status(job_id: Annotated[str, PathParam(pattern=JOB_ID_PATTERN)]) -> JSONResponse:
        """Status of a background job (backups)."""
        return JSONResponse(jobs.get(job_id).to_json())

    @app.post("/webhook/airtable/metrics", dependencies=bearer, responses=_errors(*_POST_STATUSES, 503))
    def metrics_webhook(body: MetricsRequest, request: Request) -> JSONResponse:
        """The collected metrics as JSON (`beststag metrics collect --json`)."""
        from ..metrics.collect import collect

        request.state.info = {"operation": body.metric_type}
        return JSONResponse(collect(settings, body.metric_type, body.time_range, gateway=gateway))

    feed_puller = _feed_puller(settings, gateway, cache)
    feed_poller = _feed_poller(settings, gateway, cache)
    app.state.feed_puller, app.state.feed_poller = feed_puller, feed_poller

    @app.post(
        NOTIFY_PATH,
        status_code=204,
        responses=_errors(401, 411, 413, 415, 500),
        # the body is read raw (its MAC is over the exact bytes), so it is declared here, not by a model
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _PING_SCHEMA}}}},
    )
    async def airtable_notify(request: Request) -> Response:
        """Airtable's webhook ping: the MAC is checked (constant time), 204 at once, payloads pulled after."""
        from ..feed import notify, state

        body = await request.body()
        ids = notify.ping_ids(body)
        journal = gateway.journal
        st = state.load(journal, gateway.base_id) if journal is not None else None
        header = request.headers.get(notify.MAC_HEADER)
        if (
            ids is None
            or st is None
            or ids != (gateway.base_id, st.webhook_id)
            or not notify.mac_ok(st.mac_secret, body, header)
        ):
            log_event("feed.bad_ping", _level=30, reason="unknown webhook" if st is None or ids is None else "bad MAC")
            return _error(
                401,
                "unauthorized",
                "not a ping of this base's webhook (wrong or missing MAC)",
                "only Airtable calls this route: it signs each ping with the webhook's MAC secret",
            )
        feed_puller.request()
        return Response(status_code=204)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "the journal or Airtable cannot be reached"}},
    )
    def healthz() -> JSONResponse:
        """Process, journal and upstream reachability (checked at most every 30 s)."""
        ok_journal = True
        try:
            j = gateway.journal
            if j is not None:
                j.query("SELECT 1")
        except Exception:
            ok_journal = False
        now = time.monotonic()
        if now - health["checked"] > 30:
            try:
                gateway.schema()
                health["upstream"] = True
            except errors.BestStagError:
                health["upstream"] = False
            health["checked"] = now
        ok = ok_journal and bool(health["upstream"])
        return JSONResponse(
            {
                "ok": ok,
                "process": True,
                "journal": ok_journal,
                "upstream": health["upstream"],
                "sandbox": settings.sandbox_mode,
            },
            status_code=200 if ok else 503,
        )

    return app


NOTIFY_PATH = "/webhook/airtable/notify"
#: Airtable's ping (its webhooks docs; pyairtable's WebhookNotification)
_PING_SCHEMA: dict[str, Any] = {
    "title": "AirtablePing",
    "type": "object",
    "properties": {
        "base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        "webhook": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        "timestamp": {"type": "string"},
    },
    "required": ["base", "webhook"],
}
PING_PULL_WAIT_S = 600.0  # a pull is bounded by feed.max_pages requests; past this the next ping tries again
PING_SPACING_S = 1.0  # pings' pulls this far apart at least when the poll loop is off (feed.poll_s 0)


def _feed_puller(settings: Settings, gateway: Any, cache: Any) -> Any:
    from ..feed import service
    from ..feed.notify import Puller

    def pull() -> None:
        journal = gateway.journal
        if journal is not None:
            # waits for another process's pull (cron's), which may have missed the pinged payload
            service.pull(gateway, journal, cache.schema(), max_pages=settings.feed.max_pages, wait=PING_PULL_WAIT_S)

    poll_s = float(settings.feed.poll_s)
    return Puller(pull, spacing_s=poll_s if poll_s > 0 else PING_SPACING_S)


def _feed_poller(settings: Settings, gateway: Any, cache: Any) -> Any:
    """The loop pulling the feed every `feed.poll_s` while it is enabled (feed/poll.py); 0 turns it off, and
    so does `feed.notification_url`: Airtable's pings then say when to pull (polling as well would cost
    3600 / poll_s requests an hour on a quiet base; cron's `feed pull` is the safety net for lost pings)."""
    from ..feed import service
    from ..feed.poll import Poller

    def feed_row() -> Any:
        journal = gateway.journal
        return journal.feed_row(gateway.base_id) if journal is not None else None

    def pull() -> Any:
        # wait=0: a pull already running (a ping's, cron's) reads everything from the stored cursor
        return service.pull(gateway, gateway.journal, cache.schema(), max_pages=settings.feed.max_pages, wait=0)

    interval = 0.0 if settings.feed.notification_url else float(settings.feed.poll_s)
    return Poller(interval, feed_row, pull, log_event)


FEED_STOP_S = 30.0


def _stop_feed(poller: Any, puller: Any) -> None:
    if not poller.stop(FEED_STOP_S) or not puller.stop(FEED_STOP_S):
        log_event("feed.stop_timeout", _level=30, waited_s=FEED_STOP_S)


def _version() -> str:
    from .. import __version__

    return __version__


def _query_parts(body: CacheRequest) -> dict[str, Any]:
    """The body's query, read as `cache get` reads its options (query/request.py)."""
    from ..query.request import query

    return query(body.table, body.filters, body.fields, [s.model_dump() for s in body.sort], body.maxRecords, body.view)


class _Answers:
    """JSON of hit answers: the records part is serialised once per stored answer, not per request."""

    def __init__(self, size: int = 256) -> None:
        self._bytes: dict[tuple[str, str], bytes] = {}
        self._size = size

    def render(self, res: Any) -> Response:
        meta = {
            "status": res.status,
            "age_s": round(res.age_s, 3),
            "ttl_s": res.ttl_s,
            "key": res.key,
            "source": res.source,
            "stale": res.status == "stale",
            **res.extra,
        }
        k = (res.key, res.digest) if res.digest else None  # the digest changes whenever the records do
        blob = self._bytes.get(k) if k else None
        if blob is None:
            blob = json.dumps(res.records, ensure_ascii=False, separators=(",", ":")).encode()
            if k:
                if len(self._bytes) >= self._size:
                    self._bytes.pop(next(iter(self._bytes)))
                self._bytes[k] = blob
        head = json.dumps({"table": res.table}, ensure_ascii=False)[:-1].encode()
        tail = json.dumps({"count": len(res.records), "cache": meta}, ensure_ascii=False)[1:].encode()
        return Response(content=head + b',"records":' + blob + b"," + tail, media_type="application/json")


def _alias_hit(cache: Any, body: CacheRequest) -> Any:
    from ..cache.manager import alias_digest

    if body.recordId is not None or body.refresh:
        return None
    ttl = float(body.cacheTTL) if body.cacheTTL is not None else None
    return cache.lookup_alias("webhook:" + alias_digest(_query_parts(body)), ttl=ttl)


def _get(cache: Any, body: CacheRequest) -> Any:
    from ..cache.manager import alias_digest
    from ..query.request import spec_data
    from ..query.spec import QuerySpec

    ttl = float(body.cacheTTL) if body.cacheTTL is not None else None
    if body.recordId is not None:
        return cache.get_record(body.table, body.recordId, ttl=ttl, refresh=body.refresh)
    parts = _query_parts(body)
    alias = "webhook:" + alias_digest(parts)
    if not body.refresh:
        hit = cache.lookup_alias(alias, ttl=ttl)
        if hit is not None:
            return hit
    spec = QuerySpec.parse(spec_data(parts, body.pageSize))
    return cache.get(spec, ttl=ttl, refresh=body.refresh, alias=alias)


def _set(cache: Any, body: CacheRequest) -> dict[str, Any]:
    from ..cache.records import check_records
    from ..query.request import spec_data
    from ..query.spec import QuerySpec

    if body.data is None:
        raise errors.BadInput("set needs `data`: the records to store (a list, or one record with recordId)")
    ttl = float(body.cacheTTL) if body.cacheTTL is not None else None
    if body.recordId is not None:
        rec = check_records(body.data, single=True)[0]
        if rec["id"] != body.recordId:
            raise errors.BadInput(f"data holds record {rec['id']}, not recordId {body.recordId}")
        return {"stored": True, "key": cache.set_record(body.table, rec, ttl=ttl)}
    spec = QuerySpec.parse(spec_data(_query_parts(body)))
    return {"stored": True, "key": cache.set(spec, check_records(body.data), ttl=ttl)}


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
