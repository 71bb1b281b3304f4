"""Round trip into an empty base, point-in-time restores through incremental chains, resume after a crash."""

from __future__ import annotations

from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.backup.restore import execute_restore, gateway_for_base, plan_restore
from beststag_cli.backup.runner import run_backup
from beststag_cli.config import BESTSTAG_TABLES
from beststag_cli.sandbox import FaultConfig

from .conftest import assert_same_state, empty_target, snapshot

TABLES = list(BESTSTAG_TABLES)


def _restore(settings: Any, gateway: Any, backup_id: str, **kw: Any) -> Any:
    plan = plan_restore(settings, gateway, backup_id, **kw)
    return execute_restore(settings, gateway, plan)


def test_round_trip_into_an_empty_base(settings, gateway, sandbox):
    before = snapshot(gateway, TABLES)
    result = run_backup(settings, gateway, "complete")
    assert result.status == "ok"
    assert result.manifest.attachments_count > 0
    target = empty_target(sandbox, gateway, "appRestoreTarget0")

    restored = _restore(settings, gateway, result.manifest.id, target_base="appRestoreTarget0")

    assert restored.status == "ok"
    assert sum(restored.uploaded.values()) == result.manifest.attachments_count
    assert restored.dropped_links == 0
    # every record, field value, link (through the remapped ids) and attachment byte
    assert_same_state(before, snapshot(target, TABLES), restored.plan.id_map)
    # the source base was not touched
    assert_same_state(before, snapshot(gateway, TABLES), {})


def test_a_second_restore_of_the_same_backup_writes_nothing(settings, gateway, sandbox):
    result = run_backup(settings, gateway, "critical")
    target = empty_target(sandbox, gateway, "appRestoreTarget0")
    _restore(settings, gateway, result.manifest.id, target_base="appRestoreTarget0")
    again = plan_restore(settings, gateway, result.manifest.id, target_base="appRestoreTarget0")
    assert again.writes == 0
    assert {t.name: t.skip for t in again.tables} == {"Usuários": 100, "Interações": 1000}
    assert sandbox.store.count("appRestoreTarget0", "Usuários") == 100
    assert target.base_id == "appRestoreTarget0"


def _mutate(gateway: Any, step: int) -> None:
    users = gateway.all("Usuários")
    inter = gateway.all("Interações")
    tasks = gateway.all("Tarefas")
    events = gateway.all("Eventos")
    k = 7 * step
    gateway.update("Usuários", [{"id": u["id"], "fields": {"plano": "Pro", "tags": ["vip"]}} for u in users[k : k + 4]])
    gateway.update(
        "Interações",
        [
            {
                "id": r["id"],
                "fields": {"Resumo": f"editado {step}", "resolvido": True, "user": [users[-1 - step]["id"]]},
            }
            for r in inter[k : k + 10]
        ],
    )
    gateway.delete("Interações", [r["id"] for r in inter[100 + k : 100 + k + 12]])
    gateway.delete("Tarefas", [t["id"] for t in tasks[k : k + 3]])  # some have attachments
    gateway.delete("Usuários", [users[50 + step]["id"]])  # unlinks its interactions, tasks, events
    gateway.create("Tarefas", [{"Título": f"nova {step}-{i}", "responsável": [users[i]["id"]]} for i in range(5)])
    gateway.update(
        "Eventos",
        [{"id": e["id"], "fields": {"participantes": [users[0]["id"], users[1]["id"]]}} for e in events[k : k + 3]],
    )


def test_point_in_time_through_a_chain_of_incrementals(settings, gateway, sandbox):
    tables = ["Usuários", "Interações", "Tarefas", "Eventos"]  # the incremental type's tables
    clock.set_now(clock.now())
    states, ids = [], []
    complete = run_backup(settings, gateway, "complete")
    states.append(snapshot(gateway, tables))
    ids.append(complete.manifest.id)
    for step in (1, 2):
        clock.advance(3600)
        _mutate(gateway, step)
        clock.advance(3600)
        inc = run_backup(settings, gateway, "incremental")
        assert inc.manifest.parent == ids[-1]
        assert all(t.mode == "incremental" for t in inc.manifest.tables.values())
        # only what changed is stored, plus the id list
        assert inc.manifest.tables["Interações"].records < 40
        assert inc.manifest.tables["Interações"].ids == len(states[0]["Interações"]) - 12 * step
        states.append(snapshot(gateway, tables))
        ids.append(inc.manifest.id)
    clock.advance(3600)
    _mutate(gateway, 3)  # more writes after the last backup

    for k, (bid, state) in enumerate(zip(ids, states, strict=True)):
        base = f"appPointInTime{k:03d}"
        target = empty_target(sandbox, gateway, base, seed=100 + k)
        restored = _restore(settings, gateway, bid, tables=tables, target_base=base)
        assert_same_state(state, snapshot(target, tables), restored.plan.id_map)


