"""Faults: with the sandbox answering ~20% 429/500/503, adding latency and dropping connections (also
after applying a write), every command succeeds with the right answer, serves a flagged stale answer,
or fails cleanly (exit 4 or 3, one line); no write is ever applied twice (proved by counting records).

Retries are real (the gateway's policy runs unchanged); only their waits are recorded instead of
slept (`fast_retries`), so the whole file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.sandbox import FaultConfig

from .conftest import BASE, assert_clean_failure

ROUNDS = 6  # seeds; each runs every command once


def faults(seed: int) -> FaultConfig:
    return FaultConfig(
        seed=seed, latency_ms=1, rate_429=0.07, rate_500=0.07, rate_503=0.06, rate_drop=0.04, rate_drop_after=0.04
    )


class Tally:
    """What the sandbox injected (status 0 = a dropped connection) and how each command ended."""

    def __init__(self, sandbox: Any) -> None:
        self.statuses: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        sandbox.app.observers.append(lambda method, route, status: self.statuses.update([status]))

    @property
    def injected(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in (0, 429, 500, 503))


def _outcome(r: Any) -> str:
    if r.exit_code == 0:
        return "ok"
    assert_clean_failure(r.exit_code, r.stdout, r.stderr, expected=r.exit_code)
    assert r.exit_code in (3, 4), r
    return r.json()["error"]["type"]


def _same(records: Any) -> Any:
    """Records without signed attachment URLs (their expiry moves with the clock)."""
    if isinstance(records, dict):
        return {k: _same(v) for k, v in records.items() if k not in ("url", "thumbnails")}
    if isinstance(records, list):
        return [_same(v) for v in records]
    return records


def _titles(sandbox: Any, prefix: str) -> Counter[str]:
    """How many records of Tarefas carry each title starting with `prefix` (read with faults off)."""
    recs = sandbox.api(retry_strategy=None).table(BASE, "Tarefas").all(fields=["Título"])
    return Counter(t for r in recs if str(t := r["fields"].get("Título", "")).startswith(prefix))


def _exists(sandbox: Any, rid: str) -> bool:
    from requests import HTTPError

    try:
        sandbox.api(retry_strategy=None).table(BASE, "Tarefas").get(rid)
        return True
    except HTTPError:
        return False


@pytest.fixture
def tally(sandbox: Any) -> Tally:
    return Tally(sandbox)


def test_reads_are_right_or_flagged_stale_or_fail_cleanly(cli, sandbox, fast_retries, tally) -> None:
    queries = [
        ["Usuários", "--filter", '{"status": "Ativo"}', "--max", "30"],
        ["Tarefas", "--sort", "-vencimento", "--max", "120"],
        ["Interações", "--fields", "Resumo,canal", "--max", "250"],
    ]
    truth = {}
    for q in queries:
        r = cli("--json", "query", "run", *q)
        assert r.exit_code == 0, r
        truth[tuple(q)] = _same(r.json()["records"])
    for seed in range(ROUNDS):
        sandbox.app.set_faults(faults(seed))
        for q in queries:
            r = cli("--json", "query", "run", *q)
            if (o := _outcome(r)) == "ok":
                assert _same(r.json()["records"]) == truth[tuple(q)]
            tally.outcomes["query run " + o] += 1
            clock.advance(10_000)  # every cached answer expired: each get goes upstream
            r = cli("--json", "cache", "get", *q)
            if (o := _outcome(r)) == "ok":
                assert _same(r.json()["records"]) == truth[tuple(q)]
                c = r.json()["cache"]
                o = c["status"]
                # expired: refetched (miss), revalidated with the table's changes (hit), or flagged stale
                assert o in ("miss", "stale") or (o == "hit" and c.get("revalidated")), c
            tally.outcomes["cache get " + o] += 1
    sandbox.app.set_faults(FaultConfig())
    print("\nreads under faults:", dict(tally.outcomes), "injected:", dict(tally.statuses))
    assert tally.injected >= 20, tally.statuses


def test_an_outage_serves_the_expired_answer_flagged_stale(cli, sandbox, fast_retries) -> None:
    q = ["Usuários", "--filter", '{"plano": "Pro"}']
    fresh = cli("--json", "cache", "get", *q).json()
    clock.advance(fresh["cache"]["ttl_s"] + 5)
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    r = cli("--json", "cache", "get", *q)
    sandbox.app.set_faults(FaultConfig())
    assert r.exit_code == 0, r
    assert r.json()["cache"]["status"] == "stale" and r.json()["records"] == fresh["records"]
    clock.advance(10**6)  # past max_stale_s: nothing may be served any more
    sandbox.app.set_faults(FaultConfig(rate_503=1.0))
    r = cli("--json", "cache", "get", *q)
    sandbox.app.set_faults(FaultConfig())
    assert _outcome(r) == "upstream_unavailable"


def test_writes_are_never_applied_twice(cli, sandbox, fast_retries, tally) -> None:
    counts: Counter[str] = Counter()
    for seed in range(ROUNDS):
        tag = f"fault-{seed}-"
        sandbox.app.set_faults(faults(seed))
        created: dict[str, str] = {}
        deleted: list[str] = []
        for i in range(4):  # creates, one batch each
            r = cli("--json", "records", "create", "Tarefas", "--data", json.dumps({"Título": f"{tag}c{i}"}))
            o = _outcome(r)
            counts["create " + o] += 1
            if o == "ok":
                created[f"{tag}c{i}"] = r.json()["records"][0]["id"]
        # a 25-record create: three batches, some may be confirmed and one lost
        r = cli(
            "--json",
            "records",
            "create",
            "Tarefas",
            "--data",
            json.dumps([{"Título": f"{tag}b{i}"} for i in range(25)]),
        )
        counts["create-batch " + _outcome(r)] += 1
        # upserts: retry-safe creates
        for i in range(4):
            r = cli(
                "--json",
                "records",
                "upsert",
                "Tarefas",
                "--merge-on",
                "Título",
                "--data",
                json.dumps([{"fields": {"Título": f"{tag}u{i}", "prioridade": "Alta"}}]),
            )
            counts["upsert " + _outcome(r)] += 1
        for title, rid in list(created.items())[:2]:
            r = cli(
                "--json",
                "records",
                "update",
                "Tarefas",
                "--data",
                json.dumps([{"id": rid, "fields": {"Título": title + "-upd"}}]),
            )
            o = _outcome(r)
            counts["update " + o] += 1
            if o == "ok":
                assert r.json()["records"][0]["fields"]["Título"] == title + "-upd"
        for rid in list(created.values())[2:]:
            r = cli("--json", "records", "delete", "Tarefas", "--yes", "--id", rid)
            o = _outcome(r)
            counts["delete " + o] += 1
            if o == "ok":
                deleted.append(rid)
        sandbox.app.set_faults(FaultConfig())
        assert not any(_exists(sandbox, rid) for rid in deleted)
        seen = _titles(sandbox, tag)
        assert all(n == 1 for n in seen.values()), {t: n for t, n in seen.items() if n > 1}  # never twice
        for i in range(4):  # upserts retried until they stuck exactly once
            assert seen.get(f"{tag}u{i}", 0) <= 1
    tally.outcomes.update(counts)
    print("\nwrites under faults:", dict(counts), "injected:", dict(tally.statuses))
    assert tally.injected >= 20, tally.statuses
    assert counts["create ok"] and counts["upsert ok"], counts


def test_backup_run_and_metrics_under_faults(cli, sandbox, fast_retries, tally) -> None:
    counts: Counter[str] = Counter()
    for seed in range(3):
        sandbox.app.set_faults(faults(100 + seed))
        r = cli("--json", "backup", "run", "--type", "complete")
        o = _outcome(r)
        counts["backup run " + o] += 1
        r2 = cli("--json", "metrics", "collect", "--type", "all", "--range", "24h")
        counts["metrics collect " + _outcome(r2)] += 1
        sandbox.app.set_faults(FaultConfig())
        if o == "ok":
            done = r.json()
            assert cli("--json", "backup", "verify", done["id"]).exit_code == 0
            for table, info in done["tables"].items():
                assert info["records"] == sandbox.store.count(BASE, table), table
        clock.advance(2)  # the next backup gets a new id
    listed = cli("--json", "backup", "list").json()
    assert {b["status"] for b in listed} <= {"ok"}  # a failed run is never listed
    print("\nbackup/metrics under faults:", dict(counts), "injected:", dict(tally.statuses))
    assert counts["backup run ok"] >= 1 and tally.injected >= 20


def test_restore_under_faults_recreates_each_record_once(cli, sandbox, fast_retries, tally) -> None:
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Tarefas")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    want = sandbox.store.count(BASE, "Tarefas")
    table = sandbox.api(retry_strategy=None).table(BASE, "Tarefas")
    gone = [rec["id"] for rec in table.all(max_records=35)]
    table.batch_delete(gone)
    counts: Counter[str] = Counter()
    # drops after a create: test_restore_resumed_after_a_lost_create_answer_duplicates_nothing
    sandbox.app.set_faults(dataclasses.replace(faults(7), rate_drop_after=0.0))
    r = cli("--json", "backup", "restore", backup_id, "--tables", "Tarefas", "--dry-run")
    counts["restore --dry-run " + _outcome(r)] += 1
    assert sandbox.store.count(BASE, "Tarefas") == want - 35  # the dry run wrote nothing
    for _attempt in range(6):  # rerun until done, as an operator would
        r = cli("--json", "backup", "restore", backup_id, "--tables", "Tarefas", "--yes")
        o = _outcome(r)
        counts["restore " + o] += 1
        if o == "ok":
            break
    sandbox.app.set_faults(FaultConfig())
    if o != "ok":
        r = cli("--json", "backup", "restore", backup_id, "--tables", "Tarefas", "--yes")
        assert r.exit_code == 0, r
    print("\nrestore under faults:", dict(counts), "injected:", dict(tally.statuses))
    assert sandbox.store.count(BASE, "Tarefas") == want  # every deleted record back, none twice


def test_webhooks_under_faults(fast_retries, client, sandbox, tally) -> None:
    counts: Counter[str] = Counter()
    body = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}, "maxRecords": 40}
    truth = _same(client.post("/webhook/airtable/cache", json=body).json()["records"])
    for seed in range(ROUNDS):
        sandbox.app.set_faults(faults(200 + seed))
        for _ in range(3):
            client.post("/webhook/airtable/cache", json={"operation": "invalidate", "table": "Usuários"})
            r = client.post("/webhook/airtable/cache", json=body)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 200:
                assert _same(r.json()["records"]) == truth
                counts["cache get " + r.json()["cache"]["status"]] += 1
            else:
                assert r.json()["error"]["type"] == "upstream_unavailable"
                counts["cache get 503"] += 1
        r = client.post("/webhook/airtable/metrics", json={"metric_type": "usage", "time_range": "24h"})
        assert r.status_code in (200, 503), r.text
        counts[f"metrics {r.status_code}"] += 1
    sandbox.app.set_faults(FaultConfig())
    print("\nwebhooks under faults:", dict(counts), "injected:", dict(tally.statuses))
    assert counts["cache get miss"] >= 1 and tally.injected >= 5


class DropAfterFirstCreate:
    """Wraps the sandbox app: the first record create is applied, then its connection drops."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from beststag_cli.sandbox.app import DropConnection

        out = self._app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if (
            not self.dropped
            and environ["REQUEST_METHOD"] == "POST"
            and path.count("/") == 3
            and "listRecords" not in path
        ):
            self.dropped += 1
            raise DropConnection()
        return out


def test_restore_resumed_after_a_lost_create_answer_duplicates_nothing(cli, sandbox, fast_retries) -> None:
    r = cli("--json", "backup", "run", "--type", "complete", "--tables", "Tarefas")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    want = sandbox.store.count(BASE, "Tarefas")
    table = sandbox.api(retry_strategy=None).table(BASE, "Tarefas")
    table.batch_delete([rec["id"] for rec in table.all(max_records=25)])
    wrapper = DropAfterFirstCreate(sandbox.app)
    sandbox.app = wrapper
    r = cli("--json", "backup", "restore", backup_id, "--tables", "Tarefas", "--yes")
    assert wrapper.dropped == 1
    assert r.exit_code == 0, r  # the lost batch is found in the base within the same run, not sent again
    assert sandbox.store.count(BASE, "Tarefas") == want
    r = cli("--json", "backup", "restore", backup_id, "--tables", "Tarefas", "--yes")
    assert r.exit_code == 0, r
    assert sandbox.store.count(BASE, "Tarefas") == want
