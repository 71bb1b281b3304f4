"""Cell values per field type: validating writes (with `typecast`), JSON for reads, formula values.

Stored cells are JSON values keyed by field id. Empty values are never stored: Airtable omits
`""`, `[]`, `false` and null from every response, so the store drops them on write.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cellformat import render as render_cell
from .schema import COMPUTED_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef, is_id
from .users import find_user


class CellError(Exception):
    """A cell value the field cannot accept; becomes a 422 with Airtable's type and message."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


class WriteContext(Protocol):
    """What validation needs from the store."""

    def link_target_exists(self, table_id: str, record_id: str) -> bool: ...
    def find_by_primary(self, table_id: str, text: str) -> str | None: ...
    def create_by_primary(self, table_id: str, text: str) -> str: ...
    def attachment_from_url(self, url: str, filename: str | None) -> dict[str, Any]: ...
    def add_choice(self, field: FieldDef, name: str) -> None: ...


EMPTY = object()  # marker: the cell is cleared


def _cannot(field: FieldDef) -> CellError:
    return CellError("INVALID_VALUE_FOR_COLUMN", f'Field "{field.name}" cannot accept the provided value')


def _cannot_parse(field: FieldDef, value: Any) -> CellError:
    return CellError("INVALID_VALUE_FOR_COLUMN", f'Cannot parse value "{value}" for field {field.name}')


