"""The change feed's operations: enable, status, pull, refresh, disable (the CLI and `serve` call these).

One webhook per base watches every table (`tableData`, `tableFields`, `tableMetadata`) and asks for every
field's value of a changed record (`includeCellValuesInFieldIds: "all"`), so each payload gives whole
records. A pull lists payloads from the stored cursor, a page of 50 a request, translates each into
changes (`payloads.translate`) and hands them to the gateway's change sink — the same door as beststag's
own writes — then stores the cursor. Killed between the two, the next pull repeats those payloads: each
sets records to their state at that payload, in order, so the end state is the same.

Gaps are never silent. Each of these marks the tables it concerns (every table, for the first three) in
`feed_gaps` and tells the sink the tables may have changed; `feed status` and `doctor` show them, and the
cache keeps revalidating those tables until a later whole pull heals them:
- the webhook is gone or disabled (404, or `isHookEnabled` false): the feed is broken until `feed enable`;
- the cursor jumped (payloads the server no longer keeps: the answer's cursor is past what it returned);
- the `mightHaveMore` loop was cut short at `feed.max_pages` (the backlog is read on the next pull);
- an error payload (`error: true`), or a payload whose changes cannot be applied exactly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import clock, errors
from ..gateway.changes import Change
from . import state
from .payloads import touched, translate

if TYPE_CHECKING:
    from ..gateway.api import Gateway
    from ..journal import Journal
    from ..query.schema import BaseSchema

log = logging.getLogger("beststag.feed")

SPEC: dict[str, Any] = {
    "options": {
        "filters": {"dataTypes": ["tableData", "tableFields", "tableMetadata"]},
        "includes": {"includeCellValuesInFieldIds": "all", "includePreviousCellValues": True},
    }
}
PAGE = 50  # Airtable's largest page of payloads


@dataclass(frozen=True)
class Status:
    base: str
    enabled: bool
    webhook_id: str | None = None
    cursor: int | None = None
    expiration: str | None = None
    last_pull_ts: float | None = None
    continuous_since_ts: float | None = None
    broken_since_ts: float | None = None
    broken_reason: str | None = None
    gaps: tuple[state.Gap, ...] = ()

    @property
    def whole(self) -> bool:
        return self.enabled and self.broken_since_ts is None and not self.gaps


@dataclass
class PullResult:
    base: str
    pages: int = 0
    payloads: int = 0
    changes: int = 0
    records: int = 0
    cursor: int = 0
    gaps: dict[str, str] = field(default_factory=dict)  # table → why
    healed: bool = False
    #: another pull of the base was running (cron's and serve's at once): it reads everything from the
    #: stored cursor, so this one did nothing rather than deliver the same payloads twice, out of step
    skipped: bool = False


def _url(gw: Gateway, *parts: str) -> str:
    return str(gw.api.build_url("bases", gw.base_id, "webhooks", *parts))


def status(journal: Journal, base: str) -> Status:
    st = state.load(journal, base)
    if st is None:
        return Status(base, enabled=False)
    return Status(
        base,
        enabled=True,
        webhook_id=st.webhook_id,
        cursor=st.cursor,
        expiration=st.expiration,
        last_pull_ts=st.last_pull_ts,
        continuous_since_ts=st.continuous_since_ts,
        broken_since_ts=st.broken_since_ts,
        broken_reason=st.broken_reason,
        gaps=tuple(state.gaps(journal, base)),
    )


def _listed(gw: Gateway) -> dict[str, dict[str, Any]]:
    answer = gw.api.request("get", _url(gw))
    return {str(w.get("id")): w for w in (answer or {}).get("webhooks", []) if isinstance(w, dict)}


def enable(gw: Gateway, journal: Journal, tables: list[str], notification_url: str | None = None) -> Status:
    """Register the base's webhook once (a second call finds it and refreshes it); returns the status."""
    base = gw.base_id
    st = state.load(journal, base)
    if st is not None:
        hook = _listed(gw).get(st.webhook_id)
        if hook is not None and hook.get("isHookEnabled", True):
            refresh(gw, journal)
            return status(journal, base)
        # gone or disabled at Airtable's end: a new one, and everything before it is a gap
    body: dict[str, Any] = {"specification": SPEC}
    if notification_url:
        body["notificationUrl"] = notification_url
    created = gw.api.request("post", _url(gw), json=body)
    webhook_id, secret = str(created["id"]), str(created["macSecretBase64"])
    state.save_new(journal, base, webhook_id, secret, created.get("expirationTime"), tables)
    if st is not None:  # replaced a broken one: what happened in between is not in any payload
        _forget_all(gw, journal, tables, "the feed was re-enabled after it broke")
    log.info("feed enabled", extra={"base": base, "webhook": webhook_id})
    return status(journal, base)


