"""Backups: throughput under Airtable's real limit, memory on a huge table, restore throughput.

Issue 7 goals (shown next to the figures, never asserted):

1. a complete backup of ~20,000 records with the sandbox enforcing 5 req/s and the 30 s penalty
   reaches ≥ 90% of the ceiling (100 records a page × 5 pages a second = 500 records/s), with no 429;
2. peak RSS of a process backing up one 200,000-record table (limits off) stays under 150 MB;
3. a restore reaches ≥ 90% of its ceiling (10 records a write × 5 writes a second = 50 records/s).

Setup and baselines (measured in the same run):

1. the sample base at scale 10 (~19,500 records in the six tables of the `complete` type; scale 1
   with --quick), in-process. Baseline: the same backup with the limit off (what our own work
   costs; the limited run should be bound by the limit alone). The ceiling is also computed
   from the requests actually sent (the last page of each table is not full).
2. a base with one 200,000-record table (20,000 with --quick) served over loopback HTTP by
   `sandbox serve`'s server in this process; the backup runs in a child process whose peak RSS
   is reported (``VmHWM`` from ``/proc/self/status``; ``resource.getrusage``'s ``ru_maxrss``
   elsewhere, and shown too: on Linux it keeps the parent's peak across fork+exec, and this
   parent holds the 200,000 records). Baseline: the same child after importing everything and
   reading one page (what the process weighs before any streaming).
3. disaster recovery in the same base: every Interações record (1,000; 300 with --quick) is
   deleted, then restored from the backup with the limit on; links to Usuários are kept.
   Second figure: the whole sample restored into an empty base (links remapped, attachments
   uploaded one request each), against the ceiling of the requests it needs.

``--recovery`` (issue 20; goal ≥ 0.9 of the ceiling, the whole base back well under an hour): the
sample base at scale 5 (0.5 with --quick), its complete backup restored into a new base of a 5 req/s
`sandbox serve` server over loopback HTTP. Ceiling: records/10 + uploads + link updates at 5 req/s;
the metadata calls creating the base (counted by `backup/drill.py:schema_requests`, not sent: the base's
tables come from the sandbox's loader until restore creates schemas) are added in a second figure. A
`backup drill` of the same backup runs first; its recovery estimate is set against the measured time.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

RECORDS_PER_PAGE = 100
RECORDS_PER_WRITE = 10
RATE = 5
BIG_BASE = "appBackupBench001"
BIG_TABLE = "Big"

_BIG_SCHEMA: dict[str, Any] = {
    "name": "Backup benchmark",
    "tables": [
        {
            "name": BIG_TABLE,
            "fields": [
                {"name": "Resumo", "type": "singleLineText"},
                {"name": "message", "type": "multilineText"},
                {"name": "tokens", "type": "number", "options": {"precision": 0}},
                {"name": "resolvido", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
            ],
        }
    ],
}

_CHILD = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
from beststag_cli.config import Settings
from beststag_cli.gateway.api import Gateway
from beststag_cli.backup.runner import run_backup

class NoLimit:
    def acquire(self, base): pass
    def hold(self, base): return None
    def penalize(self, base, seconds): pass

s = Settings.model_validate({"data_dir": cfg["data"], "airtable": {"token": "sandbox", "base_id": cfg["base"],
                             "endpoint_url": cfg["url"], "timeout_s": 120}})
gw = Gateway(s, limiter=NoLimit(), source="bench")
t0 = time.perf_counter()
if cfg["mode"] == "baseline":
    next(iter(gw.iterate(cfg["table"])))
    records = 100
else:
    records = run_backup(s, gw, "complete", [cfg["table"]]).manifest.records
def peak_mb():
    # VmHWM belongs to this exec'd image; ru_maxrss also carries the parent's peak across fork+exec
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"

mb, how = peak_mb()
print(json.dumps({"rss_mb": mb, "how": how, "records": records, "seconds": time.perf_counter() - t0,
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _progress(msg: str) -> None:
    print(f"[bench backup] {msg}", file=sys.stderr, flush=True)


def _settings(data: Path) -> Any:
    from beststag_cli.config import default_settings

    return default_settings(data)


def _big_rows(n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for i in range(n):
        stamp = f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z"
        out.append(
            (
                f"k{i}",
                stamp,
                stamp,
                {
                    "Resumo": f"registro {i}",
                    "message": f"mensagem número {i} " * 6,
                    "tokens": i % 997,
                    "resolvido": i % 3 == 0,
                },
            )
        )
    return out


def _throughput(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.sandbox import LimitConfig, Sandbox
    from beststag_cli.sandbox.seed import load_sample

    scale = 1 if quick else 10
    sb = Sandbox(tmp / "sample.sqlite")
    _progress(f"seeding the sample base at scale {scale} ...")
    load_sample(sb.store, scale=scale)
    gw = Gateway(_settings(tmp / "nolimit"), sandbox=sb, source="bench")
    _progress("baseline: complete backup with the limit off ...")
    t0 = time.perf_counter()
    base = run_backup(gw.settings, gw, "complete")
    base_s = time.perf_counter() - t0
    gw.close()

    sb.app.set_limits(LimitConfig(per_second=RATE, penalty_s=30))
    gw = Gateway(_settings(tmp / "limited"), sandbox=sb, source="bench")
    time.sleep(1.1)  # an empty window for the sandbox's own limiter
    before_req, before_429 = sb.app.stats.requests, sb.app.stats.rate_limited
    _progress(
        f"complete backup of {base.manifest.records:,} records at {RATE} req/s "
        f"(~{base.manifest.records / 500:.0f} s) ..."
    )
    t0 = time.perf_counter()
    res = run_backup(gw.settings, gw, "complete")
    secs = time.perf_counter() - t0
    requests = sb.app.stats.requests - before_req - res.manifest.attachments_count  # downloads are not API calls
    got_429 = sb.app.stats.rate_limited - before_429
    gw.close()
    sb.close()
    n = res.manifest.records
    rate = n / secs
    ideal = n / (requests / RATE)  # the ceiling for the pages this base actually has
    figs = [
        figure(
            "backup, 5 req/s limit",
            rate,
            "records/s",
            baseline="ceiling 100 records × 5 req/s = 500",
            ratio=ratio(rate, RECORDS_PER_PAGE * RATE),
            goal="≥ 90% of 500, no 429",
            ok=rate >= 0.9 * RECORDS_PER_PAGE * RATE and got_429 == 0,
            note=f"{n:,} records, {requests} requests in {secs:.1f} s; 429s: {got_429}",
        ),
        figure(
            "backup vs its exact ceiling",
            rate,
            "records/s",
            baseline=f"{ideal:.0f} records/s (records ÷ requests sent × 5)",
            ratio=ratio(rate, ideal),
        ),
        figure(
            "backup, no limit (baseline)",
            n / base_s,
            "records/s",
            role="baseline",
            note=f"{base_s:.2f} s: our own cost per run",
        ),
    ]
    setup = {
        "sample scale": scale,
        "records backed up": n,
        "requests sent (limited run)": requests,
        "attachments stored": res.manifest.attachments_count,
        "429 answers": got_429,
    }
    return figs, setup


def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from beststag_cli.sandbox import Sandbox
    from beststag_cli.sandbox.server import serve_in_thread

    n = 20_000 if quick else 200_000
    sb = Sandbox(tmp / "big.sqlite")
    sb.store.create_base(_BIG_SCHEMA, BIG_BASE, seed=5)
    _progress(f"loading a {n:,}-record table ...")
    sb.store.bulk_load(BIG_BASE, {BIG_TABLE: _big_rows(n)})
    server, _thread = serve_in_thread(sb.app)
    url = f"http://127.0.0.1:{server.server_port}"
    cfg = {"data": str(tmp / "big-data"), "base": BIG_BASE, "url": url, "table": BIG_TABLE}
    try:
        base = _child({**cfg, "mode": "baseline"})
        _progress(f"backing up {n:,} records in a child process over HTTP (limit off) ...")
        run = _child({**cfg, "mode": "backup"})
    finally:
        server.shutdown()
        server.server_close()
        sb.close()
    figs = [
        figure(
            f"peak RSS, backup of a {n:,}-record table",
            run["rss_mb"],
            "MB",
            baseline=f"same process after reading one page: {base['rss_mb']:.0f} MB",
            ratio=ratio(run["rss_mb"], base["rss_mb"]),
            goal="< 150 MB",
            ok=run["rss_mb"] < 150,
            note=f"{run['records']:,} records in {run['seconds']:.1f} s over loopback HTTP; peak from "
            f"{run['how']} (ru_maxrss says {run['ru_maxrss_mb']:.0f} MB: it inherits the parent's "
            "peak across fork+exec on Linux)",
        ),
        figure("peak RSS after one page (baseline)", base["rss_mb"], "MB", role="baseline"),
    ]
    return figs, {"big table records": n}


def _restore(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from beststag_cli.backup.restore import execute_restore, gateway_for_base, plan_restore
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.sandbox import LimitConfig, Sandbox
    from beststag_cli.sandbox.seed import load_sample

    scale = 0.3 if quick else 1
    sb = Sandbox(tmp / "restore.sqlite")
    load_sample(sb.store, scale=scale)
    gw = Gateway(_settings(tmp / "restore-data"), sandbox=sb, source="bench")
    backup = run_backup(gw.settings, gw, "complete")
    ids = [r["id"] for r in gw.all("Interações")]
    for i in range(0, len(ids), 10):
        gw.delete("Interações", ids[i : i + 10])

    sb.app.set_limits(LimitConfig(per_second=RATE, penalty_s=30))
    time.sleep(1.1)
    before_req, before_429 = sb.app.stats.requests, sb.app.stats.rate_limited
    _progress(f"restoring {len(ids):,} deleted Interações at {RATE} req/s (~{len(ids) / 50:.0f} s) ...")
    t0 = time.perf_counter()
    plan = plan_restore(gw.settings, gw, backup.manifest.id, tables=["Interações"])
    res = execute_restore(gw.settings, gw, plan)
    secs = time.perf_counter() - t0
    req1 = sb.app.stats.requests - before_req
    n1 = res.created.get("Interações", 0)
    assert n1 == len(ids), (n1, len(ids))
    rate1 = n1 / secs

    load_sample(sb.store, base_id="appRestoreBench01", with_records=False, seed=9)
    time.sleep(1.1)
    before_req = sb.app.stats.requests
    total = backup.manifest.records
    _progress(
        f"restoring all {total:,} records into an empty base at {RATE} req/s "
        f"(~{total / 50 + backup.manifest.attachments_count / 5:.0f} s) ..."
    )
    t0 = time.perf_counter()
    plan = plan_restore(gw.settings, gw, backup.manifest.id, target_base="appRestoreBench01")
    res2 = execute_restore(gw.settings, gw, plan)
    secs2 = time.perf_counter() - t0
    req2 = sb.app.stats.requests - before_req
    got_429 = sb.app.stats.rate_limited - before_429
    n2 = res2.records
    uploads = sum(res2.uploaded.values())
    needed = math.ceil(n2 / RECORDS_PER_WRITE) + uploads
    gateway_for_base(gw, "appRestoreBench01")
    gw.close()
    sb.close()
    ceiling = RECORDS_PER_WRITE * RATE
    figs = [
        figure(
            "restore of deleted records, 5 req/s",
            rate1,
            "records/s",
            baseline="ceiling 10 records × 5 req/s = 50",
            ratio=ratio(rate1, ceiling),
            goal="≥ 90% of 50",
            ok=rate1 >= 0.9 * ceiling,
            note=f"{n1:,} records, {req1} requests (incl. planning reads) in {secs:.1f} s",
        ),
        figure(
            "full restore into an empty base, 5 req/s",
            n2 / secs2,
            "records/s",
            baseline=f"its request ceiling {n2 / (needed / RATE):.1f} records/s ({needed} writes incl. "
            f"{uploads} uploads)",
            ratio=ratio(n2 / secs2, n2 / (needed / RATE)),
            note=f"{n2:,} records, {req2} requests in {secs2:.1f} s; vs 50 records/s: {ratio(n2 / secs2, ceiling):.0%}",
        ),
    ]
    return figs, {"restore: deleted records": n1, "restore: full records": n2, "restore: 429 answers": got_429}


INCR_BASE = "appBackupIncr0001"
INCR_RECORDS = 10_000
INCR_CHANGES = 50


def _incremental(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Issue 19: an incremental of a 10,000-record table after 50 changes by another client (20 updated,
    20 created, 10 deleted), today's way (every id listed, then a LAST_MODIFIED_TIME() filter) against the
    change feed's (the record log since the parent: the named records fetched by RECORD_ID()). Both run in
    this process on the same history, limit off (requests are the figure; seconds are shown too); the
    restored state of both chains is compared record for record."""
    from beststag_cli.backup.chain import backup_index, table_state
    from beststag_cli.backup.layout import find_backup
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.feed import service
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.sandbox import Sandbox

    sb = Sandbox(tmp / "incremental.sqlite")
    sb.store.create_base({**_BIG_SCHEMA, "name": "Incremental benchmark"}, INCR_BASE, seed=8)
    _progress(f"loading a {INCR_RECORDS:,}-record table ...")
    sb.store.bulk_load(INCR_BASE, {BIG_TABLE: _big_rows(INCR_RECORDS)})

    def installation(name: str) -> Gateway:
        s = _settings(tmp / f"incr-{name}")
        s = s.model_copy(update={"airtable": s.airtable.model_copy(update={"base_id": INCR_BASE})})
        return Gateway(s, sandbox=sb, source="bench")

    listing, feed = installation("listing"), installation("feed")
    assert feed.journal is not None
    service.enable(feed, feed.journal, [BIG_TABLE])
    for gw in (listing, feed):
        run_backup(gw.settings, gw, "complete", [BIG_TABLE])

    other = sb.api(retry_strategy=None).table(INCR_BASE, BIG_TABLE)  # the outside writer
    ids = [r["id"] for r in other.all(fields=["tokens"], max_records=30)]
    other.batch_update([{"id": rid, "fields": {"tokens": 1000 + i}} for i, rid in enumerate(ids[:20])])
    other.batch_create([{"Resumo": f"novo {i}", "tokens": i} for i in range(20)])
    other.batch_delete(ids[20:30])

    results: dict[str, dict[str, Any]] = {}
    for name, gw in (("listing", listing), ("feed", feed)):
        _progress(f"incremental backup, {name} ...")
        before = sb.app.stats.requests
        t0 = time.perf_counter()
        m = run_backup(gw.settings, gw, "incremental", [BIG_TABLE]).manifest
        secs = time.perf_counter() - t0
        e = m.tables[BIG_TABLE]
        root = gw.settings.paths.backups
        state = table_state(find_backup(root, m.id), BIG_TABLE, backup_index(root))
        results[name] = {
            "requests": sb.app.stats.requests - before,
            "seconds": secs,
            "changes": e.changes,
            "fetched": e.records,
            "state": {k: v["fields"] for k, v in state.items()},
        }
    live = {r["id"]: r["fields"] for r in other.all()}
    same = results["feed"]["state"] == results["listing"]["state"] == live
    listing.close()
    feed.close()
    sb.close()
    lr, fr = results["listing"], results["feed"]
    figs = [
        figure(
            f"incremental after {INCR_CHANGES} changes, feed: requests",
            fr["requests"],
            "requests",
            baseline=f"today's incremental: {lr['requests']} requests",
            ratio=ratio(fr["requests"], lr["requests"]),
            goal="≤ 5 requests",
            ok=fr["requests"] <= 5 and fr["changes"] == "feed" and same,
            note=f"{fr['fetched']} records fetched in {fr['seconds']:.2f} s; both chains restore to the live "
            f"table: {same}",
        ),
        figure(
            "incremental, feed: seconds",
            fr["seconds"],
            "s",
            baseline=f"today's incremental: {lr['seconds']:.2f} s",
            ratio=ratio(fr["seconds"], lr["seconds"]),
            note=f"limit off, so mostly the sandbox's own work (it evaluates each formula over every record); "
            f"at Airtable's 5 req/s the requests are the cost: {fr['requests'] / RATE:.1f} s vs "
            f"{lr['requests'] / RATE:.1f} s",
        ),
        figure(
            "incremental, today's (id listing + filter)",
            lr["requests"],
            "requests",
            role="baseline",
            note=f"{lr['fetched']} records fetched in {lr['seconds']:.2f} s ({lr['requests'] / RATE:.0f} s at 5 req/s)",
        ),
    ]
    return figs, {"incremental: table records": INCR_RECORDS, "incremental: changes": INCR_CHANGES}


