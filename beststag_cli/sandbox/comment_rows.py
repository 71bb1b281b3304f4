"""The comments table of the sandbox file: what the store needs of it (its schema, counts, deletes).

Kept apart from comments.py (the API), which imports the store: the store imports only this module,
so there is no import cycle between them.
"""

from __future__ import annotations

import sqlite3

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS comments (id TEXT PRIMARY KEY, base_id TEXT NOT NULL, record_id TEXT NOT NULL,
                                     seq INTEGER NOT NULL, author TEXT NOT NULL, created TEXT NOT NULL,
                                     updated TEXT, text TEXT NOT NULL, parent TEXT);
CREATE INDEX IF NOT EXISTS comments_by_record ON comments(record_id, seq);
"""


def count(db: sqlite3.Connection, record_id: str) -> int:
    """`commentCount` of a record (inside the store's lock)."""
    row = db.execute("SELECT COUNT(*) FROM comments WHERE record_id=?", (record_id,)).fetchone()
    return int(row[0])


def delete_for_records(db: sqlite3.Connection, record_ids: list[str]) -> None:
    """A deleted record takes its comments with it (inside the store's write transaction)."""
    db.executemany("DELETE FROM comments WHERE record_id=?", [(rid,) for rid in record_ids])
