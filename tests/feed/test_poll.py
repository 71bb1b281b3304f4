"""`serve`'s poll loop (feed/poll.py), one tick at a time, against the sandbox's webhooks API: it pulls
only while the feed is on (noticed each tick), skips while another pull holds the base's lock, adds no
pull to a base someone else has just pulled, and keeps going with backoff after a failure.

The pull is the real `service.pull` through the real gateway; the outside writer is pyairtable straight
to the sandbox. Proof by end state: the cache's answer holds the outside write after the loop's pull.
"""

from __future__ import annotations

from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.feed import service
from beststag_cli.feed.poll import MAX_BACKOFF_S, Poller
from beststag_cli.query.spec import QuerySpec
from beststag_cli.sandbox import FaultConfig
from beststag_cli.sandbox.sample import SAMPLE_BASE_ID

SPEC = {"table": "Eventos", "fields": ["Nome"]}


@pytest.fixture
def loop(settings: Any, sandbox: Any) -> Any:
    from beststag_cli.cache import connect

    settings.airtable.max_retries = 0  # a failing Airtable fails the pull at once
    gw, cache = connect(settings, sandbox=sandbox)
    logged: list[tuple[str, dict[str, Any]]] = []

    class Loop:
        def __init__(self) -> None:
            self.gw, self.cache, self.journal, self.logged = gw, cache, gw.journal, logged
            self.other = sandbox.api(retry_strategy=None).table(SAMPLE_BASE_ID, "Eventos")
            self.poller = Poller(
                5.0,
                lambda: gw.journal.feed_row(SAMPLE_BASE_ID),
                lambda: service.pull(gw, gw.journal, cache.schema(), wait=0),
                lambda name, **f: logged.append((name, f)),
            )

        def names(self) -> list[str]:
            return [r["fields"].get("Nome") for r in cache.get(QuerySpec.parse(SPEC)).records]

        def cursor(self) -> int:
            return int(service.status(gw.journal, SAMPLE_BASE_ID).cursor or 0)

    yield Loop()
    cache.close()
    gw.close()


def _requests(sandbox: Any) -> list[str]:
    calls: list[str] = []
    sandbox.app.observers.append(lambda m, route, status: calls.append(route))
    return calls


def test_the_loop_follows_the_feed_being_enabled_and_disabled_while_it_runs(loop: Any, sandbox: Any) -> None:
    calls = _requests(sandbox)
    assert loop.poller.tick() == 5.0  # off: a look at the journal, no request
    assert calls == [] and loop.poller.pulls == 0
    service.enable(loop.gw, loop.journal, ["Eventos"])
    before = loop.names()  # cached
    loop.other.create({"Nome": "escrito por fora"})
    clock.advance(10)
    assert loop.poller.tick() == 5.0
    assert loop.poller.pulls == 1 and loop.cursor() == 2
    assert sorted(loop.names()) == sorted([*before, "escrito por fora"])  # told by the loop's pull
    service.disable(loop.gw, loop.journal)
    calls.clear()
    clock.advance(10)
    loop.poller.tick()
    assert calls == [] and loop.poller.pulls == 1  # disabled: noticed, nothing pulled


def test_a_base_pulled_by_someone_else_a_moment_ago_is_not_pulled_again(loop: Any, sandbox: Any) -> None:
    service.enable(loop.gw, loop.journal, ["Eventos"])
    service.pull(loop.gw, loop.journal, loop.cache.schema())  # a ping's pull, or cron's
    calls = _requests(sandbox)
    clock.advance(2)
    wait = loop.poller.tick()
    assert calls == [] and loop.poller.pulls == 0
    assert 0 < wait <= 3.0 + 1e-6  # until poll_s after that pull
    clock.advance(wait)
    loop.poller.tick()
    assert loop.poller.pulls == 1 and calls == ["webhooks"]  # one page, nothing new


def test_a_pull_running_elsewhere_makes_the_tick_skip_not_wait(loop: Any) -> None:
    from filelock import FileLock

    service.enable(loop.gw, loop.journal, ["Eventos"])
    loop.other.create({"Nome": "durante"})
    lock = FileLock(str(loop.gw.settings.paths.locks / f"feed-{SAMPLE_BASE_ID}.lock"), timeout=0)
    with lock:  # cron's `feed pull`, or this serve's own ping-triggered pull
        loop.poller.tick()
    assert loop.poller.skipped == 1 and loop.poller.pulls == 0 and loop.cursor() == 1
    loop.poller.tick()
    assert loop.poller.pulls == 1 and loop.cursor() == 2


def test_failures_are_logged_and_backed_off_and_the_loop_recovers(loop: Any, sandbox: Any) -> None:
    service.enable(loop.gw, loop.journal, ["Eventos"])
    loop.other.create({"Nome": "enquanto fora do ar"})
    sandbox.app.set_faults(FaultConfig(rate_503=1.0, routes=("webhooks",)))
    waits = [loop.poller.tick() for _ in range(3)]
    assert waits == [10.0, 20.0, 40.0]  # doubling from poll_s
    assert [n for n, _ in loop.logged] == ["feed.poll_failed"] * 3
    assert loop.logged[-1][1]["failures"] == 3 and loop.logged[-1][1]["retry_in_s"] == 40.0
    assert loop.cursor() == 1  # nothing half-stored
    for _ in range(10):
        loop.poller.tick()
    assert loop.poller.tick() == MAX_BACKOFF_S  # bounded
    sandbox.app.set_faults(FaultConfig())
    assert loop.poller.tick() == 5.0 and loop.cursor() == 2  # back to poll_s, the payload read
    assert "enquanto fora do ar" in loop.names()


def test_a_webhook_gone_at_airtable_is_a_logged_gap_and_backs_off(loop: Any, sandbox: Any) -> None:
    st = service.enable(loop.gw, loop.journal, ["Eventos"])
    sandbox.api().base(SAMPLE_BASE_ID).webhook(st.webhook_id).delete()
    assert loop.poller.tick() == 10.0
    name, fields = loop.logged[-1]
    assert name == "feed.poll_gap" and fields["tables"] == ["Eventos"]
    assert not service.status(loop.journal, SAMPLE_BASE_ID).whole


def test_poll_s_zero_starts_no_thread() -> None:
    p = Poller(0, lambda: None, lambda: None, lambda *a, **k: None)
    p.start()
    assert p.stop(0.1) and p.pulls == 0


def test_serve_polls_only_without_a_notification_url(settings: Any, sandbox: Any) -> None:
    """With a URL Airtable's pings say when to pull: polling too would cost 3600 / poll_s requests an hour."""
    from beststag_cli.cache import connect
    from beststag_cli.server.app import _feed_poller

    gw, cache = connect(settings, sandbox=sandbox)
    try:
        assert _feed_poller(settings, gw, cache).interval == settings.feed.poll_s > 0
        settings.feed.notification_url = "https://beststag.example/webhook/airtable/notify"
        assert _feed_poller(settings, gw, cache).interval == 0
    finally:
        cache.close()
        gw.close()