#: the parts of this benchmark (`./scripts/bench backup --incremental` runs one; no flag runs all)
def _recovery(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Issue 20: the whole sample base (scale 5) back from its complete backup into a new base, schema
    created by the restore (`--new-base`: the base, its tables, link fields, through the metadata API), of a
    5 req/s `sandbox serve` over loopback HTTP, against the request ceiling; and the drill's estimate."""
    from beststag_cli.backup.drill import run_drill
    from beststag_cli.backup.restore import NewBase, execute_restore, plan_restore
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.config import Settings
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal
    from beststag_cli.sandbox import LimitConfig, Sandbox
    from beststag_cli.sandbox.meta import SANDBOX_WORKSPACE_ID
    from beststag_cli.sandbox.sample import SAMPLE_BASE_ID
    from beststag_cli.sandbox.seed import load_sample
    from beststag_cli.sandbox.server import serve_in_thread

    scale = 0.5 if quick else 5
    data = tmp / "recovery-data"
    sb = Sandbox(tmp / "recovery.sqlite")
    _progress(f"recovery: seeding the sample base at scale {scale} and taking its complete backup ...")
    load_sample(sb.store, scale=scale)
    gw = Gateway(_settings(data), sandbox=sb, source="bench")
    backup = run_backup(gw.settings, gw, "complete").manifest
    journal = gw.journal
    assert journal is not None
    _progress("recovery: drilling that backup (in-process, no limit) ...")
    drill = run_drill(gw.settings, journal, backup.id)
    gw.close()

    sb.app.set_limits(LimitConfig(per_second=RATE, penalty_s=30))
    meta_writes: list[str] = []
    sb.app.observers.append(
        lambda method, route, status: meta_writes.append(route) if method != "GET" and route == "meta" else None
    )
    server, _thread = serve_in_thread(sb.app)
    url = f"http://127.0.0.1:{server.server_port}"
    s = Settings.model_validate(
        {
            "data_dir": str(data),
            "airtable": {"token": "sandbox", "base_id": SAMPLE_BASE_ID, "endpoint_url": url, "timeout_s": 120},
        }
    )
    tgw = Gateway(s, journal=Journal(data / "journal.sqlite", source="bench"), source="bench")
    try:
        time.sleep(1.1)  # an empty window for the server's limiter
        before_req, before_429 = sb.app.stats.requests, sb.app.stats.rate_limited
        _progress(
            f"recovery: a new base, its schema, {backup.records:,} records and {backup.attachments_count} files at "
            f"{RATE} req/s over HTTP (~{(backup.records / 10 + backup.attachments_count) / RATE:.0f} s) ..."
        )
        t0 = time.perf_counter()
        plan = plan_restore(s, tgw, backup.id, new_base=NewBase("BestStag (recuperada)", SANDBOX_WORKSPACE_ID))
        res = execute_restore(s, tgw, plan)
        secs = time.perf_counter() - t0
        sent = sb.app.stats.requests - before_req
        got_429 = sb.app.stats.rate_limited - before_429
    finally:
        tgw.close()
        server.shutdown()
        server.server_close()
        sb.close()
    schema_calls = len(meta_writes)
    writes = sum(math.ceil(n / RECORDS_PER_WRITE) for n in res.created.values())
    writes += sum(res.uploaded.values()) + sum(math.ceil(n / RECORDS_PER_WRITE) for n in res.links.values())
    ceiling_s = (schema_calls + writes) / RATE
    figs = [
        figure(
            "recovery: whole base into a new base (schema created), 5 req/s HTTP",
            ceiling_s / secs,
            "of ceiling",
            baseline=f"request ceiling {ceiling_s:.1f} s ({schema_calls} schema calls + {writes:,} writes: "
            "records/10 + uploads + link updates)",
            ratio=ratio(ceiling_s, secs),
            goal="≥ 0.9",
            ok=ceiling_s / secs >= 0.9 and got_429 == 0 and res.status == "ok",
            note=f"{res.records:,} records, {sum(res.uploaded.values())} uploads, {sent:,} requests "
            f"(planning reads included) in {secs:.1f} s; 429s: {got_429}",
        ),
        figure(
            "recovery: the whole base back",
            secs / 60,
            "min",
            baseline="the spec's hour",
            ratio=ratio(secs, 3600),
            goal="well under 60 min",
            ok=secs < 3600,
        ),
        figure(
            "drill's recovery estimate vs the measured recovery",
            drill.estimate_s,
            "s",
            baseline=f"measured {secs:.1f} s",
            ratio=ratio(drill.estimate_s, secs),
            note=f"drill {drill.status} in {drill.duration_s:.1f} s (in-process): {drill.requests:,} requests",
        ),
    ]
    setup = {
        "recovery: sample scale": scale,
        "recovery: records": res.records,
        "recovery: attachments": sum(res.uploaded.values()),
        "recovery: schema calls": schema_calls,
        "recovery: 429 answers": got_429,
    }
    return figs, setup


PARTS = {
    "throughput": "complete backup under the 5 req/s limit",
    "memory": "peak RSS backing up a 200,000-record table",
    "restore": "restore throughput (deleted records, whole base)",
    "incremental": "incremental after 50 changes: today's vs the change feed's",
    "recovery": "disaster recovery (issue 20): the whole base at scale 5 into a new base at 5 req/s, and a drill",
}


def run(quick: bool, parts: list[str] | None = None) -> dict[str, Any]:
    figures: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    chosen = parts or list(PARTS)
    fns = {
        "throughput": _throughput,
        "memory": _memory,
        "restore": _restore,
        "incremental": _incremental,
        "recovery": _recovery,
    }
    with tempfile.TemporaryDirectory(prefix="beststag-bench-backup-") as tmp_name:
        tmp = Path(tmp_name)
        for part in (fns[p] for p in chosen):
            figs, info = part(quick, tmp)
            figures += figs
            setup.update(info)
    return {
        "benchmark": "backup",
        "quick": quick,
        "figures": figures,
        "setup": setup,
        "notes": [
            "Ceilings follow from Airtable's limits: 5 requests/s per base, 100 records a page, 10 records a write.",
            "Attachment downloads go to another host in Airtable (not rate-limited) and are not counted as requests.",
        ],
    }
