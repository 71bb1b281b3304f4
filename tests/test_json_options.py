"""The JSON command-line options (`--filter`, `--data`, a `--file` line) read through one reader
(inputs.parse_json_option): each door's error line and hint are pinned here, exactly as they were before
the doors shared it (issue 17, D5), for any malformed text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beststag_cli.errors import BadInput, FilterError
from beststag_cli.query.request import load_filter_json
from beststag_cli.query.writes import read_items


def _decode_error(text: str) -> json.JSONDecodeError | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e
    return None


# malformed JSON: a valid prefix cut short, or text with a stray character, over several lines
_malformed = st.one_of(
    st.text(alphabet='{}[]":,0123456789abc \n', max_size=30),
    st.builds(
        lambda k, v: '{"' + k + '": ' + v,
        st.text(alphabet="abcNome", min_size=1, max_size=5),
        st.sampled_from(["", "[1,", '"x', "tru"]),
    ),
).filter(lambda t: t.strip() != "" and _decode_error(t) is not None)


@given(_malformed)
def test_each_door_names_the_decoders_complaint_and_its_own_hint(text: str) -> None:
    e = _decode_error(text)
    assert e is not None
    with pytest.raises(FilterError) as f:
        load_filter_json(text)
    assert f.value.message == f"--filter is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    assert f.value.hint == 'example: --filter \'{"status": "Ativo"}\''
    with pytest.raises(BadInput) as d:
        read_items(text, None)
    assert type(d.value) is BadInput
    assert d.value.message == f"--data is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    assert d.value.hint == 'example: --data \'{"fields": {"Nome": "Ana"}}\''
    one_line = text.replace("\n", " ")
    e1 = _decode_error(one_line)
    if e1 is not None:
        with pytest.raises(BadInput) as li:
            read_items(None, ['{"Nome": "Ana"}', one_line])
        assert li.value.message == f"--file line 2 is not valid JSON: {e1.msg}"
        assert li.value.hint == "one JSON object per line"


def test_too_deep_json_keeps_each_doors_hint() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(FilterError) as f:
        load_filter_json(deep)
    assert (f.value.message, f.value.hint) == (
        "--filter nests too deeply to read",
        "flatten it: and/or take a list of any length",
    )
    with pytest.raises(BadInput) as d:
        read_items(deep, None)
    assert (d.value.message, d.value.hint) == ("--data nests too deeply to read", 'a record is {"fields": {...}}')
    with pytest.raises(BadInput) as li:
        read_items(None, [deep])
    assert (li.value.message, li.value.hint) == ("--file line 1 nests too deeply to read", "one JSON object per line")


def test_lone_surrogates_are_named_by_the_door() -> None:
    with pytest.raises(BadInput, match=r"^--data at Nome: character 1 is a lone surrogate"):
        read_items('{"Nome": "\\ud83d"}', None)
    with pytest.raises(BadInput, match=r"^--file line 1 at Nome: character 1"):
        read_items(None, ['{"Nome": "\\ud83d"}'])
    with pytest.raises(BadInput, match=r"^--filter: character 11 is a lone surrogate"):
        load_filter_json('{"Nome": "\ud83d"}')  # a raw surrogate (argv under PEP 383) is named in the text


def test_cache_set_data_too_deep_is_bad_input_not_a_bug(cli) -> None:  # type: ignore[no-untyped-def]
    # issue 17 (found reading the third copy of this logic): `cache set --data` caught ValueError only, so
    # JSON nested past the recursion limit was a RecursionError, "internal_error ... this is a bug", exit 1
    deep = "[" * 5000 + "]" * 5000
    r = cli("cache", "set", "Tarefas", "--data", deep)
    assert r.exit_code == 2, r
    assert r.stderr.strip().splitlines() == [
        'error: --data nests too deeply to read (a record is {"id": "rec…", "createdTime": "…", "fields": {…}})'
    ], r.stderr
    bad = cli("--json", "cache", "set", "Tarefas", "--data", "not json")
    # and malformed JSON reads as `records create --data` does (it was "...: line 1 column 1 (char 0)", no hint)
    assert bad.exit_code == 2, bad
    assert bad.json()["error"] == {
        "type": "bad_input",
        "message": "--data is not valid JSON: Expecting value at line 1 column 1",
        "hint": 'a record is {"id": "rec…", "createdTime": "…", "fields": {…}}',
    }
