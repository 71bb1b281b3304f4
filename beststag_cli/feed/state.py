"""The feed's state in the journal (migration m005_feed): one webhook per base, its cursor, its gaps.

The MAC secret lives here and nowhere else (the journal is a 0600 file in the 0700 data dir); it is
never logged, printed or put in `--json`: `FeedState` does not show it in its repr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..journal import Journal


@dataclass(frozen=True)
class Gap:
    table: str
    since_ts: float
    reason: str


@dataclass(frozen=True)
class FeedState:
    base: str
    webhook_id: str
    mac_secret: str = field(repr=False)
    cursor: int
    expiration: str | None
    tables: tuple[str, ...]
    created_ts: float
    last_pull_ts: float | None
    continuous_since_ts: float | None
    broken_since_ts: float | None
    broken_reason: str | None


def load(journal: Journal, base: str) -> FeedState | None:
    r = journal.feed_row(base)
    if r is None:
        return None
    return FeedState(
        base=r["base"],
        webhook_id=r["webhook_id"],
        mac_secret=r["mac_secret"],
        cursor=int(r["cursor"]),
        expiration=r["expiration"],
        tables=tuple(json.loads(r["tables"])),
        created_ts=float(r["created_ts"]),
        last_pull_ts=r["last_pull_ts"],
        continuous_since_ts=r["continuous_since_ts"],
        broken_since_ts=r["broken_since_ts"],
        broken_reason=r["broken_reason"],
    )


def save_new(
    journal: Journal, base: str, webhook_id: str, secret: str, expiration: str | None, tables: list[str]
) -> None:
    now = clock.timestamp()
    journal.write_many(
        [
            ("DELETE FROM feed WHERE base = ?", (base,)),
            ("DELETE FROM feed_gaps WHERE base = ?", (base,)),
            ("DELETE FROM feed_records WHERE base = ?", (base,)),  # numbered by the old webhook's payloads
            (
                "INSERT INTO feed (base, webhook_id, mac_secret, cursor, expiration, tables, created_ts,"
                " continuous_since_ts) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                (base, webhook_id, secret, expiration, json.dumps(tables), now, now),
            ),
        ]
    )


def forget(journal: Journal, base: str) -> None:
    journal.write_many(
        [
            ("DELETE FROM feed WHERE base = ?", (base,)),
            ("DELETE FROM feed_gaps WHERE base = ?", (base,)),
            ("DELETE FROM feed_records WHERE base = ?", (base,)),
        ]
    )


def set_expiration(journal: Journal, base: str, expiration: str | None) -> None:
    journal.write("UPDATE feed SET expiration = ? WHERE base = ?", (expiration, base))


#: one row of the record log: (table id, record id or a table-wide mark, payload number, kind, note)
LogRow = tuple[str, str, int, str, str | None]
#: table-wide marks of the record log (their rows' record id; see journal.m006_feed_records)
GAP, FIELDS, PRUNED = "*gap", "*fields", "*pruned"
#: the table id of base-wide marks (a gap in every table, including tables the pull's schema does not know)
ALL_TABLES = "*"

_LOG_UPSERT = (
    "INSERT INTO feed_records (base, table_id, record_id, payload, kind, note) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (base, table_id, record_id) DO UPDATE SET payload = excluded.payload, kind = excluded.kind,"
    " note = excluded.note WHERE excluded.payload >= feed_records.payload"
)


def _log_statements(base: str, rows: list[LogRow]) -> list[tuple[str, Any]]:
    return [(_LOG_UPSERT, (base, *row)) for row in rows]


def advance(
    journal: Journal, base: str, cursor: int, activity: list[tuple[Any, ...]], records: list[LogRow] | None = None
) -> None:
    """The cursor after a page of payloads whose changes were delivered, with the page's activity rows and
    record-log rows (one transaction: a pull killed before it repeats the page and writes the same rows)."""
    statements: list[tuple[str, Any]] = [
        ("UPDATE feed SET cursor = ?, last_pull_ts = ? WHERE base = ?", (cursor, clock.timestamp(), base))
    ]
    statements += _log_statements(base, records or [])
    statements += [
        (
            "INSERT INTO feed_activity (hour_ts, base, table_name, kind, source, user_id, n) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (hour_ts, base, table_name, kind, source, user_id) DO UPDATE SET n = n + excluded.n",
            row,
        )
        for row in activity
    ]
    journal.write_many(statements)


def log_marks(journal: Journal, base: str, rows: list[LogRow]) -> None:
    """Table-wide marks written outside a page's transaction (a page whose cursor cannot be trusted)."""
    journal.write_many(_log_statements(base, rows))


def log_since(journal: Journal, base: str, table_id: str, payload: int) -> list[dict[str, Any]]:
    """The record-log rows of `table_id` for payloads ≥ `payload`, with the table's `*pruned` mark if any."""
    return journal.query(
        "SELECT record_id, payload, kind, note FROM feed_records WHERE base = ? AND table_id IN (?, ?)"
        " AND (payload >= ? OR record_id = ?) ORDER BY payload",
        (base, table_id, ALL_TABLES, payload, PRUNED),
    )


def prune_log(journal: Journal, base: str, table_id: str, below: int) -> None:
    """Forget the rows of payloads before `below` (no backup needs them), leaving a `*pruned` mark."""
    journal.write_many(
        [
            (
                "DELETE FROM feed_records WHERE base = ? AND table_id = ? AND payload < ? AND record_id != ?",
                (base, table_id, below, PRUNED),
            ),
            (
                "INSERT INTO feed_records (base, table_id, record_id, payload, kind, note) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (base, table_id, record_id) DO UPDATE SET payload = MAX(payload, excluded.payload)",
                (base, table_id, PRUNED, below, "pruned", None),
            ),
        ]
    )


def mark_gaps(journal: Journal, base: str, tables: set[str], reason: str) -> None:
    """These tables missed changes: they go back to revalidation until the feed is whole again."""
    now = clock.timestamp()
    journal.write_many(
        [
            (
                "INSERT INTO feed_gaps (base, table_name, since_ts, reason) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (base, table_name) DO NOTHING",
                (base, t, now, reason),
            )
            for t in sorted(tables)
        ]
        + [("UPDATE feed SET continuous_since_ts = NULL WHERE base = ?", (base,))]
    )


def set_broken(journal: Journal, base: str, reason: str | None) -> None:
    """The feed as a whole is broken (expired, disabled, cursor lost) — or whole again (reason None)."""
    if reason is None:
        journal.write("UPDATE feed SET broken_since_ts = NULL, broken_reason = NULL WHERE base = ?", (base,))
    else:
        journal.write(
            "UPDATE feed SET broken_since_ts = COALESCE(broken_since_ts, ?), broken_reason = ? WHERE base = ?",
            (clock.timestamp(), reason, base),
        )


def gaps(journal: Journal, base: str) -> list[Gap]:
    return [Gap(r["table_name"], float(r["since_ts"]), r["reason"]) for r in journal.feed_gaps(base)]


def heal(journal: Journal, base: str) -> None:
    """A full revalidation of the gap tables has made them exact again: the feed covers them from now."""
    now = clock.timestamp()
    journal.write_many(
        [
            ("DELETE FROM feed_gaps WHERE base = ?", (base,)),
            ("UPDATE feed SET continuous_since_ts = ? WHERE base = ?", (now, base)),
        ]
    )
