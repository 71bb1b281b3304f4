"""The only code that talks to Airtable (or the sandbox): pyairtable plus our own policies.

`Gateway` builds pyairtable's `Api` lazily (importing pyairtable costs ~280 ms, so commands that
never reach Airtable never pay it) and routes every HTTP call through `_PolicyApi.request`:
the shared 5 req/s limiter, retries with backoff and jitter on 429 (honouring Airtable's 30 s
penalty), 5xx and connection errors, and one journal row per attempt. Errors leave this module
as `BestStagError`s; tokens never appear in them.

Where requests may go (`Origins`): the configured endpoint's scheme+host+port, plus
`https://content.airtable.com` (attachment uploads) only when the endpoint is real Airtable
(`https://api.airtable.com`). pyairtable builds the upload URL by swapping the endpoint's host for
content.airtable.com and keeping its scheme, so against any other endpoint the upload is routed to
the endpoint itself (the sandbox serves `uploadAttachment` on its own host). The api's session
checks every request it sends, redirects included, and refuses any other origin before a byte
leaves, so the token is never attached to another origin. (Real Airtable only: attachment
downloads, GET without the token, may also go to `https://*.airtableusercontent.com`.)

Writes (create, update, upsert, delete, upload_attachment) tell the gateway's change sink
(`changes.py`) what Airtable answered, or, when a write fails, that the table may have changed:
the cache learns of every write here, whoever the writer.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from .. import errors
from ..config import SANDBOX_ENDPOINT_URL, Settings
from ..logs import redact
from .changes import Change, ChangeSink, NullSink, deliver

if TYPE_CHECKING:
    import requests
    from pyairtable import Api

    from ..journal import Journal
    from ..sandbox import Sandbox
    from .limits import Hold
    from .limits import Limiter as RateLimiter  # the protocol both limiters meet (annotations keep the old name)

IDEMPOTENT = frozenset({"GET", "PATCH", "PUT", "DELETE", "HEAD"})
# Airtable answers that say the request was not applied and may be sent again.
RETRY_ANY_METHOD = frozenset({429, 503})
RETRY_IDEMPOTENT = frozenset({500, 502, 504})

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}
AIRTABLE_API: Origin = ("https", "api.airtable.com", 443)
AIRTABLE_CONTENT: Origin = ("https", "content.airtable.com", 443)
CONTENT_HOST = "content.airtable.com"
#: real Airtable's signed attachment URLs (downloaded without the token)
ATTACHMENT_HOST_SUFFIX = ".airtableusercontent.com"


def origin(url: str) -> Origin:
    """(scheme, host, port) of `url`, lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # a port that is not a number matches nothing
    return scheme, (parts.hostname or "").lower(), port if port is not None else DEFAULT_PORTS.get(scheme, -1)


def _shown(url: str) -> str:
    """`url` as scheme://host[:port]/path: no userinfo, no query (signed attachment URLs carry secrets there)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS.get(scheme) else f":{port}") + urlsplit(url).path


class Origins:
    """Where this gateway's requests may go; see the module docstring."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.endpoint = origin(endpoint_url)
        self.real_airtable = self.endpoint == AIRTABLE_API
        self.allowed: frozenset[Origin] = frozenset(
            {self.endpoint, AIRTABLE_CONTENT} if self.real_airtable else {self.endpoint}
        )

    def route(self, url: str) -> str:
        """pyairtable's upload URL (`<endpoint scheme>://content.airtable.com/...`) sent to the endpoint itself
        unless the endpoint is real Airtable; every other URL unchanged."""
        p = urlsplit(url)
        if self.real_airtable or (p.hostname or "").lower() != CONTENT_HOST:
            return url
        e = urlsplit(self.endpoint_url)
        return urlunsplit((e.scheme, e.netloc, p.path, p.query, p.fragment))

    def check(self, url: str, *, method: str = "GET", authorized: bool = True) -> None:
        """Refuse (before sending) a request to any origin but the allowed ones.

        One exception, for real Airtable only: attachment downloads (GET without the token) from
        `https://*.airtableusercontent.com`, where Airtable's signed attachment URLs point."""
        o = origin(url)
        if o in self.allowed:
            return
        if (
            self.real_airtable
            and not authorized
            and method.upper() == "GET"
            and o[0] == "https"
            and o[2] == 443
            and o[1].endswith(ATTACHMENT_HOST_SUFFIX)
        ):
            return
        raise errors.ForeignOrigin(
            f"refused to send a request to {_shown(url)}: requests go only to the configured endpoint "
            f"{_shown(self.endpoint_url)}" + (" and https://content.airtable.com" if self.real_airtable else ""),
            hint="check AIRTABLE_ENDPOINT_URL (airtable.endpoint_url); the token is never sent to another host",
        )


