"""Issue 19's `bench feed`: the cache workload of `bench cache` with an **outside writer** (2% and 10% of the
writes made by another client straight to the sandbox), for three ways of learning of them, side by side:

- **TTL only** — answers live their TTL (revalidation off);
- **revalidation** — today's default: on expiry, one listing of the table's changes since the last sync;
- **feed, polled** — the change feed (the sandbox's webhooks), pulled every POLL_S simulated seconds (no
  public URL: `beststag feed pull` or `serve`'s loop); a table the feed covers is revalidated without a listing;
- **feed, pinged** — the same, but pulled only at a POLL_S boundary after Airtable would have pinged (a new
  payload exists: `serve`'s /webhook/airtable/notify), so a quiet base costs nothing.

Per mode: upstream requests (listings and gets, plus the feed's payload pages), stale reads (an answer that
differs from Airtable's at that moment) and, for the feed, stale reads more than POLL_S after the last
outside write (the goal: none — the feed has told the cache by then). Same operations, same truth, same
machine; ratios are against revalidation measured in this run.

Where the requests go (each figure's note): listings and gets split into first reads (the same for every
mode), refetches and revalidation's listings; the feed's pulls into empty pages, pages holding only
payloads of beststag's own writes (Airtable pings for those too, and which payloads are echoes cannot be
known without reading them), and pulls after an outside write. The feed removes the listings and, since
feed updates take their createdTime from the cache, the refetches too; it pays one pull every POLL_S
(polled: the workload's length / POLL_S, whatever happens) or one per POLL_S window in which anyone wrote
(pinged). At this workload (about one operation a second, a write burst every ~30 s) that is more than
the listings it saves: the feed is cheaper only where revalidation lists more than once per window.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import bench_cache as bc
from benchmarks import figure, ratio

POLL_S = 5


class FeedClient(bc.Beststag):
    """beststag with the change feed enabled, pulled at every POLL_S boundary of simulated time."""

    def __init__(self, *a: Any, pinged: bool = False, **kw: Any) -> None:
        from beststag_cli.feed import service

        super().__init__(*a, **kw)
        self.sandbox, self.pinged, self.seen = a[1], pinged, -1
        self.gaps: dict[str, int] = {}  # why → tables, over the run (a gap makes the cache forget a table)
        self.settings.feed.poll_s = POLL_S
        service.enable(self.gw, self.gw.journal, list(bc.TABLES))
        self.next_poll: float | None = None
        self.pulls = 0
        self.pull_at: list[tuple[float, int]] = []  # (simulated second since T0, payloads read) per pull

    def tick(self, now: datetime) -> None:
        from beststag_cli import clock
        from beststag_cli.feed import service

        t = now.timestamp()
        if self.next_poll is None:
            self.next_poll = t - t % POLL_S + POLL_S
        while self.next_poll <= t:  # every boundary up to now, each at its own moment
            if not self.pinged or self._pinged():
                clock.set_now(datetime.fromtimestamp(self.next_poll, now.tzinfo))
                res = service.pull(self.gw, self.gw.journal, self.m.schema())
                self.pulls += 1
                self.pull_at.append((self.next_poll - bc.T0.timestamp(), res.payloads))
                for why in res.gaps.values():
                    self.gaps[why] = self.gaps.get(why, 0) + 1
            self.next_poll += POLL_S
        clock.set_now(now)

    def _pinged(self) -> bool:
        """Would Airtable have pinged since the last pull? (a new payload: the ping itself is not upstream)"""
        n = self.sandbox.store._db.execute("SELECT COUNT(*) FROM wh_payloads").fetchone()[0]
        if n == self.seen:
            return False
        self.seen = n
        return True


def _outside(rng: random.Random, ops: list[bc.Op], share: float) -> list[bc.Op]:
    writes = [o.t for o in ops if o.kind == "write"]
    updates = [o.t for o in ops if o.kind == "write" and o.wop == "update"]
    chosen = set(rng.sample(updates, min(len(updates), max(1, round(len(writes) * share)))))
    return [replace(o, outside=True) if o.t in chosen else o for o in ops]


def _stale_after_poll(out: bc.Outcome) -> int:
    """Stale reads more than POLL_S after the newest outside write before them."""
    outside = sorted(out.extra.get("outside_at", []))
    n = 0
    for t in out.extra.get("stale_at", []):
        before = [w for w in outside if w <= t]
        if not before or t - before[-1] > POLL_S:
            n += 1
    return n


def _pulls_text(client: FeedClient, o: bc.Outcome) -> str:
    """What the pulls found: nothing (an empty page), only payloads of beststag's own writes (their echoes,
    which Airtable pings for too), or an outside write's."""
    outside = sorted(o.extra.get("outside_at", []))
    empty = echo = 0
    prev = float("-inf")
    for at, payloads in client.pull_at:
        if payloads == 0:
            empty += 1
        elif not any(prev < w <= at for w in outside):
            echo += 1
        prev = at
    useful = client.pulls - empty - echo
    return f"{client.pulls} pulls: {empty} empty, {echo} only echoes of our writes, {useful} after outside writes"


