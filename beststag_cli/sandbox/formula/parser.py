"""Parsing of formula text into a lark tree (LALR), with friendly error messages."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import lark
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

_GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
_SMART_QUOTES = "‘’‚‛“”„‟′″«»"


class FormulaError(Exception):
    """Formula does not parse, names an unknown field or function, or has a wrong arity.

    ``message`` is the human text without the HTTP prefix ("The formula for filtering records is
    invalid: ").
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@lru_cache(maxsize=1)
def get_parser() -> lark.Lark:
    return lark.Lark(
        _GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=False,
        maybe_placeholders=False,
        start="start",
    )


_FIELD_ESCAPE_RE = re.compile(r"\\\}")
_STRING_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def unescape_field(token_text: str) -> str:
    """``{a\\}b}`` → ``a}b``. Other backslashes are kept literally (pyairtable does not escape them)."""
    return _FIELD_ESCAPE_RE.sub("}", token_text[1:-1])


def unescape_string(token_text: str) -> str:
    """Strip the quotes and resolve backslash escapes: ``\\n`` ``\\t`` ``\\r`` map to control
    characters, any other ``\\x`` yields ``x`` (so ``\\'`` ``\\"`` ``\\\\`` work)."""
    body = token_text[1:-1]
    if "\\" not in body:
        return body
    return _STRING_ESCAPE_RE.sub(lambda m: _STRING_ESCAPES.get(m.group(1), m.group(1)), body)


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    if line == 1:
        return f"at character {pos + 1}"
    col = pos - text.rfind("\n", 0, pos)
    return f"at line {line}, column {col}"


def _paren_balance(text: str) -> int:
    """Count of '(' minus ')' outside strings and field references (best effort)."""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            j = i + 1
            while j < n and text[j] != "}":
                j += 2 if text[j] == "\\" and j + 1 < n and text[j + 1] == "}" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    return depth


def _describe(text: str, exc: UnexpectedInput) -> str:
    pos = getattr(exc, "pos_in_stream", None)
    if pos is None:
        pos = len(text)
    if isinstance(exc, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        where = _position(text, pos)
        if ch in _SMART_QUOTES:
            return (f"Invalid character {ch!r} {where}: smart (curly) quotes are not string delimiters; "
                    "use straight quotes ' or \"")
        if ch in "'\"":
            return f"Unterminated string literal starting {where}"
        if ch == "{":
            return f"Unterminated field reference (missing '}}') starting {where}"
        if ch == "}":
            return f"Unexpected '}}' {where} (field names must be wrapped in {{...}})"
        return f"Invalid character {ch!r} {where}"
    balance = _paren_balance(text)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if balance > 0:
            return "Unbalanced parentheses: missing ')' at end of formula"
        return "Unexpected end of formula (an operand is missing)"
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        tpos = tok.start_pos if tok.start_pos is not None else pos
        where = _position(text, tpos)
        if tok.type == "RPAR" or str(tok) == ")":
            if balance < 0:
                return f"Unbalanced parentheses: unexpected ')' {where}"
            return f"Unexpected ')' {where} (an operand or argument is missing)"
        if str(tok) == ",":
            return f"Unexpected ',' {where} (commas only separate function arguments)"
        return f"Unexpected {str(tok)!r} {where}"
    return f"Invalid formula {_position(text, pos)}"


def parse(text: str) -> lark.Tree:
    """Parse ``text`` into a lark tree; raises :class:`FormulaError` with a helpful message."""
    if not isinstance(text, str):
        raise FormulaError("The formula must be text")
    if text.strip() == "":
        raise FormulaError("The formula is empty")
    try:
        tree = get_parser().parse(text)
    except UnexpectedInput as exc:
        raise FormulaError(_describe(text, exc)) from None
    except (LarkError, RecursionError) as exc:  # pragma: no cover - defensive
        raise FormulaError(f"Invalid formula: {exc.__class__.__name__}") from None
    if isinstance(tree, lark.Token):  # pragma: no cover - the start rule always yields a tree
        return lark.Tree("expr", [tree])
    return tree
