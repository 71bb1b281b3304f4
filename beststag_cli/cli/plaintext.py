"""What rich prints for console markup on a stream that is not a terminal, without importing rich.

Importing rich costs more than a read-only command's whole start-up budget (issue 16: 5× `python -c
pass`), yet piped output (cron, `| cut -f1`) is plain text: markup tags dropped, nothing else. These
helpers answer only the cases they are sure of and return None otherwise — emoji codes (`:smile:`;
rich's list of names is consulted only when a text has such a pair of colons, `12:00:` say),
control characters, `[@click]` handlers, a closing tag rich could reject, tabs in a line — so the
caller asks rich, and the output is rich's whatever the text (tests/cli/test_plaintext.py holds them
to rich's own answers).
"""

from __future__ import annotations

import os
import re
from typing import Any

#: rich.markup.RE_TAGS: a tag, with the backslashes that may escape it
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
#: rich's emoji codes (`:name:`, `:name-emoji:`), rich._emoji_replace's pattern
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")
#: rich.markup.escape's pattern: a tag-like piece and the backslashes before it
_ESCAPABLE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
#: rich's emoji names without a letter (tests/cli/test_plaintext.py holds this to rich's list); any other
#: name without one is no emoji
LETTERLESS_EMOJI = frozenset({"+1", "-1", "100", "1234", "__1"})
_LETTER = re.compile(r"[^\W\d_]")
#: the control codes rich's Text strips
_CONTROL = frozenset("\a\b\v\f\r")


def never_terminal(stream: Any) -> bool:
    """True only when rich's Console would certainly not treat ``stream`` as a terminal (rich's own rules:
    TTY_COMPATIBLE, then FORCE_COLOR, then isatty)."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "0"
    if "FORCE_COLOR" in os.environ:
        return os.environ["FORCE_COLOR"] == ""
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is None or not isatty()
    except ValueError:  # a closed stream: rich says "not a terminal" too
        return True


def escape(text: str) -> str:
    """``rich.markup.escape(text)`` without importing rich: ``text`` shown as text, never read as markup."""
    out = _ESCAPABLE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if out.endswith("\\") and not out.endswith("\\\\"):
        return out + "\\"
    return out


def markup_plain(text: str) -> str | None:
    """``rich.text.Text.from_markup(text).plain``, or None when only rich can tell (or rich would refuse it)."""
    if _CONTROL.intersection(text):
        return None
    out: list[str] = []
    opened: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        full, escapes, tag = match.groups()
        start, end = match.span()
        out.append(text[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:  # an escaped tag is text
                out.append(full[len(escapes) :])
                continue
        name = tag.partition("=")[0]
        if name.startswith("@"):
            return None
        if name.startswith("/"):
            closing = name[1:].strip()
            if closing:
                if not opened or opened[-1] != closing:
                    return None  # rich matches normalised style names further down the stack: its answer
                opened.pop()
            elif opened:
                opened.pop()
            else:
                return None  # `[/]` with nothing open: rich's error
        else:
            opened.append(name)
    out.append(text[position:].replace("\\[", "["))
    if any(_has_emoji(piece) for piece in out):  # rich replaces codes piece by piece, between the tags
        return None
    return "".join(out)


def _has_emoji(piece: str) -> bool:
    """Whether rich would put an emoji in this piece of text."""
    for match in _EMOJI.finditer(piece):
        name = match.group(2).lower()
        if not _LETTER.search(name) and name not in LETTERLESS_EMOJI:
            continue  # `(UTC+00:00):` (doctor's timezone line) names no emoji: no need to ask rich's list
        from rich._emoji_codes import EMOJI  # ~17 ms, paid only by a text with a `:name:` pair

        if match.group(2).lower() in EMOJI:
            return True
    return False


def printed(text: str) -> str | None:
    """What ``Console(soft_wrap=True, highlight=False).print(text)`` writes to a non-terminal, or None."""
    if "\t" in text:
        return None  # rich expands tabs to its tab stops
    plain = markup_plain(text)
    return None if plain is None else plain + "\n"
