"""Lone surrogates (`"\\ud83d"`) anywhere in JSON input are bad input at every door: CLI exit 2 with one
line naming the argument and the position, webhook 422 in the API's error shape; nothing is sent upstream.

`json.loads` accepts lone surrogate escapes, and Python hands undecodable argv bytes over as lone
surrogates, so both the escaped form and the raw character are tried.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import assert_clean_failure

SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
#: strings hypothesis draws never hold surrogates (category Cs is excluded), so the planted one is lone
TEXT = st.text(max_size=4)
BAD_TEXT = st.builds(lambda a, s, b: a + s + b, TEXT, SURROGATE, TEXT)
SCALARS = st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)
RELAXED = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@st.composite
def with_lone_surrogate(draw: st.DrawFn, depth: int = 0) -> Any:
    """A JSON value holding exactly one lone surrogate: in a string, in a key, or nested in a list/object."""
    kind = draw(st.sampled_from(["string", "key", "list", "object"] if depth < 3 else ["string", "key"]))
    if kind == "string":
        return draw(BAD_TEXT)
    if kind == "key":
        out = draw(st.dictionaries(TEXT, JSON, max_size=2))
        out[draw(BAD_TEXT)] = draw(JSON)
        return out
    if kind == "list":
        items = draw(st.lists(JSON, max_size=3))
        items.insert(draw(st.integers(0, len(items))), draw(with_lone_surrogate(depth + 1)))
        return items
    out = draw(st.dictionaries(TEXT, JSON, max_size=2))
    out[draw(TEXT)] = draw(with_lone_surrogate(depth + 1))
    return out


def _text(value: Any, escaped: bool) -> str:
    """JSON text: `\\udXXX` escapes (what a workflow sends), or the raw character (what argv decoding gives)."""
    return json.dumps(value, ensure_ascii=escaped)


def _upstream(sandbox: Any) -> list[tuple[str, str, int]]:
    calls: list[tuple[str, str, int]] = []
    sandbox.app.observers.append(lambda method, route, status: calls.append((method, route, status)))
    return calls


def _assert_bad_input(res: Any, argument: str) -> None:
    assert_clean_failure(res.exit_code, res.stdout, res.stderr)
    first = next(ln for ln in res.stderr.splitlines() if ln.startswith("error:"))
    assert argument in first and "lone surrogate" in first and "character" in first, res.stderr


@RELAXED
@given(value=with_lone_surrogate(), wrap=st.booleans(), escaped=st.booleans())
def test_records_create_data_with_a_lone_surrogate_is_bad_input(
    cli, sandbox, value: Any, wrap: bool, escaped: bool
) -> None:
    calls = _upstream(sandbox)
    doc = {"fields": {"Nome": value}} if wrap else value
    res = cli("records", "create", "Usuários", "--data", _text(doc, escaped))
    _assert_bad_input(res, "--data")
    assert calls == []  # nothing was sent, so nothing can be "lost"


@RELAXED
@given(value=with_lone_surrogate())
def test_records_file_line_with_a_lone_surrogate_is_bad_input(cli, sandbox, tmp_path, value: Any) -> None:
    calls = _upstream(sandbox)
    path = tmp_path / "in.ndjson"
    path.write_text('{"fields": {"Nome": "ok"}}\n' + _text({"fields": {"Nome": value}}, True) + "\n", encoding="utf-8")
    res = cli("records", "create", "Usuários", "--file", str(path))
    _assert_bad_input(res, "--file line 2")
    assert calls == []


@pytest.mark.parametrize("raw", ["\ud83d".encode("utf-8", "surrogatepass"), b"\xff", b"\xc3"])
def test_records_file_that_is_not_utf8_is_bad_input(cli, sandbox, tmp_path, raw: bytes) -> None:
    calls = _upstream(sandbox)
    path = tmp_path / "in.ndjson"
    path.write_bytes(b'{"fields": {"Nome": "ok"}}\n{"fields": {"Nome": "a' + raw + b'"}}\n')
    res = cli("records", "create", "Usuários", "--file", str(path))
    assert_clean_failure(res.exit_code, res.stdout, res.stderr)
    assert "--file" in res.stderr and "UTF-8" in res.stderr and "byte 50" in res.stderr, res.stderr
    assert calls == []


@RELAXED
@given(
    value=with_lone_surrogate(),
    escaped=st.booleans(),
    command=st.sampled_from([("query", "run"), ("query", "explain"), ("cache", "get")]),
)
def test_filter_with_a_lone_surrogate_is_bad_input(
    cli, sandbox, value: Any, escaped: bool, command: tuple[str, str]
) -> None:
    calls = _upstream(sandbox)
    res = cli(*command, "Usuários", "--filter", _text({"Nome": value}, escaped))
    _assert_bad_input(res, "--filter")
    assert calls == []


@pytest.mark.parametrize("option", ["--fields", "--sort", "--view"])
def test_plain_options_with_a_lone_surrogate_are_bad_input(cli, sandbox, option: str) -> None:
    calls = _upstream(sandbox)
    res = cli("query", "run", "Usuários", option, "No\udcc3me")  # an undecodable argv byte, as Python sees it
    _assert_bad_input(res, option)
    assert "character 3" in res.stderr
    assert calls == []


def test_the_message_names_the_place_and_position(cli, sandbox) -> None:
    data = '[{"fields": {"Nome": "ok"}}, {"fields": {"Nome": "ab\\ud83d"}}]'
    res = cli("records", "create", "Usuários", "--data", data)
    _assert_bad_input(res, "--data")
    assert "[1].fields.Nome" in res.stderr and "character 3" in res.stderr and "\\ud83d" in res.stderr


# ------------------------------------------------------------------------------------------- webhooks
def _cache_body(value: Any, where: str) -> dict[str, Any]:
    body: dict[str, Any] = {"operation": "get", "table": "Usuários"}
    if where == "filters":
        body["filters"] = {"Nome": value}
    elif where == "table":
        body["table"] = value
    elif where == "fields":
        body["fields"] = [value]
    else:
        body["data"] = [{"id": "recAAAAAAAAAAAAAA", "fields": {"Nome": value}}]
        body["operation"] = "set"
    return body


@RELAXED
@given(
    value=with_lone_surrogate(),
    where=st.sampled_from(["filters", "table", "fields", "data"]),
    path=st.sampled_from(["cache", "backup", "metrics"]),
)
def test_webhook_body_with_a_lone_surrogate_is_422(client, sandbox, value: Any, where: str, path: str) -> None:
    calls = _upstream(sandbox)
    if path == "cache":
        body: dict[str, Any] = _cache_body(value, where)
    elif path == "backup":
        body = {"backup_type": "complete", "tables": [value]}
    else:
        body = {"metric_type": value, "time_range": "1h"}
    raw = json.dumps(body, ensure_ascii=True).encode()  # the escaped form: what arrives on the wire
    r = client.post(f"/webhook/airtable/{path}", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_body" and "lone surrogate" in err["message"] and "\n" not in err["message"]
    assert calls == []