def refresh(gw: Gateway, journal: Journal) -> Status:
    """Extend the webhook's life (Airtable: 7 days from now)."""
    st = _require(journal, gw.base_id)
    answer = gw.api.request("post", _url(gw, st.webhook_id, "refresh"))
    state.set_expiration(journal, gw.base_id, (answer or {}).get("expirationTime"))
    return status(journal, gw.base_id)


def disable(gw: Gateway, journal: Journal) -> bool:
    """Delete the webhook at Airtable and forget the feed; False when there was none."""
    st = state.load(journal, gw.base_id)
    if st is None:
        return False
    try:
        gw.api.request("delete", _url(gw, st.webhook_id))
    except errors.NotFound:
        pass  # already gone at Airtable's end
    state.forget(journal, gw.base_id)
    return True


def _require(journal: Journal, base: str) -> state.FeedState:
    st = state.load(journal, base)
    if st is None:
        raise errors.BadInput(f"no change feed for base {base}", hint="enable it with: beststag feed enable")
    return st


def _forget_all(gw: Gateway, journal: Journal, tables: list[str] | tuple[str, ...], reason: str) -> dict[str, str]:
    for t in tables:
        gw.outside_change(Change.table_may_have_changed(gw.base_id, t, "feed"))
    state.mark_gaps(journal, gw.base_id, set(tables), reason)
    return dict.fromkeys(tables, reason)


