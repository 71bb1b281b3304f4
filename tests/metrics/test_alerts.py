"""The five alerts firing, staying quiet and resolving; webhook notices with cooldown and one "resolved"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from beststag_cli import clock
from beststag_cli.metrics import alerts as al

from .conftest import T

H = 3600.0


def _by_name(items: list[al.Alert]) -> dict[str, al.Alert]:
    return {a.name: a for a in items}


def _healthy_backups(journal, at: float = T) -> None:  # type: ignore[no-untyped-def]
    for t in ("incremental", "complete", "critical"):
        journal.record_backup_run(id=f"{t}-{at}", type=t, status="ok", started=at - 120, finished=at - 60)


def _requests(journal, n: int, *, errors: int = 0, ms: float = 100.0, at: float = T - 60) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        journal.record_request(
            base="appX",
            table_name="Tarefas",
            method="GET",
            status=500 if i < errors else 200,
            duration_ms=ms,
            ts=at - i,
        )


def _lookups(journal, hits: int, misses: int, at: float = T - 60) -> None:  # type: ignore[no-untyped-def]
    for i in range(hits):
        journal.record_cache_event(event="hit", table_name="Tarefas", ts=at - i)
    for i in range(misses):
        journal.record_cache_event(event="miss", table_name="Tarefas", ts=at - i)


def test_quiet_on_a_healthy_journal(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _healthy_backups(journal)
    _requests(journal, 30, errors=1, ms=200)
    _lookups(journal, 25, 5)
    journal.add_count_snapshots({"Usuários": 100, "Tarefas": 300}, ts=T - 100)
    got = _by_name(al.evaluate(settings, journal))
    assert [a.name for a in got.values()] == list(al.ALERT_NAMES)
    assert not any(a.firing for a in got.values()), [a.message for a in got.values() if a.firing]
    assert got["cache_hit_ratio"].value == pytest.approx(25 / 30, abs=1e-4)
    assert got["response_time"].value == 0.2
    assert got["error_rate"].value == pytest.approx(1 / 30, abs=1e-4)
    assert got["storage_usage"].value == 400 / 50_000
    assert got["backup_failure"].value == 0


def test_cache_hit_ratio(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _lookups(journal, 9, 10)  # 19 lookups: below min_samples (20), quiet however bad
    assert not _by_name(al.evaluate(settings, journal))["cache_hit_ratio"].firing
    _lookups(journal, 1, 0, at=T - 30)  # 10 / 20 = 50 % < 60 %
    a = _by_name(al.evaluate(settings, journal))["cache_hit_ratio"]
    assert a.firing and a.value == 0.5 and a.threshold == 0.6
    _lookups(journal, 12, 0, at=T - 20)  # 22 / 32 = 68.75 %
    assert not _by_name(al.evaluate(settings, journal))["cache_hit_ratio"].firing


def test_response_time(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _requests(journal, 3, ms=5000)  # exactly 5 s is not above 5 s
    assert not _by_name(al.evaluate(settings, journal))["response_time"].firing
    _requests(journal, 1, ms=9000, at=T - 10)  # avg 6 s
    a = _by_name(al.evaluate(settings, journal))["response_time"]
    assert a.firing and a.value == 6.0
    # an hour later the slow requests are out of the 1h window
    assert not _by_name(al.evaluate(settings, journal, now=T + 2 * H))["response_time"].firing


def test_error_rate(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _requests(journal, 20, errors=1)  # 5 % is not above 5 %
    assert not _by_name(al.evaluate(settings, journal))["error_rate"].firing
    _requests(journal, 1, errors=1, at=T - 5)  # 2 / 21
    a = _by_name(al.evaluate(settings, journal))["error_rate"]
    assert a.firing and a.value == round(2 / 21, 4)
    assert not _by_name(al.evaluate(settings, journal, range_name="1h", now=T + 2 * H))["error_rate"].firing


def test_error_rate_needs_min_samples(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _requests(journal, 5, errors=5)
    a = _by_name(al.evaluate(settings, journal))["error_rate"]
    assert not a.firing and "quiet below 20" in a.message


def test_storage_usage(settings, journal) -> None:  # type: ignore[no-untyped-def]
    assert not _by_name(al.evaluate(settings, journal))["storage_usage"].firing  # no counts yet
    journal.add_count_snapshots({"Usuários": 20_000, "Interações": 20_000}, ts=T - 500)
    assert not _by_name(al.evaluate(settings, journal))["storage_usage"].firing  # 80 % is not above
    journal.add_count_snapshots({"Usuários": 20_001, "Interações": 20_000}, ts=T - 400)
    a = _by_name(al.evaluate(settings, journal))["storage_usage"]
    assert a.firing and a.value == round(40_001 / 50_000, 4)
    journal.add_count_snapshots({"Usuários": 100, "Interações": 1000}, ts=T - 300)  # after a cleanup
    assert not _by_name(al.evaluate(settings, journal))["storage_usage"].firing


def test_backup_failure(settings, journal) -> None:  # type: ignore[no-untyped-def]
    a = _by_name(al.evaluate(settings, journal))["backup_failure"]
    assert a.firing and a.value == 3 and "no successful run yet" in a.message
    _healthy_backups(journal)
    assert not _by_name(al.evaluate(settings, journal))["backup_failure"].firing
    journal.record_backup_run(id="inc-bad", type="incremental", status="failed", started=T - 30, finished=T - 10)
    a = _by_name(al.evaluate(settings, journal))["backup_failure"]
    assert a.firing and list(a.detail["failing"]) == ["incremental"]
    journal.record_backup_run(id="inc-good", type="incremental", status="ok", started=T - 5, finished=T - 1)
    assert not _by_name(al.evaluate(settings, journal))["backup_failure"].firing
    # 6 hours later the critical backup (max age 5 h) is overdue, the others are not
    a = _by_name(al.evaluate(settings, journal, now=T + 6 * H))["backup_failure"]
    assert a.firing and list(a.detail["failing"]) == ["critical"]
    settings.alerts.backup_failure.consecutive_failures = 2
    journal.record_backup_run(id="crit-bad", type="critical", status="failed", started=T, finished=T + 1)
    journal.record_backup_run(id="crit-ok", type="critical", status="ok", started=T + 2, finished=T + 3)
    journal.record_backup_run(id="crit-bad2", type="critical", status="failed", started=T + 4, finished=T + 5)
    assert not _by_name(al.evaluate(settings, journal, now=T + 10))["backup_failure"].firing  # 1 < 2 in a row
    settings.alerts.backup_failure.enabled = False
    assert not _by_name(al.evaluate(settings, journal, now=T + 6 * H))["backup_failure"].firing


def test_unknown_range_is_bad_input(settings, journal) -> None:  # type: ignore[no-untyped-def]
    from beststag_cli.errors import BadInput

    with pytest.raises(BadInput, match="unknown time range '2h'"):
        al.evaluate(settings, journal, range_name="2h")


# --------------------------------------------------------------------------------------------
# notifications, through a real HTTP server on 127.0.0.1


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


def test_notifications_cooldown_and_one_resolved(settings, journal, receiver) -> None:  # type: ignore[no-untyped-def]
    url, received = receiver
    settings.alerts.notify_urls = [url]
    settings.alerts.backup_failure.enabled = False
    journal.add_count_snapshots({"Usuários": 45_000}, ts=T - 10)  # 90 % > 80 %: storage_usage fires

    def run() -> list[dict[str, Any]]:
        return al.check(settings, journal)["notifications"]

    sent = run()
    assert [(n["alert"], n["status"], n["ok"]) for n in sent] == [("storage_usage", "firing", True)]
    assert received[-1]["alert"] == "storage_usage" and received[-1]["status"] == "firing"
    assert received[-1]["value"] == 0.9 and received[-1]["threshold"] == 0.8
    since = received[-1]["since"]
    clock.advance(600)
    assert run() == []  # still firing, inside the cooldown (3600 s)
    clock.advance(3100)
    assert [n["status"] for n in run()] == ["firing"]  # a reminder after the cooldown
    assert received[-1]["since"] == since
    journal.add_count_snapshots({"Usuários": 100}, ts=clock.timestamp())
    assert [(n["alert"], n["status"]) for n in run()] == [("storage_usage", "resolved")]
    clock.advance(60)
    assert run() == []  # resolved is sent once
    assert [r["status"] for r in received] == ["firing", "firing", "resolved"]
    state = journal.get_alert_state("storage_usage")
    assert state["firing"] == 0 and state["since"] is None


def test_a_failed_notification_is_reported_and_retried(settings, journal, receiver) -> None:  # type: ignore[no-untyped-def]
    import socket

    url, _ = receiver
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    settings.alerts.notify_urls = [dead]
    settings.alerts.backup_failure.enabled = False
    journal.add_count_snapshots({"Usuários": 45_000}, ts=T - 10)
    sent = al.check(settings, journal)["notifications"]
    assert len(sent) == 1 and not sent[0]["ok"] and sent[0]["error"]
    settings.alerts.notify_urls = [url]
    clock.advance(60)
    sent = al.check(settings, journal)["notifications"]  # not marked as notified, so sent now
    assert [(n["status"], n["ok"]) for n in sent] == [("firing", True)]


def test_interrupted_runs_do_not_fire_the_backup_alert(settings, journal) -> None:  # type: ignore[no-untyped-def]
    _healthy_backups(journal)
    for i in range(3):  # three cron runs stopped by SIGTERM in a row
        journal.record_backup_run(
            id=f"crit-int{i}", type="critical", status="interrupted", started=T - 50 + i, finished=T - 40 + i
        )
    assert not _by_name(al.evaluate(settings, journal))["backup_failure"].firing
    journal.record_backup_run(id="crit-bad", type="critical", status="failed", started=T - 30, finished=T - 20)
    journal.record_backup_run(id="crit-int9", type="critical", status="interrupted", started=T - 10, finished=T - 5)
    a = _by_name(al.evaluate(settings, journal))["backup_failure"]
    assert a.firing and a.detail["failing"] == {"critical": "1 failed run(s) in a row (last: failed)"}


def test_firing_line_names_figure_and_threshold() -> None:
    a = al.Alert("cache_hit_ratio", True, 0.45, 0.8, "ratio", "cache hit ratio 45.0% over 40 lookups (minimum 80%)")
    assert al.firing_line(a.to_dict()) == (
        "cache_hit_ratio: 45.0%, threshold 80.0% (fires below) - cache hit ratio 45.0% over 40 lookups (minimum 80%)"
    )
    a = al.Alert("response_time", True, 2.5, 2.0, "seconds", "average response time 2.500 s")
    assert al.firing_line(a.to_dict()).startswith("response_time: 2.500 s, threshold 2.000 s (fires above)")
