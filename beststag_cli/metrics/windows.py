"""Metric kinds, time ranges and the window [start, end] a collection covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import BadInput

#: the ranges the spec names, in seconds
RANGES: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
#: what `metrics collect --type` accepts; "all" is usage + performance + storage (+ backup)
KINDS: tuple[str, ...] = ("usage", "performance", "storage", "all")
#: the sections each kind produces (backup figures come with storage, as the spec files them)
SECTIONS: dict[str, tuple[str, ...]] = {
    "usage": ("usage",),
    "performance": ("performance",),
    "storage": ("storage", "backup"),
    "all": ("usage", "performance", "storage", "backup"),
}
#: series step (seconds) used for charts and sparklines of each range
SERIES_STEP: dict[str, int] = {"1h": 300, "24h": 3600, "7d": 3600, "30d": 86400}

HOUR = 3600


def check_range(name: str) -> str:
    """Return ``name`` if it is a known range, else raise :class:`BadInput` naming the choices."""
    if name not in RANGES:
        raise BadInput(
            f"unknown time range {name!r} (expected one of {', '.join(RANGES)})", hint="use --range 1h, 24h, 7d or 30d"
        )
    return name


def check_kind(name: str) -> str:
    """Return ``name`` if it is a known metric type, else raise :class:`BadInput`."""
    if name not in KINDS:
        raise BadInput(
            f"unknown metric type {name!r} (expected one of {', '.join(KINDS)})",
            hint="use --type usage, performance, storage or all",
        )
    return name


@dataclass(frozen=True)
class Window:
    """A closed interval of POSIX seconds ending at ``end`` (now) and lasting one range."""

    range: str
    start: float
    end: float

    @classmethod
    def ending(cls, range_name: str, end: float) -> Window:
        return cls(check_range(range_name), end - RANGES[range_name], end)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def hours(self) -> float:
        return self.seconds / HOUR

    def previous(self) -> Window:
        """The window of the same length just before this one (for trends)."""
        return Window(self.range, self.start - self.seconds, self.start)


def floor_hour(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def ceil_hour(ts: float) -> int:
    f = floor_hour(ts)
    return f if f == ts else f + HOUR


def iso_utc(ts: float) -> str:
    """A timestamp as ISO 8601 UTC to the second (`2026-12-01T04:40:00Z`)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
