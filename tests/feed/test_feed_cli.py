"""`beststag feed …` through the CLI: status codes, JSON, and the MAC secret never shown."""

from __future__ import annotations

import json
from typing import Any

from beststag_cli.sandbox.sample import SAMPLE_BASE_ID


def test_enable_status_pull_disable(cli: Any, sandbox: Any, settings: Any) -> None:
    off = cli("--json", "feed", "status")
    assert off.exit_code == 0 and json.loads(off.stdout)["enabled"] is False
    on = cli("--json", "feed", "enable")
    assert on.exit_code == 0, on.stderr
    st = json.loads(on.stdout)
    assert st["enabled"] and st["whole"] and st["webhook_id"].startswith("ach")
    hook = sandbox.api().base(SAMPLE_BASE_ID).webhooks()[0]
    sandbox.api().table(SAMPLE_BASE_ID, "Tarefas").create({"Título": "de fora"})
    pulled = cli("--json", "feed", "pull")
    assert pulled.exit_code == 0 and json.loads(pulled.stdout)["payloads"] >= 1
    human = cli("feed", "status")
    assert human.exit_code == 0 and "whole" in human.stdout and hook.id in human.stdout
    # the MAC secret lives in the journal only: in no output, log or other file of the data dir
    from beststag_cli.feed import state
    from beststag_cli.journal import Journal

    with Journal(settings.paths.journal) as j:
        st_row = state.load(j, SAMPLE_BASE_ID)
    assert st_row is not None
    mac = st_row.mac_secret
    assert mac not in repr(st_row)
    for r in (on, pulled, human, cli("--json", "feed", "status"), cli("-v", "feed", "refresh")):
        assert mac not in r.stdout and mac not in r.stderr
    for f in settings.paths.data_dir.rglob("*"):
        if f.is_file() and not f.name.startswith("journal.sqlite"):
            assert mac.encode() not in f.read_bytes(), f
    gone = cli("--json", "feed", "disable")
    assert json.loads(gone.stdout) == {"base": SAMPLE_BASE_ID, "disabled": True}
    assert sandbox.api().base(SAMPLE_BASE_ID).webhooks() == []
    assert cli("feed", "pull").exit_code == 2  # no feed: bad input, one line


def test_doctor_names_the_feed_s_gaps(cli: Any, sandbox: Any) -> None:
    def feed_line(r: Any) -> str:
        return next(x for x in r.stdout.splitlines() if x.split()[1:2] == ["feed:"])

    assert feed_line(cli("doctor", "--offline")).startswith("skip")  # off
    on = json.loads(cli("--json", "feed", "enable").stdout)
    assert feed_line(cli("doctor", "--offline")).startswith("ok")
    sandbox.api().base(SAMPLE_BASE_ID).webhook(on["webhook_id"]).delete()  # gone at Airtable's end
    assert cli("feed", "pull").exit_code == 1
    r = cli("doctor", "--offline")
    line = feed_line(r)
    assert r.exit_code == 1 and line.startswith("FAIL") and "Tarefas" in line, r.stdout
    assert cli("feed", "status").exit_code == 1


def test_the_feed_alert_fires_once_the_feed_has_been_broken_longer_than_max_gap_s(cli: Any, sandbox: Any) -> None:
    from beststag_cli import clock

    def feed_alert() -> dict[str, Any]:
        r = cli("--json", "metrics", "alerts")
        return next(a for a in json.loads(r.stdout)["alerts"] if a["name"] == "change_feed")

    assert feed_alert()["message"] == "the change feed is off"
    on = json.loads(cli("--json", "feed", "enable").stdout)
    assert not feed_alert()["firing"]
    sandbox.api().base(SAMPLE_BASE_ID).webhook(on["webhook_id"]).delete()
    cli("feed", "pull")
    assert not feed_alert()["firing"]  # broken, but not for long yet
    clock.advance(3601)
    try:
        fired = feed_alert()
    finally:
        clock.reset()
    assert fired["firing"] and "Tarefas" in fired["detail"]["tables"], fired


def test_usage_metrics_count_the_changes_the_feed_saw(cli: Any, sandbox: Any) -> None:
    cli("--json", "feed", "enable")
    t = sandbox.api().table(SAMPLE_BASE_ID, "Tarefas")
    a, b = t.create({"Título": "um"}), t.create({"Título": "dois"})
    t.update(a["id"], {"Título": "um!"})
    t.delete(b["id"])
    assert cli("feed", "pull").exit_code == 0
    r = cli("--json", "metrics", "collect", "--type", "usage", "--range", "24h")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    usage = data["metrics"]["usage"]
    changes = usage["changes"]
    assert changes["feed"] == "on"
    assert changes["by_table"]["Tarefas"] == {"created": 2, "updated": 1, "deleted": 1}
    assert sum(changes["by_source"].values()) == 4 and changes["editors"] == 1
    assert usage["users"]["editors"] == 1
