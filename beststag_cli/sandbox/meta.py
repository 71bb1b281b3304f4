"""The metadata API's write endpoints and base info (`/v0/meta/bases…`), hooked from `app.py`.

Request shapes follow pyairtable 3.5.1 (`Workspace.create_base`, `Base.create_table`, `Table.create_field`,
`TableSchema.save`, `FieldSchema.save`, `Base.collaborators`); answer shapes follow its pydantic models
(`models/schema.py`: TableSchema, FieldSchema, BaseCollaborators) and Airtable's create-base/create-table/
create-field/update-table/update-field pages. Validation and errors live in `schema_doc.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .. import clock
from .fields import format_instant
from .schema import BaseDef, FieldDef, TableDef, is_id, new_id
from .schema_doc import MAX_DESCRIPTION, field_from_request, finish_links, table_from_request, wire_link
from .store import ApiError, SandboxStore, invalid_request, not_found, not_permitted

SANDBOX_USER_ID = "usrSandboxUser000"  # the token's user (GET /v0/meta/whoami answers it)
SANDBOX_USER_EMAIL = "sandbox@beststag.local"
SANDBOX_WORKSPACE_ID = "wspSandboxWrkspc0"  # bases not made through POST /v0/meta/bases live here


def dispatch(
    store: SandboxStore, method: str, seg: list[str], query: list[tuple[str, str]], body: Callable[[], Any]
) -> Any:
    """Answer a `/v0/meta/bases/…` request this module serves; `not_found()` for any other path."""
    rest = seg[2:]
    if rest == ["bases"] and method == "POST":
        return create_base(store, body())
    if len(rest) == 2 and rest[0] == "bases" and method == "GET":
        return base_info(store, rest[1], query)
    if len(rest) == 3 and rest[0] == "bases" and rest[2] == "tables" and method == "POST":
        return create_table(store, rest[1], body())
    if len(rest) == 4 and rest[0] == "bases" and rest[2] == "tables" and method == "PATCH":
        return update_table(store, rest[1], rest[3], body())
    if len(rest) == 5 and rest[0] == "bases" and rest[2] == "tables" and rest[4] == "fields" and method == "POST":
        return create_field(store, rest[1], rest[3], body())
    if len(rest) == 6 and rest[0] == "bases" and rest[2] == "tables" and rest[4] == "fields" and method == "PATCH":
        return update_field(store, rest[1], rest[3], rest[5], body())
    raise not_found()


# ---------------------------------------------------------------------------- bases


def create_base(store: SandboxStore, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - {"name", "workspaceId", "tables"}:
        raise invalid_request()
    name, wsp, tables = body.get("name"), body.get("workspaceId"), body.get("tables")
    if not isinstance(name, str) or not name.strip() or not isinstance(tables, list) or not tables:
        raise invalid_request()
    if not is_id(wsp, "wsp"):
        # an unknown workspace is a model the token cannot see
        raise not_permitted()
    rng = random.Random()
    base = BaseDef(new_id("app", rng), name.strip(), [])
    made: list[TableDef] = []
    for tb in tables:
        made.append(table_from_request(tb, base, rng, others=made))
    base.tables = made
    finish_links(base, made, rng)
    info = {"workspaceId": wsp, "createdTime": format_instant(clock.now())}
    store.insert_base(base, info=info)
    # Airtable answers the new base's id and its tables (the table model, fields included)
    return {"id": base.id, "tables": [t.to_meta() for t in base.tables]}


def base_info(store: SandboxStore, base_id: str, query: list[tuple[str, str]]) -> dict[str, Any]:
    """`GET /v0/meta/bases/{id}` — the shape of pyairtable's BaseCollaborators (one collaborator: the
    token's user, who created the base)."""
    if not store.has_base(base_id):
        raise not_permitted()
    b = store.base_def(base_id)
    extra = store.base_info(base_id)
    created = str(extra.get("createdTime") or "2024-01-01T00:00:00.000Z")
    include = {v for k, v in query if k in ("include", "include[]")}
    if include - {"collaborators", "inviteLinks", "interfaces"} or {k for k, _ in query} - {"include", "include[]"}:
        raise invalid_request()
    out: dict[str, Any] = {
        "id": b.id,
        "name": b.name,
        "createdTime": created,
        "permissionLevel": "create",
        "workspaceId": str(extra.get("workspaceId") or SANDBOX_WORKSPACE_ID),
    }
    if "collaborators" in include:
        out["groupCollaborators"] = {"baseCollaborators": [], "workspaceCollaborators": []}
        out["individualCollaborators"] = {
            "baseCollaborators": [],
            "workspaceCollaborators": [
                {
                    "userId": SANDBOX_USER_ID,
                    "email": SANDBOX_USER_EMAIL,
                    "permissionLevel": "owner",
                    "createdTime": created,
                    "grantedByUserId": SANDBOX_USER_ID,
                }
            ],
        }
    if "inviteLinks" in include:
        out["inviteLinks"] = {"baseInviteLinks": [], "workspaceInviteLinks": []}
    if "interfaces" in include:
        out["interfaces"] = {}
    return out


