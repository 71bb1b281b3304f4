"""Which backups to keep: restic/borg-style keep rules as a pure function (no I/O, `now` passed in).

Rules, per base and type (``settings.backup.types.<type>.retention``); a backup kept by any rule stays:

- ``keep_last N``: the N newest;
- ``keep_hourly/daily/weekly/monthly N``: going from the newest backward, the newest backup of
  each hour/day/ISO week/month that has one, for the N most recent such periods (UTC);
- ``keep_within D``: every backup newer than ``now - D``.

Two invariants on top of the rules:

- the newest good (status ``ok``) backup of each base and type is always kept (the newest of any
  status when none is ``ok``), so cleanup can never leave a type without a restorable copy;
- every backup a kept backup depends on (its parents, transitively, across types: an incremental
  needs the complete it was built on) is kept.

A type with no policy keeps everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Snapshot:
    """What retention needs to know about one backup."""

    id: str
    type: str
    time: datetime
    ok: bool = True
    parents: frozenset[str] = frozenset()
    base: str = ""


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_within: timedelta | None = None

    @classmethod
    def from_settings(cls, p: object) -> Policy:
        """From a config `RetentionPolicy`."""
        return cls(
            keep_last=getattr(p, "keep_last", None),
            keep_hourly=getattr(p, "keep_hourly", None),
            keep_daily=getattr(p, "keep_daily", None),
            keep_weekly=getattr(p, "keep_weekly", None),
            keep_monthly=getattr(p, "keep_monthly", None),
            keep_within=getattr(p, "keep_within_delta", None),
        )


@dataclass
class RetentionPlan:
    #: id → why it is kept (one or more reasons)
    keep: dict[str, list[str]] = field(default_factory=dict)
    #: ids to delete, oldest first
    remove: list[str] = field(default_factory=list)
    #: parents named by kept backups that are not in the input (a chain already broken)
    missing_parents: dict[str, list[str]] = field(default_factory=dict)


_LABELS = {
    "last": "keep-last",
    "hourly": "hourly",
    "daily": "daily",
    "weekly": "weekly",
    "monthly": "monthly",
    "within": "keep-within",
    "newest good": "last good backup",
    "newest": "newest backup (none is good)",
    "no retention policy for this type": "no keep rules for this type",
}


def reason_label(reason: str) -> str:
    """A keep reason as `restic forget --dry-run` words it: keep-last, daily, ..., last good backup."""
    if reason.startswith("parent of "):
        return "needed by " + reason[len("parent of ") :]
    return _LABELS.get(reason, reason)


def _bucket(rule: str, t: datetime) -> tuple[int, ...]:
    if rule == "hourly":
        return (t.year, t.month, t.day, t.hour)
    if rule == "daily":
        return (t.year, t.month, t.day)
    if rule == "weekly":
        iso = t.isocalendar()
        return (iso.year, iso.week)
    return (t.year, t.month)


BUCKET_RULES = ("hourly", "daily", "weekly", "monthly")


def plan_retention(snapshots: Iterable[Snapshot], policies: Mapping[str, Policy], now: datetime) -> RetentionPlan:
    """Decide what to keep and what to remove (see the module docstring for the rules)."""
    snaps = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)  # newest first
    by_id = {s.id: s for s in snaps}
    plan = RetentionPlan()

    def keep(sid: str, why: str) -> None:
        plan.keep.setdefault(sid, [])
        if why not in plan.keep[sid]:
            plan.keep[sid].append(why)

    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snaps:
        groups.setdefault((s.base, s.type), []).append(s)
    for (_, btype), group in groups.items():
        policy = policies.get(btype)
        if policy is None:
            for s in group:
                keep(s.id, "no retention policy for this type")
            continue
        if policy.keep_last:
            for s in group[: policy.keep_last]:
                keep(s.id, "last")
        for rule in BUCKET_RULES:
            n = getattr(policy, f"keep_{rule}")
            if not n:
                continue
            seen: set[tuple[int, ...]] = set()
            for s in group:
                b = _bucket(rule, s.time)
                if b in seen:
                    continue
                seen.add(b)
                keep(s.id, rule)
                if len(seen) >= n:
                    break
        if policy.keep_within is not None:
            for s in group:
                if s.time >= now - policy.keep_within:
                    keep(s.id, "within")
        newest_ok = next((s for s in group if s.ok), group[0])
        keep(newest_ok.id, "newest good" if newest_ok.ok else "newest")

    todo = list(plan.keep)
    while todo:
        sid = todo.pop()
        for p in sorted(by_id[sid].parents):
            if p not in by_id:
                plan.missing_parents.setdefault(sid, []).append(p)
                continue
            if p not in plan.keep:
                todo.append(p)
            keep(p, f"parent of {sid}")
    plan.remove = [s.id for s in reversed(snaps) if s.id not in plan.keep]
    return plan
