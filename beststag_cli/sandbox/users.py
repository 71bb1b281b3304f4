"""The sandbox's small user list: who a token is, and whom collaborator fields may name.

Every token the sandbox accepts acts as `DEFAULT_USER` (`GET /v0/meta/whoami`); the other users
exist so that collaborator fields can hold more than one person. Ids follow Airtable's shape
(`usr` + 14 alphanumerics); the emails use the reserved `.test` domain so nothing can be mailed.
"""

from __future__ import annotations

from typing import Any

DEFAULT_USER: dict[str, str] = {"id": "usrSandboxUser000", "email": "sandbox@beststag.test", "name": "Sandbox User"}
USERS: tuple[dict[str, str], ...] = (
    DEFAULT_USER,
    {"id": "usrSandboxAlice00", "email": "alice@beststag.test", "name": "Alice Sandbox"},
    {"id": "usrSandboxBruno00", "email": "bruno@beststag.test", "name": "Bruno Sandbox"},
)
_BY_ID = {u["id"]: u for u in USERS}
_BY_EMAIL = {u["email"].casefold(): u for u in USERS}


def user_by_id(user_id: str) -> dict[str, str] | None:
    return _BY_ID.get(user_id)


def find_user(value: Any) -> dict[str, str] | None:
    """A written collaborator (`{"id"}`, `{"email"}` or, as Airtable also accepts, a bare id) → user."""
    if isinstance(value, str):
        return _BY_ID.get(value) or _BY_EMAIL.get(value.casefold())
    if isinstance(value, dict):
        if isinstance(value.get("id"), str):
            return _BY_ID.get(value["id"])
        if isinstance(value.get("email"), str):
            return _BY_EMAIL.get(value["email"].casefold())
    return None


def user_json(user_id: str | None) -> dict[str, str]:
    """The cell JSON of a user (`{id, email, name}`); an id no longer in the list keeps only its id."""
    if user_id is None:
        return dict(DEFAULT_USER)
    u = _BY_ID.get(user_id)
    return dict(u) if u else {"id": user_id}