def _reads_text(o: bc.Outcome) -> str:
    """Listings and gets by cause: answers fetched (first reads, refetches) and revalidation's listings."""
    first = o.miss_requests.get("first read", 0)
    refetch = sum(o.miss_requests.values()) - first
    listings = o.reads - first - refetch  # the schema request (meta) is part of the first read
    return f"listings+gets {o.reads}: first reads {first}, refetches {refetch}, revalidation listings {listings}"


def run(quick: bool) -> dict[str, Any]:
    n_ops = 1500 if quick else 5000
    records = 300 if quick else 500
    per_table = 15 if quick else 50
    figures: list[dict[str, Any]] = []
    setup: dict[str, Any] = {"operations": n_ops, "records per table": records, "poll": f"{POLL_S} s"}
    with tempfile.TemporaryDirectory(prefix="beststag-bench-feed-") as tmpdir:
        env = bc.build_env(Path(tmpdir), records, per_table)
        ops = bc.make_ops(random.Random(bc.SEED + 1), n_ops, len(env.queries), records)
        truth = bc.replay_truth(env, ops)  # outside writes are the same writes: the same truth
        for share in (0.02, 0.10):
            vops = _outside(random.Random(bc.SEED + 2), ops, share)
            pct = f"{share:.0%}"
            modes = {
                "TTL only": lambda *a: bc.Beststag(*a, revalidate=False, name="TTL only"),
                "revalidation": lambda *a: bc.Beststag(*a, name="revalidation"),
                "feed, polled": lambda *a: FeedClient(*a, name="feed, polled"),
                "feed, pinged": lambda *a: FeedClient(*a, pinged=True, name="feed, pinged"),
            }
            made: dict[str, Any] = {}

            def keep(make: Any, name: str, made: dict[str, Any] = made) -> Any:
                def build(*a: Any) -> Any:
                    made[name] = make(*a)
                    return made[name]

                return build

            res = {
                name: bc.run_client(env, keep(make, name), vops, truth, f"{pct} {name}") for name, make in modes.items()
            }
            base = res["revalidation"]

            def upstream(o: bc.Outcome) -> int:
                return o.reads + int(o.extra.get("other_requests", 0))

            for name, o in res.items():
                role = "baseline" if name == "revalidation" else "measured"
                figures.append(
                    figure(
                        f"{pct} outside, {name}: upstream requests",
                        upstream(o),
                        "requests",
                        baseline=None if role == "baseline" else "revalidation",
                        ratio=None if role == "baseline" else ratio(upstream(o), upstream(base)),
                        goal="< revalidation" if name.startswith("feed") else None,
                        ok=upstream(o) < upstream(base) if name.startswith("feed") else None,
                        note=f"{o.outside_writes} outside writes; {_reads_text(o)}"
                        + (
                            f"; {_pulls_text(made[name], o)}; gaps {made[name].gaps or 'none'}"
                            if isinstance(made.get(name), FeedClient)
                            else ""
                        ),
                        role=role,
                    )
                )
                late = _stale_after_poll(o)
                figures.append(
                    figure(
                        f"{pct} outside, {name}: stale reads",
                        o.stale,
                        f"of {o.read_ops}",
                        note=f"{late} more than {POLL_S} s after the last outside write",
                        goal=f"0 older than {POLL_S} s" if name.startswith("feed") else None,
                        ok=late == 0 if name.startswith("feed") else None,
                        role=role,
                    )
                )
    return {"figures": figures, "setup": setup, "notes": [__doc__.split("\n\n")[0].replace("\n", " ")]}
