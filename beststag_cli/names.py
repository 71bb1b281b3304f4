"""Name matching shared by every "did you mean" message: accent-, case- and space-insensitive."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable


def fold(name: str) -> str:
    """`Memória  Contextual` → `memoria contextual`."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The closest known name, preferring an exact match once accents and case are ignored."""
    known = list(known)
    folded = {fold(k): k for k in known}
    if fold(name) in folded:
        return folded[fold(name)]
    close = difflib.get_close_matches(fold(name), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean "X"?' or ''."""
    s = suggest(name, known)
    return f'; did you mean "{s}"?' if s else ""
