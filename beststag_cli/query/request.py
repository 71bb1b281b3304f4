"""A cache query's raw parameters → the query (stdlib only: the cache-hit fast path imports it).

Three doors take a cache query: `beststag cache get` (cli/cache.py), its Typer-free hit path
(cli/fastpath.py) and the cache webhook (server/app.py). Each used to turn its parameters into the
query its own way; they now all call `query()` (the webhook, whose body is already JSON) or
`from_cli()` (the command line's text forms: filter JSON text, `--fields A,B`, `--sort -FIELD`), so a
request reads the same, fails with the same error and memoises under the same alias whatever the
door. `spec_data()` is what `QuerySpec.parse` validates (pydantic: the full paths only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import FilterError
from ..inputs import check_text, parse_json_option

#: the keys of `query()`'s answer (the QuerySpec keys that change the answer; pageSize does not)
QUERY_KEYS = ("table", "filters", "fields", "sort", "maxRecords", "view")


def load_filter_json(text: str | None) -> Any:
    """The --filter option's text → JSON data; malformed JSON is a FilterError naming the position."""
    if text is None or not text.strip():
        return None
    check_text(text, "--filter")  # the raw text first: a lone surrogate from argv is named by its position
    return parse_json_option(
        text,
        "--filter",
        FilterError,
        'example: --filter \'{"status": "Ativo"}\'',
        deep_hint="flatten it: and/or take a list of any length",
    )


def sort_item(text: str) -> dict[str, Any]:
    """`timestamp` → ascending, `-timestamp` → descending (an empty field is QuerySpec's error to report)."""
    text = text.strip()
    if text.startswith("-"):
        return {"field": text[1:].strip(), "direction": "desc"}
    return {"field": text.lstrip("+").strip(), "direction": "asc"}


def query(
    table: str,
    filters: Any,
    fields: Iterable[str] | None,
    sort: Iterable[Mapping[str, Any]] | None,
    max_records: int | None,
    view: str | None,
) -> dict[str, Any]:
    """The query, every key of QUERY_KEYS present: an empty filter object, field list or view means none."""
    return {
        "table": table,
        "filters": None if filters == {} else filters,
        "fields": list(fields or []) or None,
        "sort": [dict(s) for s in sort or []],
        "maxRecords": max_records,
        "view": view or None,
    }


def from_cli(
    table: str,
    filter_text: str | None,
    fields: list[str] | None,
    sort: list[str] | None,
    max_records: int | None,
    view: str | None,
) -> dict[str, Any]:
    """The command line's forms: `--filter` JSON text, `--fields A,B` (repeatable), `--sort [-]FIELD` (repeatable)."""
    for where, given in (("TABLE", table), ("--fields", fields), ("--sort", sort), ("--view", view)):
        check_text(given, where)
    names = [x.strip() for f in fields or [] for x in f.split(",") if x.strip()]
    return query(table, load_filter_json(filter_text), names, [sort_item(s) for s in sort or []], max_records, view)


def spec_data(q: Mapping[str, Any], page_size: int | None = None) -> dict[str, Any]:
    """`QuerySpec.parse`'s input: the given keys only."""
    return {k: v for k, v in {**q, "pageSize": page_size}.items() if v not in (None, [])}
