"""The raw form of a `cache get` request, shared by the CLI and its fast path (stdlib only)."""

from __future__ import annotations

import json
from typing import Any


def alias_parts(table: str, record: str | None, filter_: str | None, fields: list[str] | None,
                sort: list[str] | None, max_: int | None, view: str | None) -> dict[str, Any] | None:
    """None when the request cannot be memoised (a malformed filter goes the slow, explaining way)."""
    try:
        flt = json.loads(filter_) if filter_ and filter_.strip() else None
    except ValueError:
        return None
    return {"table": table, "record": record, "filter": flt,
            "fields": [x.strip() for f in fields or [] for x in f.split(",") if x.strip()],
            "sort": list(sort or []), "max": max_, "view": view}
