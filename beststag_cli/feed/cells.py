"""Webhook cell values → the REST cell values the cache holds.

Airtable's webhook payloads use a second cell format for some types (its field-model reference:
"Webhooks have different cell payloads for some cell types"): a single select is an object
`{id, name, color}` instead of the choice name, multiple selects a list of such objects, a link a
list of `{id, name}` instead of record ids, a lookup `{valuesByLinkedRecordId, linkedRecordIds}`
instead of the flat list. Every other type is the same in both formats. Values already in the REST
shape pass unchanged, so a payload in either format reads the same.
"""

from __future__ import annotations

from typing import Any


def _name(v: Any) -> Any:
    return v.get("name") if isinstance(v, dict) else v


def _rid(v: Any) -> Any:
    return v.get("id") if isinstance(v, dict) else v


def rest_value(field_type: str, value: Any) -> Any:
    """The REST form of a webhook cell `value` of a field of `field_type`."""
    if value is None:
        return None
    if field_type == "singleSelect":
        return _name(value)
    if field_type == "multipleSelects" and isinstance(value, list):
        return [_name(v) for v in value]
    if field_type == "multipleRecordLinks" and isinstance(value, list):
        return [_rid(v) for v in value]
    if field_type == "multipleLookupValues" and isinstance(value, dict):
        by_id = value.get("valuesByLinkedRecordId") or {}
        out: list[Any] = []
        for rid in value.get("linkedRecordIds") or list(by_id):
            vals = by_id.get(rid)
            out.extend(vals if isinstance(vals, list) else [] if vals is None else [vals])
        return out
    return value


def blank(value: Any) -> bool:
    """Airtable omits these from REST answers (the cache compares records as Airtable returns them)."""
    return value is None or value is False or value == "" or value == [] or value == {}