@contextlib.contextmanager
def _pull_lock(gw: Gateway, wait: float = 0) -> Iterator[bool]:
    """Hold `<locks>/feed-<base>.lock` if free within `wait` seconds (True), else yield False."""
    from filelock import FileLock, Timeout

    from ..fsutil import check_safe_path, ensure_private_dir

    locks = gw.settings.paths.locks
    ensure_private_dir(locks)
    path = check_safe_path(locks / f"feed-{gw.base_id}.lock")  # filelock truncates a link's target
    lock = FileLock(str(path), timeout=wait, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def pull(gw: Gateway, journal: Journal, schema: BaseSchema, *, max_pages: int = 40, wait: float = 0) -> PullResult:
    """Read every payload since the stored cursor (at most `max_pages` pages) into the change sink.

    One pull of a base at a time, across processes: a second one waits up to `wait` seconds, then returns
    (`skipped`). A ping's pull waits: the running one may have read its page before the pinged payload."""
    with _pull_lock(gw, wait) as held:
        if not held:
            return PullResult(gw.base_id, skipped=True)
        return _pull(gw, journal, schema, max_pages)


#: within this long of the expiry we last heard of, a pull first asks Airtable whether the webhook lives
EXPIRY_CHECK_S = 86400.0


def _expired(gw: Gateway, journal: Journal, st: state.FeedState) -> str | None:
    """Why the webhook no longer records changes, or None. An expired webhook still serves its past
    payloads (for 7 more days) but records nothing new: an empty page would read as "nothing changed".
    Listing payloads extends its life, so the expiry we stored is a lower bound; near it (a day's
    margin for clock skew) a pull asks Airtable (one request) and stores what it says."""
    exp = _instant(st.expiration)
    if exp is None or clock.timestamp() < exp - EXPIRY_CHECK_S:
        return None
    hook = _listed(gw).get(st.webhook_id)
    if hook is None:
        return "the webhook no longer exists at Airtable (expired or deleted)"
    if hook.get("isHookEnabled") is False:
        return f"the webhook expired at {hook.get('expirationTime') or st.expiration} (refresh it daily: feed refresh)"
    state.set_expiration(journal, gw.base_id, hook.get("expirationTime") or st.expiration)
    return None


def _instant(ts: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else None
    except ValueError:
        return None


def _pull(gw: Gateway, journal: Journal, schema: BaseSchema, max_pages: int) -> PullResult:
    base = gw.base_id
    st = _require(journal, base)
    out = PullResult(base, cursor=st.cursor)
    tables = list(st.tables) or [t.name for t in schema.tables]
    cursor = st.cursor
    dead = _expired(gw, journal, st)
    if dead is not None:
        state.set_broken(journal, base, dead)
        out.gaps.update(_forget_all(gw, journal, tables, dead))
        return out
    while True:
        try:
            page = gw.api.request("get", _url(gw, st.webhook_id, "payloads"), params={"cursor": cursor, "limit": PAGE})
        except errors.NotFound:
            state.set_broken(journal, base, "the webhook no longer exists at Airtable (expired or deleted)")
            out.gaps.update(_forget_all(gw, journal, tables, "the webhook is gone"))
            return out
        out.pages += 1
        page = page if isinstance(page, dict) else {}
        raw_payloads = page.get("payloads", [])
        payloads = [p for p in raw_payloads if isinstance(p, dict)] if isinstance(raw_payloads, list) else []
        next_cursor = page.get("cursor", cursor + len(payloads))
        if isinstance(next_cursor, bool) or not isinstance(next_cursor, int) or next_cursor < cursor:
            # not Airtable's cursor model (a cursor only grows): nothing of this page can be trusted
            why = f"Airtable answered an unusable cursor {next_cursor!r}"
            state.log_marks(journal, base, [_gap_row(cursor, why)])
            out.gaps.update(_forget_all(gw, journal, tables, why))
            return out
        log: list[state.LogRow] = []  # the record log (incremental backups): what each payload named
        if next_cursor > cursor + len(payloads):
            why = f"payloads {cursor + len(payloads)}–{next_cursor - 1} are no longer kept by Airtable"
            log.append(_gap_row(next_cursor - 1, why))
            out.gaps.update(_forget_all(gw, journal, tables, why))
        activity: list[tuple[Any, ...]] = []
        for number, p in enumerate(payloads, start=cursor):
            out.payloads += 1
            named = touched(p)
            if named is None:
                log.append(_gap_row(number, f"payload {number} reports lost changes or cannot be read"))
            else:
                log += [(tid, rid, number, kind, None) for tid, rid, kind in named]
            t = translate(p, schema)
            hour = _hour(t.timestamp)
            for ch in t.changes:
                if not gw.outside_change(ch):
                    t.unknown_tables.add(ch.table)
                    continue
                out.changes += 1
                out.records += len(ch.record_ids)
            for table_name, counted in t.activity.items():  # what happened, applied record by record or not
                for kind, n in counted.items():
                    if n:
                        activity.append((hour, base, table_name, kind, t.source or "unknown", t.user_id or "", n))
            if t.lost:  # changes were lost (an error payload) or the payload cannot be read: a gap
                why = f"payload error {t.error_code}" if t.error_code else "a payload could not be read"
                out.gaps.update(_forget_all(gw, journal, sorted(t.unknown_tables), why))
            else:  # changes that happened but cannot be applied record by record: forgetting is exact
                for name in sorted(t.unknown_tables):
                    if not gw.outside_change(Change.table_may_have_changed(base, name, "feed")):
                        out.gaps.update(_forget_all(gw, journal, [name], "the cache could not forget a changed table"))
        state.advance(journal, base, next_cursor, activity, log)
        cursor = out.cursor = next_cursor
        if page.get("mightHaveMore") is not True:
            break
        if out.pages >= max_pages:
            out.gaps.update(_forget_all(gw, journal, tables, f"backlog longer than {max_pages} pages (read next pull)"))
            return out
    if not out.gaps:
        if st.broken_since_ts is not None:
            state.set_broken(journal, base, None)
        now = state.load(journal, base)
        if state.gaps(journal, base) or (now is not None and now.continuous_since_ts is None):
            state.heal(journal, base)
            out.healed = True
    return out


def _gap_row(payload: int, why: str) -> state.LogRow:
    """A base-wide gap in the record log: payloads up to `payload` may have named records it lacks."""
    return (state.ALL_TABLES, state.GAP, payload, "gap", why)


def _hour(ts: str | None) -> float:
    from datetime import datetime

    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else clock.timestamp()
    except ValueError:
        t = clock.timestamp()
    return t - t % 3600
