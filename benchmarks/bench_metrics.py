"""`metrics collect --type all --range 30d` over a journal of 1,000,000 request rows.

Issue goal: answers in < 1 s. Shown next to the figure, never asserted.

Setup (timed, reported apart): a temp data dir with the sample sandbox base (in-process), a journal
holding 1,000,000 request rows (100,000 with --quick) spread over the last 30 days plus 200,000
cache events (20,000), and a first rollup pass (what the hourly cron has already done in real life).
Before each measured call 2,000 new request rows arrive (the last hour's traffic), so the
measurement includes folding them into the rollups.

Measured:
- `collect(settings, "all", "30d")` in-process (census of the sample base through the gateway,
  usage, performance, storage, backup sections);
- the same through the CLI, a fresh `beststag --json metrics collect --type all --range 30d` process
  (Python start-up and imports included).
Baseline measured in the same run: the naive way, one scan of the raw requests of the window
(the same sums, then every duration sorted for the percentiles) and the same for cache events.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio, timed, timed_best

GOAL_S = 1.0
DAY = 86400.0


def _fill(journal: Any, n: int, start: float, end: float, rng: random.Random) -> None:
    tables = ["Usuários", "Interações", "Tarefas", "Eventos", "Memória Contextual", "Logs do Sistema"]
    statuses = [200] * 96 + [429, 500, 422, None]
    chunk = 50_000
    for lo in range(0, n, chunk):
        rows = []
        for _ in range(min(chunk, n - lo)):
            status = rng.choice(statuses)
            rows.append(
                (
                    rng.uniform(start, end),
                    "appBestStagSandbx",
                    rng.choice(tables),
                    "GET",
                    "list",
                    status,
                    None if status is None else rng.lognormvariate(5.0, 0.6),
                    100 if status == 200 else 0,
                    12_000 if status == 200 else 80,
                    None,
                    1 if status == 429 else 0,
                    "bench",
                )
            )
        journal._write_many(
            "INSERT INTO requests (ts, base, table_name, method, operation, status, duration_ms,"
            " records, bytes, error_type, retries, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


def _fill_cache(journal: Any, n: int, start: float, end: float, rng: random.Random) -> None:
    events = ["hit"] * 7 + ["miss", "miss", "set", "stale", "invalidate"]
    rows = [
        (rng.uniform(start, end), None, "Tarefas", rng.choice(events), "k", 2000, rng.uniform(0, 300)) for _ in range(n)
    ]
    journal._write_many(
        'INSERT INTO cache_events (ts, base, table_name, event, "key", bytes, age_s) VALUES (?,?,?,?,?,?,?)', rows
    )


def _naive(journal: Any, start: float, end: float) -> dict[str, Any]:
    """What collect would cost without rollups: scan and sort the raw rows of the window."""
    agg = journal.query(
        "SELECT count(*) AS n, sum(CASE WHEN status IS NULL OR (status >= 400 AND status <> 429) THEN 1 ELSE 0 END)"
        " AS e, sum(CASE WHEN status = 429 THEN 1 ELSE 0 END) AS r, sum(CASE WHEN retries > 0 THEN 1 ELSE 0 END)"
        " AS t, avg(duration_ms) AS a, table_name FROM requests WHERE ts >= ? AND ts <= ? GROUP BY table_name",
        (start, end),
    )
    durs = [
        r[0]
        for r in journal.conn.execute(
            "SELECT duration_ms FROM requests"
            " WHERE ts >= ? AND ts <= ? AND duration_ms IS NOT NULL ORDER BY duration_ms",
            (start, end),
        )
    ]
    p = {q: durs[int(q * (len(durs) - 1))] for q in (0.5, 0.95, 0.99)} if durs else {}
    cache = journal.query(
        "SELECT event, count(*) AS n FROM cache_events WHERE ts >= ? AND ts <= ? GROUP BY event", (start, end)
    )
    return {"agg": agg, "p": p, "cache": cache}


def run(quick: bool = False) -> dict[str, Any]:
    from beststag_cli import clock
    from beststag_cli.config import load_config
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal
    from beststag_cli.metrics import collect, refresh_rollups

    n = 100_000 if quick else 1_000_000
    n_cache = n // 5
    repeats = 3 if quick else 5
    rng = random.Random(8)
    tmp = tempfile.TemporaryDirectory(prefix="bench-metrics-")
    old_env = {k: os.environ.get(k) for k in ("BESTSTAG_DATA_DIR",)}
    os.environ["BESTSTAG_DATA_DIR"] = str(Path(tmp.name) / "var")
    try:
        settings = load_config()
        now = clock.timestamp()
        journal = Journal(settings.paths.journal, source="bench")
        fill_s, _ = timed(
            lambda: (
                _fill(journal, n, now - 30 * DAY, now, rng),
                _fill_cache(journal, n_cache, now - 30 * DAY, now, rng),
            )
        )
        rollup_s, _ = timed(lambda: refresh_rollups(journal))
        gateway = Gateway(settings, journal=journal, source="bench")
        seed_s, _ = timed(lambda: gateway.sandbox)  # seeds the sample base once
        collect(settings, "all", "30d", gateway=gateway, journal=journal)  # warm: imports, first census

        def fresh_traffic_then_collect() -> dict[str, Any]:
            t = clock.timestamp()
            _fill(journal, 2000, t - 3600, t, rng)
            return collect(settings, "all", "30d", gateway=gateway, journal=journal)

        best, median, result = timed_best(fresh_traffic_then_collect, repeats)
        t = clock.timestamp()
        naive_best, naive_median, _ = timed_best(lambda: _naive(journal, t - 30 * DAY, t), max(2, repeats // 2))

        env = {**os.environ, "BESTSTAG_DATA_DIR": str(Path(tmp.name) / "var")}
        cli = [sys.executable, "-m", "beststag_cli", "--json", "metrics", "collect", "--type", "all", "--range", "30d"]
        cli_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
            cli_times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"CLI failed: {proc.stderr[-500:]}")
        cli_best = min(cli_times)
        imports = [
            sys.executable,
            "-c",
            "import beststag_cli.cli.main, beststag_cli.metrics.collect, pyairtable,"
            " beststag_cli.sandbox.formula.parser as p; p.get_parser()",
        ]
        import_best = min(timed(lambda: subprocess.run(imports, env=env, check=True, timeout=60))[0] for _ in range(3))
        perf = result["metrics"]["performance"]
        journal_mb = sum(p.stat().st_size for p in settings.paths.journal.parent.glob("journal.sqlite*")) / 1e6
        gateway.close()
        journal.close()
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        tmp.cleanup()

    figures = [
        figure(
            "collect --type all --range 30d (in-process)",
            best,
            "s",
            baseline="naive raw scan + sort",
            ratio=ratio(best, naive_best),
            goal=f"< {GOAL_S:g} s",
            ok=best < GOAL_S,
            note=f"median {median:.3f} s; includes folding 2,000 new rows and the Airtable census",
        ),
        figure(
            "beststag --json metrics collect --type all --range 30d (new process)",
            cli_best,
            "s",
            baseline="naive raw scan + sort",
            ratio=ratio(cli_best, naive_best),
            goal=f"< {GOAL_S:g} s",
            ok=cli_best < GOAL_S,
            note="Python start-up and imports included",
        ),
        figure(
            "naive raw scan + sort of the window",
            naive_best,
            "s",
            role="baseline",
            note=f"median {naive_median:.3f} s; performance section only, no census",
        ),
        figure(
            "new process importing the CLI, pyairtable and the sandbox grammar",
            import_best,
            "s",
            role="baseline",
            note="start-up cost every command pays before any metric work",
        ),
    ]
    return {
        "benchmark": "metrics",
        "quick": quick,
        "figures": figures,
        "setup": {
            "request rows in the journal": n,
            "cache events in the journal": n_cache,
            "requests in the 30d window (collected)": perf["requests_total"],
            "percentile method": perf["response_time_seconds"]["percentile_method"],
            "journal MB": round(journal_mb, 1),
            "fill s": round(fill_s, 2),
            "first rollup pass s": round(rollup_s, 2),
            "sandbox seeding s": round(seed_s, 2),
            "CLI runs s": [round(x, 3) for x in cli_times],
        },
        "notes": [
            "ratios are measured value ÷ baseline measured in this run; for seconds, lower is better",
            "the first rollup pass is a one-off (after an upgrade); afterwards each collect folds only new rows",
        ],
    }
