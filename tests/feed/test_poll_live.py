"""`beststag serve`'s poll loop in a real process (issue 19: installations with no public URL): no ping
(no notification URL), `feed.poll_s` 0.5 s. An outside write (pyairtable straight to the served sandbox)
reaches the answer `serve` had cached, with no TTL passed; SIGTERM stops it cleanly (SIGINT: test_ping_live).

Proof by end state: the cached answer holds the record; after the stop the exit status is 0, stderr has no
traceback, and the feed's state in the journal is whole with the cursor past the write.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from pyairtable import Api

from beststag_cli.sandbox.sample import SAMPLE_BASE_ID
from tests.feed.live import cached_titles, cli, live_serve, until


def test_the_loop_brings_an_outside_write_into_serve_s_cache_and_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    with live_serve(tmp_path, notification_url=None, poll_s=0.5) as s:
        url, env, proc = s["url"], s["env"], s["proc"]
        before = cached_titles(url)  # cached (TTL 300 s) while the feed is still off
        on = cli(env, "--json", "feed", "enable")  # enabled while serve runs: the loop notices it
        assert on.returncode == 0, on.stderr
        start = json.loads(on.stdout)["cursor"]
        Api("sandbox", endpoint_url=s["airtable"]).table(SAMPLE_BASE_ID, "Tarefas").create({"Título": "sem ping"})
        until("the loop to pull the outside write", lambda: "sem ping" in cached_titles(url))
        assert sorted(cached_titles(url)) == sorted([*before, "sem ping"])
        proc.send_signal(signal.SIGTERM)  # systemd's stop, `docker stop`
        assert proc.wait(timeout=60) == 0
        err = s["err"].read_text(encoding="utf-8")
        assert "Traceback" not in err, err
    st = json.loads(cli(env, "--json", "feed", "status").stdout)
    assert st["whole"] and st["cursor"] > start
    log = (s["data"] / "logs" / "beststag.jsonl").read_text(encoding="utf-8")
    assert "feed.poll_failed" not in log and "feed.stop_timeout" not in log