def test_same_base_restore_with_prune_extra_goes_back_in_time(settings, sandbox):
    from beststag_cli.cache import connect
    from beststag_cli.query.spec import QuerySpec

    gateway, cache = connect(settings, sandbox=sandbox, source="test")  # as every process wires them
    tables = ["Usuários", "Interações", "Tarefas", "Eventos"]
    before = snapshot(gateway, tables)
    backup = run_backup(settings, gateway, "incremental")  # no parent yet: a full copy
    assert all(t.mode == "full" for t in backup.manifest.tables.values())
    _mutate(gateway, 1)
    tasks = QuerySpec.parse({"table": "Tarefas", "fields": ["Título", "status"]})
    cache.get(tasks)  # cached as mutated: the restore must bring it back too
    plan = plan_restore(settings, gateway, backup.manifest.id, prune_extra=True)
    counts = plan.summary()["tables"]
    assert counts["Tarefas"]["create"] == 3 and counts["Tarefas"]["delete"] == 5
    assert counts["Usuários"]["create"] == 1
    restored = execute_restore(settings, gateway, plan)
    # deleted records come back with new ids; everything else keeps its id
    assert len(restored.plan.id_map) == 1 + 12 + 3
    assert_same_state(before, snapshot(gateway, tables), restored.plan.id_map)
    assert plan_restore(settings, gateway, backup.manifest.id, prune_extra=True).writes == 0
    # the restore invalidated the cache of what it touched (journal event; see backup/hooks.py)
    rows = gateway.journal.query("SELECT DISTINCT table_name FROM cache_events WHERE event = 'invalidate'")
    assert {r["table_name"] for r in rows} == set(tables)
    # ... and the cache heard of every write as it was made (the gateway's change sink)
    assert {r["id"] for r in cache.get(tasks).records} == {r["id"] for r in gateway.all("Tarefas")}
    run = gateway.journal.query("SELECT * FROM restore_runs WHERE id = ?", (plan.restore_id,))[0]
    assert run["status"] == "ok" and run["duration_s"] > 0
    cache.close()
    gateway.close()


def test_an_interrupted_restore_resumes_without_duplicates(settings, gateway, sandbox):
    before = snapshot(gateway, ["Usuários", "Interações"])
    backup = run_backup(settings, gateway, "critical")
    empty_target(sandbox, gateway, "appRestoreTarget0")
    gateway.sleep = lambda s: None  # the restore retries a failed batch (with backoff) before giving up
    posts = []

    def fail_after_some_writes(method: str, route: str, status: int) -> None:
        if method == "POST" and status == 200:
            posts.append(route)
            if len(posts) == 30:
                sandbox.app.set_faults(FaultConfig(rate_500=1.0))

    sandbox.app.observers.append(fail_after_some_writes)
    plan = plan_restore(settings, gateway, backup.manifest.id, target_base="appRestoreTarget0")
    with pytest.raises(Exception, match="500") as exc:
        execute_restore(settings, gateway, plan)
    assert "resume" in getattr(exc.value, "hint", "")
    sandbox.app.observers.clear()
    sandbox.app.set_faults(FaultConfig())
    assert (
        0
        < sandbox.store.count("appRestoreTarget0", "Usuários") + sandbox.store.count("appRestoreTarget0", "Interações")
        < 1100
    )

    again = plan_restore(settings, gateway, backup.manifest.id, target_base="appRestoreTarget0")
    assert again.resumed and again.restore_id == plan.restore_id
    result = execute_restore(settings, gateway, again)
    assert sandbox.store.count("appRestoreTarget0", "Usuários") == 100
    assert sandbox.store.count("appRestoreTarget0", "Interações") == 1000
    target = gateway_for_base(gateway, "appRestoreTarget0")
    assert_same_state(before, snapshot(target, ["Usuários", "Interações"]), result.plan.id_map)
