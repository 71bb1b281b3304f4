"""Checking records given by users (cache set, webhook set) before they are stored."""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadInput

_REC = re.compile(r"^rec[A-Za-z0-9]{14}$")
_RECORD_HINT = 'a record is {"id": "rec…", "createdTime": "…", "fields": {…}}'


def check_records(items: Any, *, single: bool = False) -> list[dict[str, Any]]:
    if single and isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise BadInput(
            "data must be a JSON list of records" + (" (or one record)" if single else ""),
            hint=_RECORD_HINT,
        )
    out = []
    for i, r in enumerate(items, 1):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not _REC.match(r["id"]):
            raise BadInput(
                f'record {i}: needs an "id" like recXXXXXXXXXXXXXX',
                hint=_RECORD_HINT,
            )
        if not isinstance(r.get("fields", {}), dict):
            raise BadInput(f'record {i}: "fields" must be an object')
        out.append({"id": r["id"], "createdTime": str(r.get("createdTime", "")), "fields": dict(r.get("fields", {}))})
    if single and len(out) != 1:
        raise BadInput("--record takes exactly one record in --data")
    return out


def parse_records(text: str, *, single: bool = False) -> list[dict[str, Any]]:
    """`cache set --data` → checked records; malformed or too-deep JSON is one BadInput line (inputs.py's
    reader, as `records create --data` and `--filter`: too-deep JSON used to be a RecursionError, a "bug")."""
    from ..inputs import parse_json_option

    data = parse_json_option(text, "--data", BadInput, _RECORD_HINT)
    return check_records(data, single=single)
