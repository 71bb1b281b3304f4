"""Dynamic TTL: pure decisions over plain data (no I/O, `now` passed in).

When a refresh of an expired answer finds it unchanged, the table's TTL stretches (×1.5, up to
`max_s`); when it finds a change we did not make ourselves (our own writes are applied to the
cached answers, so any difference comes from another writer), the TTL shrinks (÷2, down to
`min_s`). A table's TTL therefore settles where refreshes are mostly useful.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import BadInput

GROW = 1.5
SHRINK = 0.5

#: the longest TTL anything accepts (CLI --ttl, config, the webhook's cacheTTL): 30 days
MAX_TTL_S = 30 * 86400


def check_ttl(value: float | None, where: str = "--ttl") -> float | None:
    """`value` unchanged when it is a finite number in (0, MAX_TTL_S], else one `BadInput` line."""
    if value is None:
        return None
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TTL_S
    ):
        raise BadInput(
            f"{where} must be a number of seconds above 0 and at most {MAX_TTL_S} (30 days), got {value!r}",
            hint=f"give e.g. {where} 300",
        )
    return float(value)


def entry_times_ok(entry: object) -> bool:
    """True when a stored answer's `stored` and `ttl` are finite numbers (anything else reads as a miss)."""
    if not isinstance(entry, dict):
        return False
    for k in ("stored", "ttl"):
        v = entry.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
    return True


@dataclass
class TTLState:
    ttl_s: float
    reason: str = "configured"
    unchanged: int = 0  # consecutive refreshes that found no change
    changed: int = 0  # consecutive refreshes that found a change

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object] | None, default_ttl: float) -> TTLState:
        if not data:
            return cls(default_ttl)
        ttl, unchanged, changed = data.get("ttl_s", default_ttl), data.get("unchanged", 0), data.get("changed", 0)
        return cls(
            float(ttl) if isinstance(ttl, (int, float, str)) else default_ttl,
            str(data.get("reason", "configured")),
            int(unchanged) if isinstance(unchanged, (int, float, str)) else 0,
            int(changed) if isinstance(changed, (int, float, str)) else 0,
        )


def after_refresh(state: TTLState, *, changed: bool, min_s: float, max_s: float) -> TTLState:
    """The table's TTL after one refresh of an expired answer."""
    if changed:
        ttl = max(min_s, state.ttl_s * SHRINK)
        n = state.changed + 1
        return TTLState(ttl, f"outside change seen on {n} refresh(es) in a row: shortened", 0, n)
    ttl = min(max_s, state.ttl_s * GROW)
    n = state.unchanged + 1
    return TTLState(ttl, f"unchanged on {n} refresh(es) in a row: lengthened", n, 0)


def effective_ttl(configured: float, state: TTLState | None, *, enabled: bool, per_call: float | None) -> float:
    """Per-call TTL wins; then the dynamic state (when enabled); then the configured TTL."""
    if per_call is not None:
        return per_call
    if enabled and state is not None:
        return state.ttl_s
    return configured
