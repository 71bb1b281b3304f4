"""Pure arithmetic the metrics share: percentiles, the duration histogram, ratios and deltas.

Nothing here reads the clock or a file, so every figure can be checked by hand in tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: histogram buckets per doubling of the duration: bucket ``b`` holds [2**(b/8), 2**((b+1)/8)) ms,
#: so a value read back from its bucket (the geometric middle) is within ±4.4 % of the truth
BUCKETS_PER_DOUBLING = 8


def duration_bucket(ms: float) -> int:
    """The histogram bucket of a duration in milliseconds (everything up to 1 ms is bucket 0).

    >>> duration_bucket(1.0), duration_bucket(2.0), duration_bucket(1000.0)
    (0, 8, 79)
    """
    return math.floor(math.log2(max(ms, 1.0)) * BUCKETS_PER_DOUBLING)


def bucket_value(bucket: int) -> float:
    """The representative duration (ms) of a bucket: the geometric middle of its bounds."""
    return float(2 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING))


#: the same bucket as an SQL expression over ``duration_ms`` (SQLite >= 3.35 math functions)
SQL_BUCKET = f"CAST(floor(log2(max(duration_ms, 1.0)) * {BUCKETS_PER_DOUBLING}) AS INTEGER)"


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, linear between closest ranks (numpy's default).

    >>> percentile([10, 20, 30, 40], 0.5)
    25.0
    >>> percentile([], 0.5) is None
    True
    """
    n = len(sorted_values)
    if n == 0:
        return None
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def histogram_percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile read from a duration histogram (bucket -> count).

    The same rule as :func:`percentile`, with each value replaced by its bucket's middle.
    """
    total = sum(hist.values())
    if total == 0:
        return None
    pos = q * (total - 1)
    lo = math.floor(pos)
    frac = pos - lo

    def value_at(k: int) -> float:
        seen = 0
        for bucket in sorted(hist):
            seen += hist[bucket]
            if seen > k:
                return bucket_value(bucket)
        return bucket_value(max(hist))

    a = value_at(lo)
    b = value_at(min(lo + 1, total - 1))
    return a + (b - a) * frac


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def delta_pct(current: float | None, previous: float | None) -> float | None:
    """Change from ``previous`` to ``current`` in percent; None when ``previous`` is 0 or unknown.

    >>> delta_pct(150, 100)
    50.0
    """
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous * 100.0


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
