"""The sandbox's HTTP face: a WSGI application speaking Airtable's REST API v0.

Served in-process through a `requests` adapter (no socket) or by `beststag sandbox serve`.
Auth, rate limits and fault injection live here; record semantics live in `store.py`.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from . import meta
from .store import ApiError, ListParams, SandboxStore, invalid_request, not_found
from .users import DEFAULT_USER

MAX_URL_LENGTH = 16000
MAX_BODY_BYTES = 16 * 1024 * 1024
JSON_TYPE = "application/json; charset=utf-8"
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    413: "Payload Too Large",
    414: "URI Too Long",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
LIST_QUERY_KEYS = {
    "fields[]",
    "filterByFormula",
    "maxRecords",
    "pageSize",
    "view",
    "offset",
    "cellFormat",
    "timeZone",
    "userLocale",
    "returnFieldsByFieldId",
    "recordMetadata[]",
}
LIST_BODY_KEYS = {
    "fields",
    "filterByFormula",
    "maxRecords",
    "pageSize",
    "sort",
    "view",
    "offset",
    "cellFormat",
    "returnFieldsByFieldId",
    "recordMetadata",
}
WRITE_BODY_KEYS = {"fields", "records", "typecast", "returnFieldsByFieldId", "performUpsert"}


class DropConnection(Exception):
    """Fault injection: the transport must drop the connection without an answer."""


@dataclass
class FaultConfig:
    """Deterministic faults: every request draws from one RNG seeded with `seed`."""

    seed: int = 0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    #: the request is applied, then the connection drops (the client cannot know it succeeded)
    rate_drop_after: float = 0.0
    #: only requests to these routes draw faults ("list", "get", "create", "update", "delete",
    #: "upload", "meta", "comments"; "meta_write": the metadata API's writes only); empty: every route
    routes: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return any(
            (
                self.latency_ms,
                self.jitter_ms,
                self.rate_429,
                self.rate_500,
                self.rate_503,
                self.rate_drop,
                self.rate_drop_after,
            )
        )

    @classmethod
    def from_json(cls, text: str) -> FaultConfig:
        data = json.loads(text)
        return cls(**{k: data[k] for k in data if k in cls.__dataclass_fields__})


@dataclass
class LimitConfig:
    """Airtable's limits; off by default in-process, on with `sandbox serve --rate-limit`."""

    per_second: float | None = None
    penalty_s: float = 30.0
    window_s: float = 1.0


@dataclass
class SandboxStats:
    requests: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0


class _RateLimiter:
    def __init__(self, cfg: LimitConfig) -> None:
        self.cfg = cfg
        self._hits: dict[str, deque[float]] = {}
        self._penalty_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, base_id: str) -> None:
        if not self.cfg.per_second:
            return
        now = time.monotonic()
        with self._lock:
            if self._penalty_until.get(base_id, 0.0) > now:
                raise _rate_limited()
            q = self._hits.setdefault(base_id, deque())
            while q and q[0] <= now - self.cfg.window_s:
                q.popleft()
            if len(q) >= self.cfg.per_second:
                self._penalty_until[base_id] = now + self.cfg.penalty_s
                raise _rate_limited()
            q.append(now)


