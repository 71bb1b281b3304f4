"""Every writer's changes reach the cache (issue 17, defect 2): a failed restore and `metrics push`.

Driven through the CLI, the way an operator runs them, so the test holds whatever the wiring inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from beststag_cli.sandbox import FaultConfig

REPO = Path(__file__).resolve().parents[2]
BASE = "appBestStagSandbx"


def _quick_retries(tmp_path: Path) -> Path:
    """The repo's config with millisecond backoffs: the restore's own retries of a failed batch finish at once."""
    raw = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    raw.setdefault("airtable", {})
    raw["airtable"]["max_retries"] = 1
    raw["airtable"]["backoff"] = {"base_s": 0.001, "max_s": 0.002, "jitter": 0.0}
    cfg = tmp_path / "quick.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return cfg


def _ids(cli: Any, table: str) -> tuple[str, set[str]]:
    r = cli("--json", "cache", "get", table)
    assert r.exit_code == 0, r
    doc = r.json()
    return doc["cache"]["status"], {x["id"] for x in doc["records"]}


def test_a_restore_that_fails_part_way_leaves_no_pre_restore_answer_cached(
    cli, api, sandbox, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("BESTSTAG_CONFIG", str(_quick_retries(tmp_path)))
    r = cli("--json", "backup", "run", "--type", "critical")
    assert r.exit_code == 0, r
    backup_id = r.json()["id"]
    users = api.table(BASE, "Usuários")
    users.batch_delete([x["id"] for x in users.all(max_records=25)])  # changed outside beststag
    before = _ids(cli, "Usuários")[1]
    assert len(before) == 75
    assert _ids(cli, "Usuários")[0] == "hit"  # the pre-restore answer is cached

    creates: list[int] = []

    def fail_after_the_first_create(method: str, route: str, status: int) -> None:
        if route == "create" and status == 200:
            creates.append(status)
            sandbox.app.set_faults(FaultConfig(rate_500=1.0, routes=("create",)))

    sandbox.app.observers.append(fail_after_the_first_create)
    r = cli("--json", "backup", "restore", backup_id, "--yes")
    sandbox.app.observers.clear()
    sandbox.app.set_faults(FaultConfig())
    assert r.exit_code != 0, r
    assert creates, "the restore created a first batch before failing"
    truth = {x["id"] for x in users.all()}
    assert len(truth) > 75  # part of the restore was applied
    assert _ids(cli, "Usuários")[1] == truth


def test_metrics_push_reaches_a_cached_listing_of_the_metrics_table(cli, tmp_path, monkeypatch) -> None:
    raw = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    raw["tables"]["Métricas"]["cache_mode"] = "query"  # off in the shipped config; a dashboard may cache it
    cfg = tmp_path / "cached-metrics.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(cfg))
    status, before = _ids(cli, "Métricas")
    assert status == "miss" and _ids(cli, "Métricas")[0] == "hit"
    r = cli("--json", "metrics", "collect", "--type", "all", "--range", "30d", "--push")
    assert r.exit_code == 0, r
    pushed = set(r.json()["pushed"]["records"])
    assert pushed
    after = _ids(cli, "Métricas")[1]
    assert after == before | pushed
