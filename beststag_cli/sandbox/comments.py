"""Record comments: Airtable's comments API (`/v0/{base}/{table}/{record}/comments[/{commentId}]`).

Comments live in their own SQLite table of the sandbox file, read straight from SQLite on every
request (no in-memory mirror: another process's comment is seen at once, and `commentCount` is one
indexed count). Writes go through the store's transactions (`SandboxStore._write`), so a comment and
the record it belongs to never disagree: deleting a record deletes its comments in the same
transaction (comment_rows.py, which the store imports).

Shapes follow Airtable's reference (create-comment / list-comments / update-comment / delete-comment,
https://airtable.com/developers/web/api/create-comment) and pyairtable 3.5.1 `models/comment.py`:
`{id, author: {id, email, name}, createdTime, lastUpdatedTime, text, parentCommentId?, mentioned?}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import clock
from .fields import format_instant
from .schema import new_id
from .store import ApiError, invalid_request, not_found

if TYPE_CHECKING:
    from .store import SandboxStore

#: the token's user, as `GET /v0/meta/whoami` answers it (app.py)
CURRENT_USER_ID = "usrSandboxUser000"
MAX_PAGE_SIZE = 100


#: `@[usrXXXXXXXXXXXXXX]` in a comment's text mentions that user (Airtable's "user mentioned" model)
_MENTION = re.compile(r"@\[(usr[A-Za-z0-9]{14})\]")


def _default_lookup(store: SandboxStore, user_id: str) -> dict[str, str] | None:
    """The sandbox's user list (`users.py`, the same people collaborator fields know)."""
    from .users import find_user

    return find_user(user_id)


#: (store, user id) → {"id", "email", "name"} or None when the sandbox does not know the user
user_lookup: Callable[[SandboxStore, str], dict[str, str] | None] = _default_lookup


def _author(store: SandboxStore, user_id: str) -> dict[str, str]:
    return user_lookup(store, user_id) or {"id": user_id}


def _not_permitted() -> ApiError:
    # Airtable: "API users can only update [delete] comments they have created" (update-comment,
    # delete-comment reference pages); the answer is Airtable's generic permission error
    return ApiError(403, "INVALID_PERMISSIONS", "You are not permitted to perform this operation")


def _comment_json(store: SandboxStore, row: tuple[Any, ...]) -> dict[str, Any]:
    cid, author, created, updated, text, parent = row
    out: dict[str, Any] = {
        "id": cid,
        "author": _author(store, author),
        "createdTime": created,
        "lastUpdatedTime": updated,
        "text": text,
    }
    if parent:
        out["parentCommentId"] = parent
    mentioned: dict[str, Any] = {}
    for uid in _MENTION.findall(text):
        user = user_lookup(store, uid)
        if user is not None:  # an id the sandbox does not know is left as plain text
            mentioned[uid] = {
                "id": uid,
                "type": "user",
                "displayName": user.get("name", ""),
                "email": user.get("email"),
            }
    if mentioned:  # optional in Airtable's answer: absent when nobody is mentioned
        out["mentioned"] = mentioned
    return out


_COLS = "id, author, created, updated, text, parent"


def _check_record(store: SandboxStore, base_id: str, table: str, record_id: str) -> None:
    """The record must be in this table: 404 NOT_FOUND otherwise (an unknown table: the store's 403)."""
    _, t = store._table(base_id, table)
    if record_id not in store._records(t.id):
        raise not_found()


def _text(body: Any, allowed: set[str]) -> str:
    if not isinstance(body, dict) or set(body) - allowed:
        raise invalid_request()
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise invalid_request()
    return text


def _row(store: SandboxStore, record_id: str, comment_id: str) -> tuple[Any, ...]:
    row = store._db.execute(
        f"SELECT {_COLS} FROM comments WHERE id=? AND record_id=?", (comment_id, record_id)
    ).fetchone()
    if row is None:
        raise not_found()
    return tuple(row)


# ---------------------------------------------------------------------------- operations