# ---------------------------------------------------------------------------- tables


def _table(b: BaseDef, table: str) -> TableDef:
    t = b.table(table)
    if t is None:
        raise not_permitted()
    return t


def create_table(store: SandboxStore, base_id: str, body: Any) -> dict[str, Any]:
    def op(b: BaseDef, rng: random.Random) -> dict[str, Any]:
        t = table_from_request(body, b, rng)
        b.tables.append(t)
        finish_links(b, [t], rng)
        return t.to_meta()

    return store.alter_schema(base_id, op)


def update_table(store: SandboxStore, base_id: str, table: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body or set(body) - {"name", "description"}:
        raise invalid_request()

    def op(b: BaseDef, rng: random.Random) -> dict[str, Any]:
        t = _table(b, table)
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise invalid_request()
            name = name.strip()
            if any(o.name.lower() == name.lower() and o.id != t.id for o in b.tables):
                raise ApiError(422, "DUPLICATE_TABLE_NAME", f"A table named {name!r} already exists in this base")
            t.name = name
        if "description" in body:
            t.description = _description(body["description"])
        return t.to_meta()

    return store.alter_schema(base_id, op)


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise invalid_request()
    return value or None


# ---------------------------------------------------------------------------- fields


def create_field(store: SandboxStore, base_id: str, table: str, body: Any) -> dict[str, Any]:
    def op(b: BaseDef, rng: random.Random) -> dict[str, Any]:
        t = _table(b, table)
        f = field_from_request(body, t.name, t.fields, b, rng)
        t.fields.append(f)
        if f.type == "multipleRecordLinks":
            wire_link(b, t, f, rng)
        t.reindex()
        return f.to_meta()

    return store.alter_schema(base_id, op)


def update_field(store: SandboxStore, base_id: str, table: str, field_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body or set(body) - {"name", "description"}:
        raise invalid_request()

    def op(b: BaseDef, rng: random.Random) -> dict[str, Any]:
        t = _table(b, table)
        f: FieldDef | None = t._by_id.get(field_id)
        if f is None:
            raise not_permitted()
        if "name" in body:
            name = body["name"]
            if (
                not isinstance(name, str)
                or not name.strip()
                or any(o.name.lower() == name.strip().lower() and o.id != f.id for o in t.fields)
            ):
                raise ApiError(
                    422,
                    "DUPLICATE_OR_EMPTY_FIELD_NAME",
                    f"Field name {name!r} is empty or already used by another field in {t.name}",
                )
            f.name = name.strip()
        if "description" in body:
            f.description = _description(body["description"])
        return f.to_meta()

    return store.alter_schema(base_id, op)