def guarded_session(origins: Origins) -> requests.Session:
    """A requests Session that checks every request it sends (redirects too) against `origins`."""
    import requests

    class _GuardedSession(requests.Session):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            origins.check(
                request.url or "", method=request.method or "GET", authorized="Authorization" in request.headers
            )
            return super().send(request, **kwargs)

    return _GuardedSession()


@dataclass
class RequestInfo:
    """What one HTTP call was, for the journal and for error messages."""

    method: str
    operation: str
    table: str | None


def describe(method: str, url: str) -> RequestInfo:
    path = [unquote(p) for p in urlsplit(url).path.split("/")[1:]]
    if path[:1] == ["v0"]:
        path = path[1:]
    if path[:1] == ["meta"]:
        return RequestInfo(method, "meta", None)
    if len(path) == 4 and path[-1] == "uploadAttachment":
        return RequestInfo(method, "upload", None)
    table = path[1] if len(path) > 1 else None
    if len(path) >= 3 and path[2] == "listRecords":
        return RequestInfo(method, "list", table)
    single = len(path) >= 3
    op = {
        "GET": "get" if single else "list",
        "POST": "create",
        "PATCH": "update",
        "PUT": "update",
        "DELETE": "delete",
    }.get(method, method.lower())
    return RequestInfo(method, op, table)


def _error_type(resp: requests.Response | None) -> str | None:
    if resp is None:
        return None
    try:
        err = resp.json().get("error")
    except ValueError:
        return None
    if isinstance(err, dict):
        return str(err.get("type"))
    return str(err) if err else None


def _error_message(resp: requests.Response) -> str:
    try:
        err = resp.json().get("error")
    except ValueError:
        return resp.reason or ""
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")
    return str(err or resp.reason)


def _holding(call: Callable[[], Any], hold: Hold | None) -> Any:
    """``call()``, releasing the rate-limit slot as soon as its answer (or failure) is in."""
    try:
        return call()
    finally:
        if hold is not None:
            hold.release()