def list_comments(
    store: SandboxStore, base_id: str, table: str, record_id: str, page_size: int, offset: str | None
) -> dict[str, Any]:
    """Newest first; `offset` resumes after the last page (it names the next comment's position)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise invalid_request()
    start: int | None = None
    if offset is not None:
        if not re.fullmatch(r"[0-9]{1,18}", offset):
            raise ApiError(422, "INVALID_OFFSET_VALUE", f"The value of offset {offset} is invalid")
        start = int(offset)

    def op() -> dict[str, Any]:
        _check_record(store, base_id, table, record_id)
        sql = f"SELECT {_COLS}, seq FROM comments WHERE record_id=?"
        args: list[Any] = [record_id]
        if start is not None:
            sql += " AND seq <= ?"
            args.append(start)
        rows = store._db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, page_size + 1)).fetchall()
        page = [_comment_json(store, tuple(r[:-1])) for r in rows[:page_size]]
        # Airtable answers `offset: null` on the last page (the key is always there)
        nxt = str(rows[page_size][-1]) if len(rows) > page_size else None
        return {"comments": page, "offset": nxt}

    return store._read(op)


def create_comment(
    store: SandboxStore, base_id: str, table: str, record_id: str, body: Any, *, author: str = CURRENT_USER_ID
) -> dict[str, Any]:
    text = _text(body, {"text", "parentCommentId"})
    parent = body.get("parentCommentId")
    if parent is not None and not isinstance(parent, str):
        raise invalid_request()

    def op() -> dict[str, Any]:
        _check_record(store, base_id, table, record_id)
        if parent is not None:
            _row(store, record_id, parent)  # a reply answers a comment of the same record
        seq = store._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM comments").fetchone()[0]
        cid = new_id("com", store._rng)
        row = (cid, author, format_instant(clock.now()), None, text, parent)
        store._db.execute(
            "INSERT INTO comments (id, base_id, record_id, seq, author, created, updated, text, parent)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, base_id, record_id, seq, *row[1:]),
        )
        store._commit(set())
        return _comment_json(store, row)

    return store._write(op)


def update_comment(
    store: SandboxStore,
    base_id: str,
    table: str,
    record_id: str,
    comment_id: str,
    body: Any,
    *,
    user: str = CURRENT_USER_ID,
) -> dict[str, Any]:
    text = _text(body, {"text"})

    def op() -> dict[str, Any]:
        _check_record(store, base_id, table, record_id)
        row = _row(store, record_id, comment_id)
        if row[1] != user:
            raise _not_permitted()
        updated = format_instant(clock.now())
        store._db.execute("UPDATE comments SET text=?, updated=? WHERE id=?", (text, updated, comment_id))
        store._commit(set())
        return _comment_json(store, (row[0], row[1], row[2], updated, text, row[5]))

    return store._write(op)


def delete_comment(
    store: SandboxStore, base_id: str, table: str, record_id: str, comment_id: str, *, user: str = CURRENT_USER_ID
) -> dict[str, Any]:
    def op() -> dict[str, Any]:
        _check_record(store, base_id, table, record_id)
        row = _row(store, record_id, comment_id)
        if row[1] != user:
            raise _not_permitted()
        store._db.execute("DELETE FROM comments WHERE id=?", (comment_id,))
        store._commit(set())
        return {"id": comment_id, "deleted": True}

    return store._write(op)


# ---------------------------------------------------------------------------- HTTP routing


def dispatch(
    store: SandboxStore,
    method: str,
    base_id: str,
    seg: list[str],
    query: list[tuple[str, str]],
    body: Callable[[], Any],
) -> Any:
    """`seg`: the path after the base id — [table, record, "comments"] or [table, record, "comments", id]."""
    table, record_id = seg[0], seg[1]
    if len(seg) == 3:
        if method == "GET":
            page_size, offset = MAX_PAGE_SIZE, None
            for k, v in query:
                if k == "pageSize":
                    if not re.fullmatch(r"[0-9]{1,6}", v):
                        raise invalid_request()
                    page_size = int(v)
                elif k == "offset":
                    offset = v
                else:
                    raise invalid_request()
            return list_comments(store, base_id, table, record_id, page_size, offset)
        if method == "POST":
            return create_comment(store, base_id, table, record_id, body())
    elif len(seg) == 4:
        if method == "PATCH":
            return update_comment(store, base_id, table, record_id, seg[3], body())
        if method == "DELETE":
            return delete_comment(store, base_id, table, record_id, seg[3])
    raise not_found()
