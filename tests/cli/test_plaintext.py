"""cli/plaintext.py says what rich prints on a non-terminal, or None: never something else (rich is the reference)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from rich.console import Console
from rich.errors import MarkupError
from rich.text import Text

from beststag_cli.cli.plaintext import markup_plain, never_terminal, printed

_PIECES = st.sampled_from(
    [
        "[bold]",
        "[/bold]",
        "[/]",
        "[red]",
        "[/red]",
        "[bold red]",
        "[/bold  red]",
        "[BOLD]",
        "[/Bold]",
        "[link=https://x.y/a]",
        "[@click]",
        "[/@click]",
        "\\[bold]",
        "\\\\[red]",
        "\\",
        "[",
        "]",
        "[1]",
        "[a b]",
        "[#ff0000]",
        "[/#ff0000]",
        ":",
        ":smile:",
        ": x:",
        "\t",
        "\r",
        "\x07",
        "\n",
        " ",
        "x",
        "é",
        "—",
        "12:00",
        "[dim]→",
        "[urgent] call",
        ":smile",
        "smile:",
        ":100:",
        ":SMILE:",
        ":smile-emoji:",
        ":00:",
    ]
)
_TEXT = st.lists(_PIECES | st.text(max_size=3), max_size=8).map("".join)


@settings_(max_examples=400, deadline=None)
@given(_TEXT)
def test_markup_plain_is_riches_answer_or_none(text: str) -> None:
    mine = markup_plain(text)
    try:
        theirs: str | None = Text.from_markup(text).plain
    except MarkupError:
        theirs = None
    if mine is not None:
        assert mine == theirs, text


@settings_(max_examples=300, deadline=None)
@given(_TEXT)
def test_printed_is_what_riches_console_writes_to_a_pipe(text: str) -> None:
    mine = printed(text)
    if mine is None:
        return
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True).print(text)
    assert mine == out.getvalue(), text


def test_the_usual_markup_is_answered_without_rich() -> None:
    """What the read-only commands print: their markup must not need rich (or the fast path imports it)."""
    assert markup_plain("[bold red]FIRING[/]") == "FIRING"
    assert markup_plain("[green]ok[/]") == "ok"
    assert (
        printed("[yellow]warning:[/] 2 start(s) (first 2026-06-10 12:00: a, b)")
        == "warning: 2 start(s) (first 2026-06-10 12:00: a, b)\n"
    )
    assert markup_plain("\\[urgent] call") == "[urgent] call"


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize("tty_compatible", [None, "", "0", "1", "2"])
@pytest.mark.parametrize("force_color", [None, "", "1"])
def test_never_terminal_only_when_rich_agrees(
    monkeypatch: pytest.MonkeyPatch, tty: bool, tty_compatible: str | None, force_color: str | None
) -> None:
    for name, value in (("TTY_COMPATIBLE", tty_compatible), ("FORCE_COLOR", force_color)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    stream = _Stream(tty)
    if never_terminal(stream):
        assert not Console(file=stream).is_terminal
    else:
        assert Console(file=stream).is_terminal


@settings_(max_examples=400, deadline=None)
@given(_TEXT)
def test_escape_is_riches_escape(text: str) -> None:
    """The fast paths escape messages (error lines, doctor's checks) without rich: rich's own answer, always."""
    from rich.markup import escape as riches

    from beststag_cli.cli.plaintext import escape

    assert escape(text) == riches(text), text
    shown = printed(escape(text))
    if shown is not None:  # and what rich prints of it is the text itself
        out = io.StringIO()
        Console(file=out, highlight=False, soft_wrap=True).print(escape(text))
        assert shown == out.getvalue(), text


def test_letterless_emoji_names_are_riches() -> None:
    """plaintext skips rich's emoji list for a `:name:` with no letter unless it is one of these (doctor's
    `(UTC+00:00):` must not import rich)."""
    import re

    from rich._emoji_codes import EMOJI

    from beststag_cli.cli.plaintext import LETTERLESS_EMOJI

    assert {k for k in EMOJI if not re.search(r"[^\W\d_]", k)} == LETTERLESS_EMOJI
