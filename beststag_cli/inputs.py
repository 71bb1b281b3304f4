"""Checks every input door shares (CLI `--data`/`--file`/`--filter`/`--fields`, webhook bodies).

`json.loads` accepts lone surrogate escapes (`"\\ud83d"`) and the shell hands Python undecodable
argv bytes as lone surrogates too (PEP 383); such a string cannot be encoded as UTF-8, so it fails
much later (building a URL, sending a body, writing the journal) as an internal error or, worse, as
"the answer was lost" although nothing was sent. `check_text(value, where)` walks parsed input once
(strings, dict keys, lists; no recursion) and turns the first lone surrogate into one `BadInput`
line naming the argument, the place inside it and the character position.

`parse_json_option` is the one reader of a JSON command-line option (`--filter`, `--data`, a `--file`
line): malformed or too-deep JSON, and lone surrogates in what it holds, are each one error line.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadInput

HINT = "send valid Unicode: a lone UTF-16 surrogate (\\ud800-\\udfff) is not a character; pair it or remove it"


def _bad_index(text: str) -> int | None:
    """Index of the first lone surrogate in `text`, or None when it encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def _path(parts: list[str | int]) -> str:
    """`[0].fields.Nome`; keys that are not plain words are quoted (`["a.b"]`), so the path stays one line."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p and p.replace("_", "a").replace(" ", "a").isalnum() and p.isprintable():
            out += f".{p}" if out else p
        else:
            out += "[" + json.dumps(p) + "]"
    return out if len(out) <= 120 else out[:117] + "..."


def find_lone_surrogate(value: Any) -> tuple[str, int, str] | None:
    """(path inside `value`, character index, the character) of the first lone surrogate, or None."""
    todo: list[tuple[list[str | int], Any]] = [([], value)]
    while todo:
        path, v = todo.pop()
        if isinstance(v, str):
            i = _bad_index(v)
            if i is not None:
                return _path(path), i, v[i]
        elif isinstance(v, dict):
            items = list(v.items())
            for k, sub in reversed(items):
                if isinstance(k, str):
                    i = _bad_index(k)
                    if i is not None:
                        return (f"{_path(path)} (a key)" if path else "a key"), i, k[i]
                todo.append(([*path, _safe_key(k)], sub))
        elif isinstance(v, (list, tuple)):
            todo.extend(([*path, n], sub) for n, sub in reversed(list(enumerate(v))))
    return None


def _safe_key(k: Any) -> str:
    return k if isinstance(k, str) else repr(k)


def check_text(value: Any, where: str) -> Any:
    """`value` unchanged, or `BadInput` (exit 2 / webhook 422) naming `where` and the position."""
    found = find_lone_surrogate(value)
    if found is None:
        return value
    path, index, char = found
    inside = f" at {path}" if path else ""
    raise BadInput(
        f"{where}{inside}: character {index + 1} is a lone surrogate (\\u{ord(char):04x}), which is not valid Unicode",
        hint=HINT,
    )


def parse_json_option(
    text: str,
    option: str,
    error_cls: type[BadInput] = BadInput,
    hint: str | None = None,
    *,
    deep_hint: str | None = None,
    position: bool = True,
) -> Any:
    """`text` (a JSON option's value) → JSON data checked by `check_text`, or one `error_cls` line naming `option`.

    Malformed JSON names the decoder's complaint (and, with `position`, its line and column: a one-line
    `--file` record leaves it out); JSON nested past Python's recursion limit is reported, not a traceback.
    `deep_hint` is the hint for the latter (default `hint`). Lone surrogates are always `BadInput` (check_text).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        at = f" at line {e.lineno} column {e.colno}" if position else ""
        raise error_cls(f"{option} is not valid JSON: {e.msg}{at}", hint=hint) from None
    except RecursionError:
        raise error_cls(f"{option} nests too deeply to read", hint=hint if deep_hint is None else deep_hint) from None
    return check_text(data, option)


def printable(text: str) -> str:
    """`text` with lone surrogates escaped (`\\ud83d`), safe to print, log or encode as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable_tree(value: Any) -> Any:
    """`value` (JSON data) with `printable` applied to every string and key."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: printable_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_tree(v) for v in value]
    return value
