"""The only door to Airtable. `build` is how every process makes its gateway (with its change sink)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from .api import Gateway
    from .changes import ChangeSink


def build(settings: Settings, *, sink: ChangeSink | None = None, source: str = "cli", **options: Any) -> Gateway:
    """A `Gateway` whose writes are told to `sink` (options: journal, limiter, sandbox)."""
    from .api import Gateway

    return Gateway(settings, source=source, sink=sink, **options)
