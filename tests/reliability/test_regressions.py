"""Bugs found by the reliability suite, each pinned by the smallest test that failed before its fix."""

from __future__ import annotations

import pytest

from beststag_cli.errors import FilterError


def _deep_and(n: int) -> str:
    return '{"and":[' * n + '{"status":"Ativo"}' + "]}" * n


@pytest.mark.parametrize("depth", [150, 10_000])
def test_deeply_nested_filter_is_a_filter_error_not_a_recursion_error(depth: int) -> None:
    from beststag_cli.query.spec import QuerySpec, load_filter_json

    with pytest.raises(FilterError, match="nest"):
        QuerySpec.parse({"table": "Usuários", "filters": load_filter_json(_deep_and(depth))})


@pytest.mark.parametrize("where", ["data", "file"])
def test_deeply_nested_records_json_is_bad_input(where: str) -> None:
    from beststag_cli.errors import BadInput
    from beststag_cli.query.writes import read_items

    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(BadInput, match="nests too deeply"):
        read_items(deep, None) if where == "data" else read_items(None, [deep])


@pytest.mark.parametrize("body", [b'{"operation":"get","table":"\xff\xfe"}',
                                  b'{"operation":"get","table":"T","filters":' + b'{"and":[' * 5000 + b"]}" * 5000
                                  + b"}"], ids=["not-utf8", "nested-5000"])
def test_webhook_body_that_cannot_be_decoded_is_422_in_our_error_shape(client, body: bytes) -> None:
    r = client.post("/webhook/airtable/cache", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "invalid_body"
