"""A real ping over loopback (issue 19's "done when"): `sandbox serve` plays Airtable, `beststag serve`
receives its signed ping at /webhook/airtable/notify, checks the MAC and pulls; a wrong MAC is 401 and logged.

Proof by end state: an answer `beststag serve` cached before an outside write holds the written record
afterwards, with no TTL passed (only the ping-triggered pull can have told it).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyairtable import Api

from beststag_cli.sandbox.sample import SAMPLE_BASE_ID
from tests.feed.live import cached_titles, cli, cursor, live_serve, post, until


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # a notification URL: the pings pull, serve does not poll (only the ping can tell it)
    with live_serve(tmp_path, notification_url="http://127.0.0.1:{port}/webhook/airtable/notify") as s:
        yield s


def test_a_signed_ping_makes_serve_pull_and_a_wrong_mac_is_refused(live: dict[str, Any]) -> None:
    url, env = live["url"], live["env"]
    on = cli(env, "--json", "feed", "enable")
    assert on.returncode == 0, on.stderr
    assert "macSecret" not in on.stdout and json.loads(on.stdout)["enabled"]
    before = cached_titles(url)  # cached now (TTL 300 s)
    assert "escrito por fora" not in before
    start = cursor(env)
    Api("sandbox", endpoint_url=live["airtable"]).table(SAMPLE_BASE_ID, "Tarefas").create(
        {"Título": "escrito por fora"}
    )
    until("the ping-triggered pull to store its cursor", lambda: cursor(env) > start)
    after = cached_titles(url)
    assert "escrito por fora" in after and len(after) == len(before) + 1
    # a forged ping: right ids, wrong MAC
    ping = json.dumps({"base": {"id": SAMPLE_BASE_ID}, "webhook": {"id": json.loads(on.stdout)["webhook_id"]}}).encode()
    status, raw = post(url + "/webhook/airtable/notify", ping, {"X-Airtable-Content-MAC": "hmac-sha256=" + "0" * 64})
    assert status == 401, raw
    log = (live["data"] / "logs" / "beststag.jsonl").read_text(encoding="utf-8")
    assert "feed.bad_ping" in log
    live["proc"].send_signal(signal.SIGINT)  # Ctrl-C: the same graceful stop as SIGTERM, status 0
    assert live["proc"].wait(timeout=60) == 0
    err = live["err"].read_text(encoding="utf-8")
    assert "Traceback" not in err, err