class Gateway:
    """One per process and config. Thread-safe (pyairtable's session is shared by threads)."""

    def __init__(
        self,
        settings: Settings,
        *,
        journal: Journal | None = None,
        source: str = "cli",
        limiter: RateLimiter | None = None,
        sandbox: Sandbox | None = None,
        sink: ChangeSink | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        #: told of every write's outcome (gateway/changes.py); fixed at construction so no write escapes it
        self.sink: ChangeSink = sink if sink is not None else NullSink()
        self._journal = journal
        self._limiter = limiter
        self._sandbox = sandbox
        self._api: Api | None = None
        self._rng = random.Random()
        self._tls = threading.local()
        self.origins = Origins(settings.endpoint_url)
        self.sleep: Callable[[float], None] = time.sleep

    # ---------------------------------------------------------------- wiring
    @property
    def base_id(self) -> str:
        if self.settings.base_id is None:  # load_config refuses this; Settings built by hand may not
            raise errors.ConfigError(
                "AIRTABLE_BASE_ID (airtable.base_id) is not set: no base to work on",
                hint="set AIRTABLE_BASE_ID=appXXXXXXXXXXXXXX (the app... part of the base's URL)",
            )
        return self.settings.base_id

    @property
    def in_process_sandbox(self) -> bool:
        return self.settings.endpoint_url.rstrip("/") == SANDBOX_ENDPOINT_URL

    @property
    def sandbox(self) -> Sandbox | None:
        """The in-process sandbox (created and seeded on first use), or None when talking HTTP."""
        if not self.in_process_sandbox:
            return None
        if self._sandbox is None:
            from ..fsutil import ensure_private_dir
            from ..sandbox import get_sandbox

            ensure_private_dir(self.settings.paths.sandbox_dir)
            self._sandbox = get_sandbox(self.settings.paths.sandbox_db)
        if self.settings.base_id and not self._sandbox.store.has_base(self.settings.base_id):
            self._sandbox.ensure_sample()
        return self._sandbox

    @property
    def journal(self) -> Journal | None:
        if self._journal is None:
            from ..journal import Journal

            self._journal = Journal(self.settings.paths.journal, source=self.source)
        return self._journal

    @property
    def limiter(self) -> RateLimiter | None:
        sb = self.sandbox
        if sb is not None and not sb.app.limits.per_second:
            return None  # the in-process sandbox has no limit unless one was configured
        if self._limiter is None:
            from .ratelimit import make_limiter

            self._limiter = make_limiter(self.settings)
        return self._limiter

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = self._build_api()
        return self._api

    def _build_api(self) -> Api:
        from pyairtable import Api

        gateway = self

        class _PolicyApi(Api):
            def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                url = gateway.origins.route(str(url))
                gateway.origins.check(url)
                return gateway._send(lambda: Api.request(self, method, url, *args, **kwargs), method, url)

        timeout = (min(10.0, self.settings.airtable.timeout_s), self.settings.airtable.timeout_s)
        token = self.settings.api_token()
        # pyairtable annotates (int, int), but hands the tuple to requests, which takes seconds as floats
        api = _PolicyApi(
            token,
            timeout=cast("tuple[int, int]", timeout),
            retry_strategy=None,
            endpoint_url=self.settings.endpoint_url,
        )
        api.session = guarded_session(self.origins)
        api.api_key = token  # the setter puts the Authorization header on the new session
        sb = self.sandbox
        if sb is not None:
            sb.mount(api.session, self.settings.endpoint_url)
        api.session.hooks["response"].append(self._remember_size)
        return api

    def _remember_size(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._tls.size = len(resp.content)

    def table(self, name: str) -> Any:
        return self.api.table(self.base_id, name)

    # ---------------------------------------------------------------- policy
    def _send(self, call: Callable[[], Any], method: str, url: str) -> Any:
        import requests

        info = describe(method.upper(), url)
        cfg = self.settings.airtable
        attempt = 0
        #: an earlier attempt may have been applied before its answer was lost (drop, timeout, 5xx)
        unsure = False
        while True:
            limiter = self.limiter
            # the slot counts until the answer is in: a request sent late (process descheduled after
            # its grant) still cannot share Airtable's window with the grants that follow it
            hold = limiter.hold(self.base_id) if limiter is not None else None
            t0 = time.perf_counter()
            resp: requests.Response | None = None
            try:
                result = _holding(call, hold)
                self._record(info, 200, t0, result, None, attempt)
                return result
            except requests.HTTPError as e:
                resp = e.response
                status = resp.status_code if resp is not None else None
                etype = _error_type(resp)
                self._record(info, status, t0, None, etype, attempt, resp)
                if status == 429 and limiter is not None:
                    limiter.penalize(self.base_id, cfg.backoff.penalty_s)
                retryable = status in RETRY_ANY_METHOD or (status in RETRY_IDEMPOTENT and self._idempotent(info))
                if not retryable or attempt >= cfg.max_retries:
                    if status in RETRY_IDEMPOTENT and not self._idempotent(info):
                        raise errors.WriteOutcomeUnknown(
                            f"Airtable answered {status} {_error_type(resp) or ''} to {info.operation} on "
                            f"{info.table or 'the base'}: it may or may not have been applied"
                        ) from None
                    err = self._translate(e, info, attempt)
                    err.after_unknown_outcome = unsure  # type: ignore[attr-defined]
                    raise err from None
                unsure = unsure or status in RETRY_IDEMPOTENT
            except (requests.ConnectionError, requests.Timeout) as e:
                self._record(info, None, t0, None, type(e).__name__, attempt)
                if not self._idempotent(info):
                    raise errors.WriteOutcomeUnknown(
                        f"Airtable's answer to {info.operation} on {info.table or 'the base'} was lost "
                        f"({self._unreachable(e)}): it may or may not have been applied"
                    ) from None
                if attempt >= cfg.max_retries:
                    raise errors.UpstreamUnavailable(
                        f"Airtable did not answer {info.operation} on {info.table or 'the base'} "
                        f"after {attempt + 1} attempt(s): {self._unreachable(e)}"
                    ) from None
                unsure = True
            attempt += 1
            self.sleep(self._backoff(attempt, resp))

    def _unreachable(self, e: Exception) -> str:
        """Why the endpoint did not answer, whole and short: `cannot connect to URL (Connection refused)`.

        requests' own text nests urllib3's repr of the pool, the URL with its query and the
        connection object; cut to a length it ended mid-word, and the useful part (the errno's
        words) came last.
        """
        import requests

        text = str(e)
        m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
        if m:
            reason = m.group(1).strip().rstrip(".")
        elif isinstance(e, requests.Timeout) or "timed out" in text:
            reason = f"no answer within {self.settings.airtable.timeout_s:g} s"
        elif "NameResolutionError" in text or "Name or service not known" in text:
            reason = "host name not found"
        else:
            reason = type(e).__name__
        verb = "timed out on" if isinstance(e, requests.Timeout) else "cannot connect to"
        return redact(f"{verb} {_shown(self.settings.endpoint_url)} ({reason})")

    @staticmethod
    def _idempotent(info: RequestInfo) -> bool:
        return info.method in IDEMPOTENT or info.operation == "list"

    def _backoff(self, attempt: int, resp: requests.Response | None) -> float:
        b = self.settings.airtable.backoff
        if resp is not None and resp.status_code == 429 and self._limiter is None:
            return b.penalty_s  # no shared limiter to wait it out for us
        delay = min(b.max_s, b.base_s * (b.factor ** (attempt - 1)))
        if resp is not None and resp.headers.get("Retry-After", "").isdigit():
            delay = max(delay, float(resp.headers["Retry-After"]))
        return delay * (1 + self._rng.uniform(-b.jitter, b.jitter))

    def _record(
        self,
        info: RequestInfo,
        status: int | None,
        t0: float,
        result: Any,
        etype: str | None,
        attempt: int,
        resp: requests.Response | None = None,
    ) -> None:
        j = self.journal
        if j is None:
            return
        records = 0
        if isinstance(result, dict):
            recs = result.get("records")
            records = len(recs) if isinstance(recs, list) else (1 if "id" in result else 0)
        size = len(resp.content) if resp is not None else getattr(self._tls, "size", 0)
        self._tls.size = 0
        try:
            j.record_request(
                base=self.settings.base_id,
                table_name=info.table,
                method=info.method,
                operation=info.operation,
                status=status,
                duration_ms=(time.perf_counter() - t0) * 1000,
                records=records,
                bytes=size,
                error_type=etype,
                retries=attempt,
                source=self.source,
            )
        except Exception:  # the journal must never fail a request
            pass

    def _translate(self, e: requests.HTTPError, info: RequestInfo, attempt: int) -> errors.BestStagError:
        resp = e.response
        status = resp.status_code
        etype = _error_type(resp) or str(status)
        msg = redact(_error_message(resp))
        where = f"{info.operation} on {info.table}" if info.table else info.operation
        if status == 401:
            return errors.UpstreamAuthError(
                f"Airtable refused the token ({etype}) for {where}",
                hint="check AIRTABLE_TOKEN: a personal access token (pat...), sent as a bearer token",
            )
        if status == 403:
            return errors.UpstreamAuthError(
                f"Airtable answered {etype} for {where}: the token has no access to base {self.base_id}, "
                "or the table does not exist",
                hint="check AIRTABLE_BASE_ID and the token's scopes; `beststag doctor` lists the tables",
            )
        if status == 404:
            return errors.NotFound(f"{where}: not found on Airtable ({etype})")
        if status == 422:
            return errors.BadInput(f"Airtable refused {where}: {etype}: {msg}")
        if status == 429:
            return errors.UpstreamUnavailable(f"Airtable kept rate-limiting {where} after {attempt + 1} attempt(s)")
        return errors.UpstreamUnavailable(
            f"Airtable answered {status} {etype} for {where} after {attempt + 1} attempt(s)"
        )

    # ---------------------------------------------------------------- operations
    def schema(self) -> dict[str, Any]:
        """The base schema as Airtable's JSON (`{"tables": [...]}`)."""
        return self.api.request("get", self.api.build_url(f"meta/bases/{self.base_id}/tables"))

    # The metadata API's writes (restore's schema recreation). A POST whose answer is lost raises
    # WriteOutcomeUnknown like any other create: the caller looks the name up before sending again.
    def list_bases(self) -> list[dict[str, Any]]:
        """Every base the token sees (`GET /v0/meta/bases`, every page): ``[{id, name, permissionLevel}]``."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            page = self.api.request("get", self.api.build_url("meta/bases"), params=dict(params))
            out.extend(page.get("bases") or [])
            if not page.get("offset"):
                return out
            params["offset"] = page["offset"]

    def create_base(self, name: str, workspace_id: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
        """`POST /v0/meta/bases`: a new base in ``workspace_id`` with ``tables``; answers ``{id, tables}``."""
        body = {"name": name, "workspaceId": workspace_id, "tables": tables}
        return dict(self.api.request("post", self.api.build_url("meta/bases"), json=body))

    def create_table(
        self, name: str, fields: list[dict[str, Any]], *, description: str | None = None, source: str = "beststag"
    ) -> dict[str, Any]:
        """`POST /v0/meta/bases/{base}/tables`: answers the table model (its fields included)."""
        body: dict[str, Any] = {"name": name, "fields": fields}
        if description:
            body["description"] = description
        url = self.api.build_url(f"meta/bases/{self.base_id}/tables")
        answer = dict(self._write(name, source, lambda: self.api.request("post", url, json=body)))
        self._tell(Change.table_may_have_changed(self.base_id, name, source))
        return answer

    def create_field(
        self, table: str, table_id: str, body: dict[str, Any], *, source: str = "beststag"
    ) -> dict[str, Any]:
        """`POST …/tables/{table_id}/fields`: answers the field model (a link's options name its inverse)."""
        url = self.api.build_url(f"meta/bases/{self.base_id}/tables/{table_id}/fields")
        answer = dict(self._write(table, source, lambda: self.api.request("post", url, json=body)))
        self._tell(Change.table_may_have_changed(self.base_id, table, source))
        return answer

    def update_field(
        self, table: str, table_id: str, field_id: str, body: dict[str, Any], *, source: str = "beststag"
    ) -> dict[str, Any]:
        """`PATCH …/tables/{table_id}/fields/{field_id}` with a new ``name`` and/or ``description`` (idempotent)."""
        url = self.api.build_url(f"meta/bases/{self.base_id}/tables/{table_id}/fields/{field_id}")
        answer = dict(self._write(table, source, lambda: self.api.request("patch", url, json=body)))
        self._tell(Change.table_may_have_changed(self.base_id, table, source))
        return answer

    def iterate(self, table: str, **options: Any) -> Iterator[list[dict[str, Any]]]:
        """Pages of records; restarts (skipping what was yielded) if Airtable's iterator expires."""
        seen: set[str] = set()
        restarts = 0
        while True:
            try:
                for page in self.table(table).iterate(**options):
                    fresh = [r for r in page if r["id"] not in seen]
                    seen.update(r["id"] for r in fresh)
                    if fresh:
                        yield fresh
                return
            except errors.BadInput as e:
                if "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" not in e.message or restarts >= 3:
                    raise
                restarts += 1

    def all(self, table: str, **options: Any) -> list[dict[str, Any]]:
        return [r for page in self.iterate(table, **options) for r in page]

    def get(self, table: str, record_id: str) -> dict[str, Any]:
        return self.table(table).get(record_id)

    # Every write goes through `_write`: the sink hears of the answer, or that the table may have
    # changed when the write failed (an error can follow an applied attempt: a lost answer, a retry).
    def create(
        self, table: str, records: list[dict[str, Any]], *, typecast: bool = False, source: str = "beststag"
    ) -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = self._write(
            table, source, lambda: self.table(table).batch_create(records, typecast=typecast)
        )
        self._tell(Change(self.base_id, table, source, created=tuple(created)))
        return created

    def update(
        self,
        table: str,
        records: list[dict[str, Any]],
        *,
        replace: bool = False,
        typecast: bool = False,
        source: str = "beststag",
    ) -> list[dict[str, Any]]:
        updated: list[dict[str, Any]] = self._write(
            table, source, lambda: self.table(table).batch_update(records, replace=replace, typecast=typecast)
        )
        self._tell(Change(self.base_id, table, source, updated=tuple(updated)))
        return updated

    def upsert(
        self,
        table: str,
        records: list[dict[str, Any]],
        merge_on: list[str],
        *,
        typecast: bool = False,
        source: str = "beststag",
    ) -> dict[str, Any]:
        answer = dict(
            self._write(
                table, source, lambda: self.table(table).batch_upsert(records, key_fields=merge_on, typecast=typecast)
            )
        )
        new = set(answer.get("createdRecords", []))
        recs = list(answer.get("records", []))
        self._tell(
            Change(
                self.base_id,
                table,
                source,
                created=tuple(r for r in recs if r.get("id") in new),
                updated=tuple(r for r in recs if r.get("id") not in new),
            )
        )
        return answer

    def delete(self, table: str, ids: list[str], *, source: str = "beststag") -> list[dict[str, Any]]:
        gone: list[dict[str, Any]] = self._write(table, source, lambda: self.table(table).batch_delete(ids))
        self._tell(Change(self.base_id, table, source, deleted=tuple(str(r["id"]) for r in gone if r.get("deleted"))))
        return gone

    def upload_attachment(
        self,
        table: str,
        record_id: str,
        field: str,
        filename: str,
        *,
        content: bytes,
        content_type: str,
        source: str = "beststag",
    ) -> dict[str, Any]:
        """Add a file to a record's attachment field (Airtable's uploadAttachment)."""
        answer = dict(
            self._write(
                table,
                source,
                lambda: self.table(table).upload_attachment(
                    record_id, field, filename, content=content, content_type=content_type
                ),
            )
        )
        # the answer holds only the attachment field, not the record: what else it matches is unknown
        self._tell(Change.table_may_have_changed(self.base_id, table, source))
        return answer

    def _write(self, table: str, source: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except BaseException:
            self._tell(Change.table_may_have_changed(self.base_id, table, source))
            raise

    def _tell(self, change: Change) -> None:
        deliver(self.sink, change)  # logged, never raised: the write already happened

    def outside_change(self, change: Change) -> bool:
        """The door for changes made by others (the change feed): the same sink as our own writes.

        False when the sink failed (it was logged): the caller must treat the table as unsynced."""
        return deliver(self.sink, change)

    def close(self) -> None:
        if self._api is not None:
            self._api.session.close()
        if self._journal is not None:
            self._journal.close()
