"""What the change feed knows of a table since a backup: the records to fetch again and the records gone.

An incremental backup used to list every record id of the table to learn of deletions (as many
requests as a full listing). With the feed on, each pull also writes a record log (journal
``feed_records``): per record, the number of the last payload that named it and whether it was
created/updated or destroyed. A backup records the feed's *point* (webhook id and cursor) before it
lists a table; every change its listing did not see is in a payload numbered at or after that point
(a payload already pulled describes a change that had already happened). So an incremental on top of
that backup needs only the log's rows from the parent's point on — after a pull that leaves no
backlog — and no id listing.

It falls back to the listing (and says why, in the manifest) whenever the log may not be whole since
the parent's point: the feed is off or was re-enabled (another webhook, other payload numbers), the
catch-up pull failed or was cut short, a gap (lost payloads, an error payload, an unreadable one, an
unusable cursor) at or after the point, the table's fields or metadata changed, or the log's older
rows were pruned.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import errors
from . import state

if TYPE_CHECKING:
    from ..gateway.api import Gateway
    from ..journal import Journal

_RECORD_ID = re.compile(r"^rec[A-Za-z0-9]{14}$")


@dataclass(frozen=True)
class Point:
    """A position in the feed: payloads before `cursor` of webhook `webhook` are in the record log."""

    webhook: str
    cursor: int


@dataclass(frozen=True)
class RecordChanges:
    """Records named since a point: `upserted` (created or changed: fetch them) and `destroyed`."""

    upserted: frozenset[str]
    destroyed: frozenset[str]


@dataclass(frozen=True)
class CatchUp:
    #: where the feed stands (recorded in every table entry of the backup); None while the feed is off
    point: Point | None
    #: why this run cannot use the log (None: it can)
    reason: str | None


def catch_up(gw: Gateway, journal: Journal, schema: dict[str, Any], *, max_pages: int, wait: float) -> CatchUp:
    """Pull every payload up to now, so that the log holds every change made before this moment.

    `schema`: the metadata API's answer for the base (what the backup stores as schema.json)."""
    from ..query.schema import BaseSchema
    from . import service

    st = state.load(journal, gw.base_id)
    if st is None:
        return CatchUp(None, "the change feed is off")
    reason: str | None = None
    try:
        res = service.pull(gw, journal, BaseSchema.from_json(gw.base_id, schema), max_pages=max_pages, wait=wait)
    except errors.BestStagError as e:
        reason = f"the change feed could not be read ({e.message})"
    except (OSError, sqlite3.Error) as e:  # its lock file or the journal: the backup goes on without the feed
        reason = f"the change feed could not be read ({type(e).__name__}: {str(e)[:120]})"
    else:
        if res.skipped:
            reason = f"another pull of the change feed was still running after {wait:g} s"
        elif res.gaps:
            reason = "the change feed has a gap: " + next(iter(res.gaps.values()))
    now = state.load(journal, gw.base_id)
    if now is None or now.webhook_id != st.webhook_id:  # disabled or replaced meanwhile
        return CatchUp(None, "the change feed was disabled or replaced during the backup")
    return CatchUp(Point(now.webhook_id, now.cursor), reason)


def changes_since(journal: Journal, base: str, table_id: str, parent: Point, now: Point) -> RecordChanges | str:
    """The records of `table_id` named since `parent`, or why the log cannot say (a sentence)."""
    if parent.webhook != now.webhook:
        return "the parent was taken with another webhook (the change feed was re-enabled since)"
    if parent.cursor > now.cursor:
        return f"the parent's feed position {parent.cursor} is after the feed's {now.cursor}"
    latest: dict[str, str] = {}
    for row in state.log_since(journal, base, table_id, parent.cursor):
        rid, payload, kind = str(row["record_id"]), int(row["payload"]), str(row["kind"])
        if rid == state.PRUNED:
            if payload > parent.cursor:
                return f"the feed's record log before payload {payload} was pruned"
            continue
        if rid == state.GAP:
            return f"the change feed has a gap since the parent (payload {payload}: {row['note'] or 'lost'})"
        if rid == state.FIELDS:
            return f"the table's fields or name changed since the parent (payload {payload})"
        if not _RECORD_ID.match(rid):
            return f"the feed named {rid[:40]!r}, which is not a record id"
        latest[rid] = kind  # rows come in payload order: the last kind wins
    return RecordChanges(
        upserted=frozenset(r for r, k in latest.items() if k == "upsert"),
        destroyed=frozenset(r for r, k in latest.items() if k == "destroy"),
    )


def prune(journal: Journal, base: str, table_id: str, below: int) -> None:
    """No backup needs the table's rows of payloads before `below` any more."""
    state.prune_log(journal, base, table_id, below)
