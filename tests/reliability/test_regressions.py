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