def _rate_limited() -> ApiError:
    return ApiError(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")


class SandboxApp:
    """WSGI callable. One instance per store; thread-safe."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        tokens: Iterable[str] = ("sandbox",),
        limits: LimitConfig | None = None,
        faults: FaultConfig | None = None,
    ) -> None:
        self.store = store
        self.tokens = set(tokens)
        self.limits = limits or LimitConfig()
        self._limiter = _RateLimiter(self.limits)
        self.faults = faults or FaultConfig()
        self._fault_rng = random.Random(self.faults.seed)
        self._fault_lock = threading.Lock()
        self.stats = SandboxStats()
        self._stats_lock = threading.Lock()
        #: called with (method, route, status) after each request; tests count upstream calls with it
        self.observers: list[Callable[[str, str, int], None]] = []

    def set_faults(self, faults: FaultConfig) -> None:
        with self._fault_lock:
            self.faults = faults
            self._fault_rng = random.Random(faults.seed)

    def set_limits(self, limits: LimitConfig) -> None:
        self.limits = limits
        self._limiter = _RateLimiter(limits)

    # ---------------------------------------------------------------- WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        route = "?"
        drop_after = False
        try:
            raw_path = environ.get("REQUEST_URI") or environ.get("RAW_URI")
            if raw_path:
                raw_path = raw_path.split("?", 1)[0]
                if "://" in raw_path:  # absolute-form request target
                    raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
                segments = [unquote(s, errors="strict") for s in raw_path.split("/")[1:]]
            else:
                path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", errors="replace")
                segments = path.split("/")[1:]
            if len(segments) > 1 and segments[-1] == "":
                segments.pop()  # airtable.js posts creates to `/v0/{base}/{table}/`
            route = _route_name(method, segments)
            if segments[:1] == ["_sandbox"]:
                status, headers, body = self._sandbox_route(method, segments, environ)
                return self._finish(start_response, method, route, status, body, headers)
            url_len = len(_request_url(environ))
            drop_after = self._inject_faults(route, method)
            self._auth(environ)
            if url_len >= MAX_URL_LENGTH:
                raise ApiError(
                    414, "URL_TOO_LONG", "The request URL is longer than 16000 characters; use POST .../listRecords"
                )
            base_id = (
                segments[2]
                if route == "webhooks"
                else segments[1]
                if len(segments) > 1 and segments[1] != "meta"
                else (segments[3] if len(segments) > 3 and segments[:3] == ["v0", "meta", "bases"] else None)
            )
            if base_id:
                self._limiter.check(base_id)
            result = self._dispatch(method, segments, environ)
            body = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
            status, headers = 200, [("Content-Type", JSON_TYPE)]
        except ApiError as e:
            status, body = e.status, json.dumps(e.body(), ensure_ascii=False, separators=(",", ":")).encode()
            headers = [("Content-Type", JSON_TYPE), *e.headers.items()]
            if e.status == 429:
                with self._stats_lock:
                    self.stats.rate_limited += 1
        except DropConnection:
            self._count(method, route, 0)
            raise
        if drop_after:
            self._count(method, route, 0)
            raise DropConnection()
        return self._finish(start_response, method, route, status, body, headers)

    def _finish(
        self,
        start_response: Callable[..., Any],
        method: str,
        route: str,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
    ) -> list[bytes]:
        self._count(method, route, status)
        headers = [*headers, ("Content-Length", str(len(body)))]
        if not any(k.lower() == "date" for k, _ in headers):  # as Airtable: its clock, for backup's since/as_of
            from email.utils import formatdate

            from .. import clock

            headers.append(("Date", formatdate(clock.timestamp(), usegmt=True)))
        start_response(f"{status} {STATUS_TEXT.get(status, 'Error')}", headers)
        return [body]

    def _count(self, method: str, route: str, status: int) -> None:
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.by_route[route] = self.stats.by_route.get(route, 0) + 1
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        for obs in self.observers:
            obs(method, route, status)

    def _inject_faults(self, route: str = "", method: str = "GET") -> bool:
        f = self.faults
        # "meta_write": the metadata API's writes only (create base, table or field; rename), not its reads
        meta_write = route == "meta" and method != "GET" and "meta_write" in f.routes
        if not f.active or (f.routes and route not in f.routes and not meta_write):
            return False
        with self._fault_lock:
            r = self._fault_rng.random()
            delay = f.latency_ms + (self._fault_rng.random() * f.jitter_ms if f.jitter_ms else 0.0)
        if delay:
            time.sleep(delay / 1000.0)
        edge = 0.0
        for rate, action in (
            (f.rate_drop, "drop"),
            (f.rate_429, 429),
            (f.rate_500, 500),
            (f.rate_503, 503),
            (f.rate_drop_after, "drop_after"),
        ):
            edge += rate
            if r < edge:
                if action == "drop":
                    raise DropConnection()
                if action == "drop_after":
                    return True
                if action == 429:
                    raise _rate_limited()
                if action == 500:
                    raise ApiError(500, "SERVER_ERROR", "Server error")
                raise ApiError(
                    503,
                    "RETRIABLE_ERROR",
                    "Server encountered an error while processing your request, and it is safe to retry the request",
                    headers={"Retry-After": "1"},
                )
        return False

    def _auth(self, environ: dict[str, Any]) -> None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise ApiError(401, "UNAUTHORIZED", "Invalid authentication token")

    # ---------------------------------------------------------------- routing
    def _dispatch(self, method: str, seg: list[str], environ: dict[str, Any]) -> Any:
        if not seg or seg[0] != "v0" or len(seg) < 2:
            raise not_found()
        query = _query(environ)
        url_base = _url_base(environ)
        store = self.store
        if seg[1] == "bases" and len(seg) >= 4 and seg[3] == "webhooks":  # /v0/bases/{baseId}/webhooks/...
            return store.webhooks.dispatch(method, seg[2], seg[4:], query, lambda: _json_body(environ))
        if seg[1] == "meta":
            if seg[2:] == ["whoami"] and method == "GET":
                # the token's user, with the email Airtable adds for the user.email:read scope
                return {
                    "id": DEFAULT_USER["id"],
                    "email": DEFAULT_USER["email"],
                    "scopes": ["data.records:read", "data.records:write", "schema.bases:read"],
                }
            if seg[2:] == ["bases"] and method == "GET":
                return {"bases": store.list_bases()}
            if len(seg) == 5 and seg[2] == "bases" and seg[4] == "tables" and method == "GET":
                include = [v for k, v in query if k in ("include", "include[]")]
                return store.base_schema(seg[3], include_visible="visibleFieldIds" in include)
            return meta.dispatch(store, method, seg, query, lambda: _json_body(environ))
        base_id = seg[1]
        if not base_id.startswith("app"):
            # not a base id and no route the sandbox knows (e.g. /v0/bases/{id}/webhooks): Airtable's 404
            raise not_found()
        if not store.has_base(base_id):
            raise ApiError(
                403,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "Invalid permissions, or the requested model was not found. Check that both your "
                "user and your token have the required permissions, and that the model names "
                "and/or ids are correct.",
            )
        if len(seg) == 5 and seg[4] == "uploadAttachment" and method == "POST":
            body = _json_body(environ)
            if not isinstance(body, dict) or not isinstance(body.get("file"), str):
                raise invalid_request()
            return store.upload_attachment(
                base_id,
                seg[2],
                seg[3],
                content_type=str(body.get("contentType") or "application/octet-stream"),
                file_b64=body["file"],
                filename=str(body.get("filename") or "file"),
                url_base=url_base,
            )
        if len(seg) in (5, 6) and seg[4] == "comments":
            from . import comments

            return comments.dispatch(store, method, base_id, seg[2:], query, lambda: _json_body(environ))
        if len(seg) < 3 or not seg[2]:
            raise not_found()
        table = seg[2]
        if len(seg) == 3:
            if method == "GET":
                return store.list_records(base_id, table, _list_params_from_query(query), url_base=url_base)
            if method == "POST":
                return self._create(base_id, table, _json_body(environ), url_base)
            if method in ("PATCH", "PUT"):
                return self._update_many(base_id, table, _json_body(environ), method == "PUT", url_base)
            if method == "DELETE":
                ids = [v for k, v in query if k == "records[]"]
                if any(k != "records[]" for k, _ in query):
                    raise invalid_request()
                return {"records": store.delete_records(base_id, table, ids)}
            raise not_found()
        if len(seg) == 4:
            if seg[3] == "listRecords" and method == "POST":
                p = _list_params_from_body(_json_body(environ))
                for k, v in query:
                    if k == "timeZone":
                        p.time_zone = v
                    elif k == "userLocale":
                        p.user_locale = v
                    else:
                        raise invalid_request()
                return store.list_records(base_id, table, p, url_base=url_base)
            rid = seg[3]
            if method == "GET":
                p = _list_params_from_query(query, single=True)
                return store.get_record(base_id, table, rid, p, url_base=url_base)
            if method in ("PATCH", "PUT"):
                body = _json_body(environ)
                _check_keys(body, WRITE_BODY_KEYS - {"records", "performUpsert"})
                if "fields" not in body:
                    raise ApiError(
                        422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body'
                    )
                return store.update_records(
                    base_id,
                    table,
                    [(rid, body["fields"])],
                    replace=method == "PUT",
                    typecast=_flag(body.get("typecast")),
                    url_base=url_base,
                    by_field_id=_flag(body.get("returnFieldsByFieldId")),
                    single=True,
                )[0]
            if method == "DELETE":
                return store.delete_records(base_id, table, [rid], single=True)[0]
        raise not_found()

    def _create(self, base_id: str, table: str, body: Any, url_base: str) -> Any:
        _check_keys(body, WRITE_BODY_KEYS - {"performUpsert"})
        typecast = _flag(body.get("typecast"))
        by_id = _flag(body.get("returnFieldsByFieldId"))
        if "records" in body and "fields" not in body:
            items = body["records"]
            if not isinstance(items, list):
                raise invalid_request()
            fields = []
            for item in items[:11]:
                if not isinstance(item, dict) or set(item) - {"fields"}:
                    raise invalid_request()
                if "fields" not in item:
                    raise ApiError(
                        422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body'
                    )
                fields.append(item["fields"])
            if len(items) > 10:
                fields = items  # let the store report the batch size
            return {
                "records": self.store.create_records(
                    base_id, table, fields, typecast=typecast, url_base=url_base, by_field_id=by_id
                )
            }
        if "fields" in body and "records" not in body:
            return self.store.create_records(
                base_id, table, [body["fields"]], typecast=typecast, url_base=url_base, by_field_id=by_id
            )[0]
        raise ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body')

    def _update_many(self, base_id: str, table: str, body: Any, replace: bool, url_base: str) -> Any:
        _check_keys(body, WRITE_BODY_KEYS - {"fields"})
        items = body.get("records")
        if not isinstance(items, list):
            raise ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "records" in the request body')
        typecast = _flag(body.get("typecast"))
        by_id = _flag(body.get("returnFieldsByFieldId"))
        for item in items:
            if not isinstance(item, dict) or set(item) - {"id", "fields"} or "fields" not in item:
                raise invalid_request()
        upsert = body.get("performUpsert")
        if upsert is not None:
            if not isinstance(upsert, dict) or set(upsert) - {"fieldsToMergeOn"}:
                raise invalid_request()
            return self.store.upsert_records(
                base_id,
                table,
                items,
                upsert.get("fieldsToMergeOn"),
                replace=replace,
                typecast=typecast,
                url_base=url_base,
                by_field_id=by_id,
            )
        pairs = []
        for item in items:
            if "id" not in item:
                raise invalid_request()
            pairs.append((item["id"], item["fields"]))
        return {
            "records": self.store.update_records(
                base_id, table, pairs, replace=replace, typecast=typecast, url_base=url_base, by_field_id=by_id
            )
        }

    def _sandbox_route(
        self, method: str, seg: list[str], environ: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if len(seg) >= 3 and seg[1] == "attachments" and method == "GET":
            q = dict(_query(environ))
            try:
                ctype, data, _ = self.store.download_attachment(seg[2], q.get("expires", ""), q.get("sig", ""))
            except ApiError as e:
                return e.status, [("Content-Type", JSON_TYPE)], json.dumps(e.body()).encode()
            return 200, [("Content-Type", ctype)], data
        if seg[1:] == ["health"]:
            return 200, [("Content-Type", JSON_TYPE)], b'{"ok":true}'
        if seg[1:] == ["stats"]:  # for tests and benchmarks driving a served sandbox
            with self._stats_lock:
                st = {
                    "requests": self.stats.requests,
                    "by_route": self.stats.by_route,
                    "statuses": {str(k): v for k, v in self.stats.statuses.items()},
                    "rate_limited": self.stats.rate_limited,
                }
            return 200, [("Content-Type", JSON_TYPE)], json.dumps(st).encode()
        return 404, [("Content-Type", JSON_TYPE)], json.dumps(not_found().body()).encode()


# -------------------------------------------------------------------- helpers


def _route_name(method: str, seg: list[str]) -> str:
    if seg[:1] == ["_sandbox"]:
        return "sandbox"
    if seg[1:2] == ["meta"]:
        return "meta"
    if seg[1:2] == ["bases"] and seg[3:4] == ["webhooks"]:
        return "webhooks"
    if len(seg) == 5 and seg[-1] == "uploadAttachment":
        return "upload"
    if len(seg) in (5, 6) and seg[4] == "comments":
        return "comments"
    if len(seg) == 3:
        return {"GET": "list", "POST": "create", "PATCH": "update", "PUT": "update", "DELETE": "delete"}.get(
            method, "?"
        )
    if len(seg) == 4:
        if seg[3] == "listRecords":
            return "list"
        return {"GET": "get", "PATCH": "update", "PUT": "update", "DELETE": "delete"}.get(method, "?")
    return "?"


def _request_url(environ: dict[str, Any]) -> str:
    path = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    qs = environ.get("QUERY_STRING", "")
    host = environ.get("HTTP_HOST", "api.airtable.com")
    url = f"https://{host}{path.split('?', 1)[0]}"
    return url + ("?" + qs if qs else "")


def _url_base(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
    return f"{scheme}://{host}"


def _query(environ: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        return parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise invalid_request() from None


def _json_body(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        raise ApiError(413, "REQUEST_TOO_LARGE", "Request body is too large")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else {}
        if b"\\u" in raw:  # an escaped lone surrogate sqlite cannot store (it crashed the write: a 500)
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        return body
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError):
        raise ApiError(422, "INVALID_REQUEST_BODY", "Could not parse request body") from None


def _check_keys(body: Any, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise ApiError(422, "INVALID_REQUEST_BODY", "Could not parse request body")
    if set(body) - allowed:
        raise invalid_request()


def _flag(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.lower() in ("1", "true")
    if isinstance(v, int):
        return v != 0
    return False


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise invalid_request()
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,12}", v.strip()):  # isdigit() accepts '¹'
        return int(v)
    raise invalid_request()


def _list_params_from_query(query: list[tuple[str, str]], single: bool = False) -> ListParams:
    p = ListParams()
    sorts: dict[int, dict[str, str]] = {}
    fields: list[str] = []
    seen_fields = False
    for k, v in query:
        if single and k not in ("cellFormat", "timeZone", "userLocale", "returnFieldsByFieldId"):
            raise invalid_request()
        if k == "fields[]" or k == "fields":
            fields.append(v)
            seen_fields = True
        elif k == "filterByFormula":
            p.formula = v
        elif k == "maxRecords":
            p.max_records = _int(v)
        elif k == "pageSize":
            p.page_size = _int(v)
        elif k == "view":
            p.view = v
        elif k == "offset":
            p.offset = v
        elif k == "cellFormat":
            p.cell_format = v
        elif k == "timeZone":
            p.time_zone = v
        elif k == "userLocale":
            p.user_locale = v
        elif k == "returnFieldsByFieldId":
            p.by_field_id = _flag(v)
        elif k == "recordMetadata[]":
            p.comment_count = v == "commentCount"
        elif k.startswith("sort[") and k.endswith("]"):
            inner = k[5:-1]
            idx, _, attr = inner.partition("][")
            if not idx.isdigit() or attr not in ("field", "direction"):
                raise invalid_request()
            sorts.setdefault(int(idx), {})[attr] = v
        else:
            raise invalid_request()
    if seen_fields:
        p.fields = fields
    if sorts:
        p.sort = []
        for i in sorted(sorts):
            s = sorts[i]
            if "field" not in s:
                raise invalid_request()
            p.sort.append((s["field"], s.get("direction", "asc")))
    return p


def _list_params_from_body(body: Any) -> ListParams:
    _check_keys(body, LIST_BODY_KEYS)
    p = ListParams()
    if "fields" in body:
        if not isinstance(body["fields"], list) or not all(isinstance(f, str) for f in body["fields"]):
            raise invalid_request()
        p.fields = body["fields"]
    if body.get("filterByFormula") is not None:
        if not isinstance(body["filterByFormula"], str):
            raise invalid_request()
        p.formula = body["filterByFormula"]
    if body.get("maxRecords") is not None:
        p.max_records = _int(body["maxRecords"])
    if body.get("pageSize") is not None:
        p.page_size = _int(body["pageSize"])
    if body.get("view") is not None:
        p.view = str(body["view"])
    if body.get("offset") is not None:
        p.offset = str(body["offset"])
    if body.get("cellFormat") is not None:
        p.cell_format = str(body["cellFormat"])
    p.by_field_id = _flag(body.get("returnFieldsByFieldId"))
    if body.get("recordMetadata"):
        p.comment_count = "commentCount" in body["recordMetadata"]
    if body.get("sort") is not None:
        if not isinstance(body["sort"], list):
            raise invalid_request()
        p.sort = []
        for s in body["sort"]:
            if not isinstance(s, dict) or not isinstance(s.get("field"), str) or set(s) - {"field", "direction"}:
                raise invalid_request()
            p.sort.append((s["field"], str(s.get("direction", "asc"))))
    return p
