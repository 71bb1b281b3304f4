"""QuerySpec: the query a workflow sends (table, filters, fields, sort, maxRecords, pageSize, view).

Import-light on purpose (pydantic and the stdlib only): the cache builds keys from a spec on its
hit path, where importing pyairtable (~280 ms) is not allowed. `QuerySpec.parse(data)` turns any
validation problem into one `BadInput` line.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..errors import BadInput, FilterError
from ..inputs import check_text
from ..names import did_you_mean
from .filters import Node, parse_filters
from .request import load_filter_json as load_filter_json  # the CLI's filter text, read in one place
from .request import sort_item

SPEC_KEYS = ("table", "filters", "fields", "sort", "maxRecords", "pageSize", "view")
#: keys of the cache webhook body that are not part of the query
WEBHOOK_ONLY_KEYS = ("operation", "recordId", "cacheTTL")


class SortSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1)
    direction: Literal["asc", "desc"] = "asc"

    @classmethod
    def from_cli(cls, text: str) -> SortSpec:
        """`timestamp` → asc, `-timestamp` → desc."""
        return cls(**sort_item(text))

    def option(self) -> str:
        """pyairtable's sort option form."""
        return ("-" if self.direction == "desc" else "") + self.field


class QuerySpec(BaseModel):
    """A list-records query. `filters` is kept as given (JSON); `tree` is its parsed form."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    table: str = Field(min_length=1)
    filters: Any = None
    fields: list[str] | None = None
    sort: list[SortSpec] = Field(default_factory=list)
    max_records: int | None = Field(default=None, alias="maxRecords", ge=1, le=1_000_000)
    page_size: int | None = Field(default=None, alias="pageSize", ge=1, le=100)
    view: str | None = None

    _tree: Node | None = PrivateAttr(default=None)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [x for x in (p.strip() for p in v.split(",")) if x]
        if isinstance(v, list) and not v:
            return None  # the webhook's `"fields": []` means every field
        return v

    @field_validator("sort", mode="before")
    @classmethod
    def _sort(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [SortSpec.from_cli(x) if isinstance(x, str) else x for x in v]
        return v

    @field_validator("view", mode="before")
    @classmethod
    def _view(cls, v: Any) -> Any:
        return None if v == "" else v

    @model_validator(mode="after")
    def _parse_tree(self) -> QuerySpec:
        self._tree = parse_filters(self.filters)
        return self

    @property
    def tree(self) -> Node:
        assert self._tree is not None
        return self._tree

    def needed_fields(self) -> list[str] | None:
        """Fields to request: the selection plus the sort fields (the cache re-sorts with them)."""
        if self.fields is None:
            return None
        out = list(dict.fromkeys(self.fields))
        for s in self.sort:
            if s.field not in out:
                out.append(s.field)
        return out

    def describe(self) -> str:
        """The query as the `cache get` options that ask it (`--filter '{...}' --fields a,b --sort -t --max 50`).

        What an operator reads in `cache warm` instead of a sha256 key, and can paste back.
        """
        import json

        parts: list[str] = []
        if self.filters is not None:
            parts.append(f"--filter '{json.dumps(self.filters, ensure_ascii=False)}'")
        if self.fields is not None:
            parts.append("--fields " + ",".join(self.fields))
        parts.extend(f"--sort {s.option()}" for s in self.sort)
        if self.max_records is not None:
            parts.append(f"--max {self.max_records}")
        if self.view is not None:
            parts.append(f"--view {json.dumps(self.view, ensure_ascii=False)}")
        return " ".join(parts) or "(every record)"

    def to_json(self) -> dict[str, Any]:
        """The spec in the webhook's JSON shape (camelCase keys, unset keys left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json") | {
            "table": self.table
        }

    @classmethod
    def parse(cls, data: Any) -> QuerySpec:
        """Validate a dict (e.g. a webhook body's query keys); every problem is one BadInput line."""
        if not isinstance(data, dict):
            raise BadInput(f"a query must be a JSON object, got {type(data).__name__}")
        check_text(data, "the query")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise _one_line(e) from None

    @classmethod
    def from_webhook(cls, body: Any) -> QuerySpec:
        """The query part of a cache webhook body (`operation`, `recordId`, `cacheTTL` set aside)."""
        if not isinstance(body, dict):
            raise BadInput(f"the body must be a JSON object, got {type(body).__name__}")
        return cls.parse({k: v for k, v in body.items() if k not in WEBHOOK_ONLY_KEYS})


def _one_line(e: ValidationError) -> BadInput:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "query"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        return BadInput(
            f"unknown query key {key!r}{did_you_mean(key, SPEC_KEYS)}", hint="query keys: " + ", ".join(SPEC_KEYS)
        )
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, FilterError):
        return cause
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    shown = json.dumps(got, ensure_ascii=False, default=str) if not isinstance(got, dict) else "{...}"
    return BadInput(f"query {loc}: {msg} (got {shown[:80]})")
