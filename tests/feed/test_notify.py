"""Airtable's ping: the MAC agrees with pyairtable's own check, any change to body or header fails it,
and pings during a pull ask for exactly one more pull."""

from __future__ import annotations

import base64
import json
import threading

from hypothesis import given
from hypothesis import strategies as st
from pyairtable.models.webhook import WebhookNotification

from beststag_cli.feed.notify import Puller, mac_of, mac_ok, ping_ids

SECRETS = st.binary(min_size=16, max_size=64).map(lambda b: base64.b64encode(b).decode())


def _ping(base: str, hook: str) -> bytes:
    return json.dumps({"base": {"id": base}, "webhook": {"id": hook}, "timestamp": "2026-12-01T10:00:00.000Z"}).encode()


@given(secret=SECRETS, base=st.from_regex(r"app[A-Za-z0-9]{14}", fullmatch=True))
def test_the_mac_is_the_one_pyairtable_checks(secret: str, base: str) -> None:
    body = _ping(base, "achAAAAAAAAAAAAAA")
    header = mac_of(secret, body)
    n = WebhookNotification.from_request(body.decode(), header, secret)  # raises on a wrong MAC
    assert (n.base.id, n.webhook.id) == ping_ids(body) == (base, "achAAAAAAAAAAAAAA")
    assert mac_ok(secret, body, header)


@given(secret=SECRETS, other=SECRETS, flip=st.integers(0, 10**6))
def test_any_change_fails_the_check(secret: str, other: str, flip: int) -> None:
    body = _ping("appBestStagSandbx", "achAAAAAAAAAAAAAA")
    header = mac_of(secret, body)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    assert not mac_ok(secret, tampered, header)
    if other != secret:
        assert not mac_ok(other, body, header)
    assert not mac_ok(secret, body, header.upper())
    assert not mac_ok(secret, body, header[len("hmac-sha256=") :])  # no scheme
    assert not mac_ok(secret, body, None) and not mac_ok("not base64!", body, header)


def test_pings_during_a_pull_ask_for_exactly_one_more() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def pull() -> None:
        calls.append(1)
        started.set()
        release.wait(10)

    p = Puller(pull)
    p.request()
    assert started.wait(10)
    for _ in range(5):  # five pings while the first pull runs
        p.request()
    release.set()
    assert p.wait_idle(10)
    assert len(calls) == 2 and p.pulls == 2


def test_a_failed_pull_is_kept_and_the_next_ping_tries_again() -> None:
    results = iter([RuntimeError("Airtable down"), None])

    def pull() -> None:
        r = next(results)
        if r is not None:
            raise r

    p = Puller(pull)
    p.request()
    assert p.wait_idle(10) and p.last_error == "RuntimeError: Airtable down"
    p.request()
    assert p.wait_idle(10) and p.last_error is None and p.pulls == 2


def test_pings_after_a_pull_wait_for_the_spacing_and_make_one_pull_and_stop_drops_a_waiting_one() -> None:
    calls: list[int] = []
    p = Puller(lambda: calls.append(1), spacing_s=3600)
    p.request()
    assert p.wait_idle(10) and calls == [1]
    for _ in range(5):  # a burst of writes a moment later: five pings
        p.request()
    assert not p.wait_idle(0.2)  # one pull waiting for the spacing (an hour here), not five at once
    assert calls == [1]
    assert p.stop(10)  # shutdown: the waiting pull is dropped (its payloads stay at the stored cursor)
    assert calls == [1] and p.pulls == 1
    p.request()  # after stop: nothing starts
    assert p.wait_idle(0) and calls == [1]


def test_with_a_short_spacing_the_waiting_pull_runs_once_for_every_ping_of_the_window() -> None:
    calls: list[int] = []
    p = Puller(lambda: calls.append(1), spacing_s=0.05)
    p.request()
    assert p.wait_idle(10)
    for _ in range(5):
        p.request()
    assert p.wait_idle(10)
    assert calls == [1, 1]