def _zone(name: str | None) -> ZoneInfo:
    if not name or name in ("utc", "client"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_instant(dt: datetime) -> str:
    """Airtable's dateTime wire format: UTC with milliseconds."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant(text: str, tz: ZoneInfo | None = None) -> datetime:
    """Parse an ISO date or datetime; zone-less values are read in `tz` (default UTC)."""
    s = text.strip()
    if not s:
        raise ValueError("empty")
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    if len(s) == 10:
        d = date.fromisoformat(s)
        return datetime.combine(d, time(), tzinfo=tz or UTC).astimezone(UTC)
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz or UTC)
    return dt.astimezone(UTC)


def _text(field: FieldDef, value: Any, typecast: bool) -> Any:
    if isinstance(value, str):
        if field.type == "singleLineText":
            value = value.replace("\r\n", " ").replace("\n", " ")
        return value if value != "" else EMPTY
    if typecast and isinstance(value, (int, float, bool)):
        return _num_text(value)
    if typecast and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or EMPTY
    raise _cannot(field)


def _num_text(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(field: FieldDef, value: Any, typecast: bool) -> Any:
    if isinstance(value, bool):
        if typecast:
            return 1 if value else 0
        raise _cannot(field)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _cannot(field)
        return value
    if typecast and isinstance(value, str):
        s = value.strip().replace(",", "")
        if s == "":
            return EMPTY
        if s.endswith("%") and field.type == "percent":
            s = s[:-1]
            try:
                return float(s) / 100
            except ValueError:
                raise _cannot_parse(field, value) from None
        try:
            n = float(s)
        except ValueError:
            raise _cannot_parse(field, value) from None
        return int(n) if n.is_integer() and "." not in s else n
    raise _cannot(field)


_TRUE_WORDS = {"true", "1", "yes", "y", "checked", "x", "on", "sim"}


def _checkbox(field: FieldDef, value: Any, typecast: bool) -> Any:
    if isinstance(value, bool):
        return True if value else EMPTY
    if typecast:
        if isinstance(value, str):
            return True if value.strip().lower() in _TRUE_WORDS else EMPTY
        if isinstance(value, (int, float)):
            return True if value else EMPTY
    raise _cannot(field)


def _choice(field: FieldDef, name: Any, typecast: bool, ctx: WriteContext) -> str:
    if not isinstance(name, str):
        if typecast and isinstance(name, (int, float)):
            name = _num_text(name)
        else:
            raise _cannot(field)
    names = field.choice_names()
    if name in names:
        return name
    for c in (field.options or {}).get("choices", []):
        if c.get("id") == name:
            return str(c["name"])
    if typecast:
        ctx.add_choice(field, name)
        return name
    raise CellError(
        "INVALID_MULTIPLE_CHOICE_OPTIONS", f'Insufficient permissions to create new select option ""{name}""'
    )


def _single_select(field: FieldDef, value: Any, typecast: bool, ctx: WriteContext) -> Any:
    if value == "":
        return EMPTY
    return _choice(field, value, typecast, ctx)


def _multi_select(field: FieldDef, value: Any, typecast: bool, ctx: WriteContext) -> Any:
    if typecast and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise _cannot(field)
    out: list[str] = []
    for v in value:
        c = _choice(field, v, typecast, ctx)
        if c not in out:
            out.append(c)
    return out or EMPTY


def _date(field: FieldDef, value: Any, typecast: bool) -> Any:
    if not isinstance(value, str):
        raise _cannot(field)
    if value.strip() == "":
        return EMPTY
    try:
        if len(value.strip()) == 10:
            return date.fromisoformat(value.strip()).isoformat()
        return parse_instant(value).date().isoformat()
    except ValueError:
        if typecast:
            from dateutil import parser as dparser  # lazy: only typecast needs free-form dates

            try:
                return dparser.parse(value).date().isoformat()
            except (ValueError, OverflowError):
                pass
        raise _cannot_parse(field, value) from None


def _datetime(field: FieldDef, value: Any, typecast: bool) -> Any:
    if not isinstance(value, str):
        raise _cannot(field)
    if value.strip() == "":
        return EMPTY
    tz = _zone((field.options or {}).get("timeZone"))
    try:
        return format_instant(parse_instant(value, tz))
    except ValueError:
        if typecast:
            from dateutil import parser as dparser

            try:
                dt = dparser.parse(value)
                return format_instant(dt if dt.tzinfo else dt.replace(tzinfo=tz))
            except (ValueError, OverflowError):
                pass
        raise _cannot_parse(field, value) from None


def _links(field: FieldDef, value: Any, typecast: bool, ctx: WriteContext) -> Any:
    target = (field.options or {})["linkedTableId"]
    if typecast and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise CellError("INVALID_VALUE_FOR_COLUMN", "Value is not an array of record IDs.")
    out: list[str] = []
    for v in value:
        if isinstance(v, dict) and isinstance(v.get("id"), str):
            v = v["id"]
        if not isinstance(v, str):
            raise CellError("INVALID_VALUE_FOR_COLUMN", "Value is not an array of record IDs.")
        if is_id(v, "rec"):
            if not ctx.link_target_exists(target, v):
                raise CellError("ROW_DOES_NOT_EXIST", f"Record ID {v} does not exist")
            rid = v
        elif typecast:
            rid = ctx.find_by_primary(target, v) or ctx.create_by_primary(target, v)
        else:
            raise CellError("INVALID_VALUE_FOR_COLUMN", f'Value "{v}" is not a valid record ID.')
        if rid not in out:
            out.append(rid)
    if (field.options or {}).get("prefersSingleRecordLink") and len(out) > 1 and not typecast:
        pass  # Airtable accepts several links even when the UI prefers one
    return out or EMPTY


def _attachments(field: FieldDef, value: Any, current: Any, ctx: WriteContext) -> Any:
    if not isinstance(value, list):
        raise _cannot(field)
    existing = {a["id"]: a for a in (current or [])}
    out: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _cannot(field)
        if "id" in item and item["id"] in existing:
            kept = dict(existing[item["id"]])
            if isinstance(item.get("filename"), str):
                kept["filename"] = item["filename"]
            out.append(kept)
        elif isinstance(item.get("url"), str):
            out.append(ctx.attachment_from_url(item["url"], item.get("filename")))
        else:
            raise _cannot(field)
    return out or EMPTY


def _collaborator(field: FieldDef, value: Any) -> dict[str, str]:
    """Stored as the `{id, email, name}` Airtable answers (the user list is fixed), so reads copy nothing."""
    user = find_user(value)
    if user is None:
        # ❓ Airtable's exact answer for an unknown collaborator is not in the reference; the
        # generic refusal of a cell value is the closest documented one.
        raise _cannot(field)
    return dict(user)


def _collaborators(field: FieldDef, value: Any) -> Any:
    if field.type == "singleCollaborator":
        return _collaborator(field, value)
    if not isinstance(value, list):
        raise _cannot(field)
    out: list[dict[str, str]] = []
    for v in value:
        user = _collaborator(field, v)
        if user not in out:
            out.append(user)
    return out or EMPTY


def _barcode(field: FieldDef, value: Any, typecast: bool) -> Any:
    """`{"text", "type"?}` as pyairtable's BarcodeDict; typecast also takes the bare text."""
    if typecast and isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise _cannot(field)
    if "type" in value and value["type"] is not None and not isinstance(value["type"], str):
        raise _cannot(field)
    if value["text"] == "":
        return EMPTY
    return {k: value[k] for k in ("text", "type") if value.get(k) is not None}


def validate_cell(field: FieldDef, value: Any, *, typecast: bool, ctx: WriteContext, current: Any = None) -> Any:
    """Turn a written value into its stored form, or EMPTY; raise CellError when refused."""
    if field.type in COMPUTED_TYPES:
        raise CellError(
            "INVALID_VALUE_FOR_COLUMN", f'Field "{field.name}" cannot accept a value because the field is computed'
        )
    if value is None:
        return EMPTY
    t = field.type
    if t in TEXT_TYPES:
        return _text(field, value, typecast)
    if t in NUMBER_TYPES:
        return _number(field, value, typecast)
    if t == "checkbox":
        return _checkbox(field, value, typecast)
    if t == "singleSelect":
        return _single_select(field, value, typecast, ctx)
    if t == "multipleSelects":
        return _multi_select(field, value, typecast, ctx)
    if t == "date":
        return _date(field, value, typecast)
    if t == "dateTime":
        return _datetime(field, value, typecast)
    if t == "multipleRecordLinks":
        return _links(field, value, typecast, ctx)
    if t == "multipleAttachments":
        return _attachments(field, value, current, ctx)
    if t in ("singleCollaborator", "multipleCollaborators"):
        return _collaborators(field, value)
    if t == "barcode":
        return _barcode(field, value, typecast)
    raise _cannot(field)


# ---------------------------------------------------------------- formula values


def formula_value(field: FieldDef, stored: Any) -> Any:
    """Formula value of a stored (non-link, non-lookup) cell, per the formula engine's value model."""
    t = field.type
    if stored is None:
        return None  # an unchecked checkbox is blank too
    if t == "date":
        return datetime.fromisoformat(stored).replace(tzinfo=UTC)
    if t in ("dateTime", "createdTime", "lastModifiedTime"):
        return parse_instant(stored)
    if t == "multipleAttachments":
        return [f"{a.get('filename', '')} ({a.get('url', '')})" for a in stored]
    if t == "multipleSelects":
        return list(stored)
    return stored


def string_cell(field: FieldDef, value: Any, tz: ZoneInfo, user_locale: str | None = None) -> str | None:
    """cellFormat=string rendering (Airtable says its format is not stable): cellformat.py."""
    if value is None:
        return None
    return render_cell(field, value, tz, user_locale)
