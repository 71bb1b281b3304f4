"""Keep rules (pure function): table-driven cases and a hypothesis property over random histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.backup.retention import BUCKET_RULES, Policy, Snapshot, _bucket, plan_retention

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def snap(
    sid: str, days_ago: float, btype: str = "complete", ok: bool = True, parents: tuple[str, ...] = ()
) -> Snapshot:
    return Snapshot(id=sid, type=btype, time=NOW - timedelta(days=days_ago), ok=ok, parents=frozenset(parents))


DAILY = [snap(f"d{i}", i + 0.1) for i in range(10)]  # one a day, d0 newest


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        (Policy(keep_last=3), {"d0", "d1", "d2"}),
        (Policy(keep_daily=4), {"d0", "d1", "d2", "d3"}),
        (Policy(keep_within=timedelta(days=2)), {"d0", "d1"}),
        (Policy(keep_weekly=2), None),  # checked below: newest of the two most recent ISO weeks
        (Policy(keep_last=1, keep_within=timedelta(days=5)), {"d0", "d1", "d2", "d3", "d4"}),
        (Policy(keep_monthly=1), {"d0"}),
    ],
)
def test_rules(policy, kept):
    plan = plan_retention(DAILY, {"complete": policy}, NOW)
    if kept is None:
        weeks = []
        for s in DAILY:
            b = _bucket("weekly", s.time)
            if b not in weeks:
                weeks.append(b)
        kept = {next(s.id for s in DAILY if _bucket("weekly", s.time) == w) for w in weeks[:2]}
    assert set(plan.keep) == kept
    assert set(plan.remove) == {s.id for s in DAILY} - kept
    assert plan.remove == sorted(plan.remove, key=lambda i: int(i[1:]), reverse=True)  # oldest first


def test_several_in_one_day_keep_the_newest_of_the_day():
    snaps = [snap("a", 0.10), snap("b", 0.20), snap("c", 1.1), snap("d", 1.2)]
    assert set(plan_retention(snaps, {"complete": Policy(keep_daily=2)}, NOW).keep) == {"a", "c"}


def test_newest_good_backup_is_always_kept():
    snaps = [snap("new-partial", 0.1, ok=False), snap("old-ok", 40)]
    plan = plan_retention(snaps, {"complete": Policy(keep_within=timedelta(days=1))}, NOW)
    assert set(plan.keep) == {"new-partial", "old-ok"}
    assert "newest good" in plan.keep["old-ok"]


def test_parents_of_kept_incrementals_are_kept_across_types():
    snaps = [
        snap("old-full", 30),
        snap("i1", 20, "incremental", parents=("old-full",)),
        snap("i2", 1, "incremental", parents=("i1",)),
        snap("new-full", 5),
        snap("older-full", 40),
    ]
    plan = plan_retention(snaps, {"complete": Policy(keep_last=1), "incremental": Policy(keep_last=1)}, NOW)
    assert set(plan.keep) == {"i2", "i1", "old-full", "new-full"}
    assert plan.keep["old-full"] == ["parent of i1"] and plan.keep["i1"] == ["parent of i2"]
    assert plan.remove == ["older-full"]


def test_a_type_without_policy_keeps_everything_and_missing_parents_are_reported():
    snaps = [snap("c1", 3, "critical"), snap("c2", 2, "critical"), snap("i", 1, "incremental", parents=("gone",))]
    plan = plan_retention(snaps, {"incremental": Policy(keep_last=1)}, NOW)
    assert plan.remove == [] and plan.missing_parents == {"i": ["gone"]}


# ---- property: random histories


@st.composite
def histories(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(min_value=0, max_value=40))
    snaps: list[Snapshot] = []
    for i in range(n):
        btype = draw(st.sampled_from(["complete", "incremental", "critical"]))
        hours_ago = draw(st.integers(min_value=0, max_value=24 * 120))
        t = NOW - timedelta(hours=hours_ago, minutes=i % 60)
        parents: frozenset[str] = frozenset()
        earlier = [s for s in snaps if s.type in ("complete", "incremental") and s.time < t]
        if btype == "incremental" and earlier and draw(st.booleans()):
            parents = frozenset({draw(st.sampled_from(earlier)).id})
        snaps.append(Snapshot(id=f"s{i}", type=btype, time=t, ok=draw(st.booleans()), parents=parents))
    return snaps


counts = st.one_of(st.none(), st.integers(min_value=0, max_value=6))
policies = st.builds(
    Policy,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
    keep_within=st.one_of(st.none(), st.integers(1, 24 * 60).map(lambda h: timedelta(hours=h))),
)


@settings(max_examples=300, deadline=None)
@given(histories(), st.dictionaries(st.sampled_from(["complete", "incremental", "critical"]), policies), st.randoms())
def test_keep_rules_hold_on_random_histories(snaps, pols, rnd):
    plan = plan_retention(snaps, pols, NOW)
    ids = {s.id for s in snaps}
    by_id = {s.id: s for s in snaps}
    assert set(plan.keep) | set(plan.remove) == ids
    assert not set(plan.keep) & set(plan.remove)
    # no kept backup loses a parent
    for sid in plan.keep:
        for p in by_id[sid].parents:
            assert p in plan.keep
    for btype in {s.type for s in snaps}:
        group = sorted((s for s in snaps if s.type == btype), key=lambda s: (s.time, s.id), reverse=True)
        oks = [s for s in group if s.ok]
        assert (oks[0] if oks else group[0]).id in plan.keep  # the newest good one
        pol = pols.get(btype)
        if pol is None:
            assert all(s.id in plan.keep for s in group)
            continue
        for s in group[: pol.keep_last or 0]:
            assert s.id in plan.keep
        if pol.keep_within is not None:
            for s in group:
                if s.time >= NOW - pol.keep_within:
                    assert s.id in plan.keep
        for rule in BUCKET_RULES:
            n = getattr(pol, f"keep_{rule}") or 0
            newest_per_bucket: dict[tuple[int, ...], Snapshot] = {}
            for s in group:
                newest_per_bucket.setdefault(_bucket(rule, s.time), s)
            for s in list(newest_per_bucket.values())[:n]:
                assert s.id in plan.keep
        # a removed backup is not needed by any rule: it is not the newest of a kept bucket etc.
        for s in group:
            if s.id in plan.remove:
                assert not any(s.id in by_id[k].parents for k in plan.keep)
    # the input order does not matter
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    again = plan_retention(shuffled, pols, NOW)
    assert set(again.keep) == set(plan.keep) and again.remove == plan.remove
