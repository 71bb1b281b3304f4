"""A simulated week of cron (a testing aid): the crontab's jobs run in-process, in time order, with
the clock pinned to each start time, against the sandbox, while a workload writes to the base.

>>> entries = parse_crontab(Path("crontab.example").read_text())          # doctest: +SKIP
>>> report = simulate(entries, start=datetime(2026, 6, 1, tzinfo=UTC), days=7)   # doctest: +SKIP

- Every crontab line becomes its start times in ``[start, start + days)`` (croniter); each runs as
  ``beststag --quiet ARGS`` through the CLI's own entry (:func:`beststag_cli.cli.main.run`), so
  the commands, locks, exit codes, log lines and pings are the real ones; only the clock is
  pinned (:func:`beststag_cli.clock.set_now`, what ``BESTSTAG_FAKE_NOW`` does for a process).
- Jobs due in the same minute run in crontab order. Cron would start them together: a job that
  shares the backup lock with one started earlier in that minute runs while that lock is held,
  as it would be for real, so a schedule that makes backups collide shows up as exit 75.
- The workload (:class:`Workload`) runs at minute 10 of every hour through ``beststag records``
  and ``beststag cache get``: it creates, updates and deletes Interações, updates Usuários and
  reads the hot cached query, so every hour has requests, cache lookups and changes to back up.
- ``calls`` adds one-off steps (an operator's restore drill, a snapshot) at given times; ``after``
  is called after every event (e.g. to snapshot the base after a backup).

The sandbox comes from the data dir as for any command (seeded at its first use, at the pinned
time). `scripts/simulate-week` runs this in a temporary data dir and prints a summary.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from beststag_cli import clock

from .schedule import BACKUP_LOCK, CronEntry, expand

Runner = Callable[[list[str]], int]
WORKLOAD_MINUTE = 10


def lock_of(args: Iterable[str]) -> str | None:
    """The lock a command shares with other scheduled jobs (backups and backup cleanup)."""
    a = tuple(args)
    return BACKUP_LOCK if a[:2] in (("backup", "run"), ("backup", "cleanup")) else None


def job_name(args: Iterable[str]) -> str:
    """The job name a command runs as (what `jobs.pings` and the job.* log lines use)."""
    a = list(args)

    def opt(name: str) -> str | None:
        return a[a.index(name) + 1] if name in a and a.index(name) + 1 < len(a) else None

    if a[:2] == ["backup", "run"]:
        return f"backup-{opt('--type')}"
    if a[:2] == ["metrics", "collect"]:
        return f"metrics-{opt('--type') or 'all'}"
    if a[:2] == ["metrics", "alerts"]:
        return "alerts"
    return "-".join(a[:2])


@dataclass
class Event:
    at: datetime
    order: int
    name: str
    args: tuple[str, ...] = ()
    call: Callable[[datetime], Any] | None = None


@dataclass
class Run:
    at: datetime
    name: str
    args: tuple[str, ...]
    exit_code: int
    stderr: str
    overlapped: bool = False
    seconds: float = 0.0


@dataclass
class WeekReport:
    start: datetime
    end: datetime
    runs: list[Run] = field(default_factory=list)
    workload: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def by_job(self) -> dict[str, list[Run]]:
        out: dict[str, list[Run]] = {}
        for r in self.runs:
            out.setdefault(r.name, []).append(r)
        return out

    def summary(self) -> dict[str, Any]:
        jobs = {}
        for name, runs in self.by_job().items():
            codes: dict[str, int] = {}
            for r in runs:
                codes[str(r.exit_code)] = codes.get(str(r.exit_code), 0) + 1
            jobs[name] = {"runs": len(runs), "exit_codes": codes, "seconds": round(sum(r.seconds for r in runs), 2)}
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "jobs": jobs,
            "workload": self.workload,
            "seconds": round(self.seconds, 1),
        }


def cron_events(entries: list[CronEntry], start: datetime, end: datetime) -> list[Event]:
    """Every (time, command) of the crontab in ``[start, end)``, in time then crontab order."""
    events = [Event(t, i, job_name(e.args), e.args) for i, e in enumerate(entries) for t in expand(e.cron, start, end)]
    return sorted(events, key=lambda e: (e.at, e.order))


def cli_runner() -> Runner:
    """What the `beststag` program does (its cache-hit fast path, else the CLI), in-process."""
    from beststag_cli.cli.fastpath import try_cache_hit
    from beststag_cli.cli.main import run

    def runner(argv: list[str]) -> int:
        if "cache" in argv[:4]:
            code = try_cache_hit(list(argv))
            if code is not None:
                return code
        return run(list(argv))

    return runner


def _run_quietly(runner: Runner, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = runner(argv)
    return code, out.getvalue(), err.getvalue()


class Workload:
    """What the BestStag workflows do to the base, once an hour (see the module docstring)."""

    def __init__(self, runner: Runner, seed: int = 7) -> None:
        self.runner = runner
        self.rng = random.Random(seed)
        self.users: list[str] = []
        self.interactions: list[str] = []
        self.counts = {"created": 0, "updated": 0, "deleted": 0, "cache_gets": 0, "failed": 0}

    def _cli(self, *args: str) -> Any:
        code, out, err = _run_quietly(self.runner, ["--json", "--quiet", *args])
        if code != 0:
            self.counts["failed"] += 1
            raise RuntimeError(f"workload: beststag {' '.join(args[:3])} exited {code}: {err.strip() or out[-300:]}")
        return json.loads(out) if out.strip() else None

    def _ids(self, table: str) -> list[str]:
        data = self._cli("query", "run", table, "--fields", "Resumo" if table == "Interações" else "Nome")
        return [r["id"] for r in data["records"]]

    def __call__(self, at: datetime) -> None:
        if not self.users:
            self.users, self.interactions = self._ids("Usuários"), self._ids("Interações")
        rng, hour = self.rng, at.hour
        new = [
            {
                "fields": {
                    "Resumo": f"simulada {at:%a %H:%M} #{i}",
                    "user": [rng.choice(self.users)],
                    "message": f"mensagem {rng.randrange(10**6)}",
                    "timestamp": at.isoformat(),
                    "canal": rng.choice(["WhatsApp", "Email", "Web", "Telegram"]),
                    "sentimento": rng.choice(["Positivo", "Neutro", "Negativo"]),
                    "tokens": rng.randrange(20, 900),
                    "resolvido": False,
                }
            }
            for i in range(2)
        ]
        created = self._cli("records", "create", "Interações", "--data", json.dumps(new, ensure_ascii=False))
        self.interactions += [r["id"] for r in created["records"]]
        self.counts["created"] += len(new)
        target = rng.choice(self.interactions)
        self._cli(
            "records",
            "update",
            "Interações",
            "--data",
            json.dumps(
                [{"id": target, "fields": {"resolvido": True, "Resumo": f"resolvida {at:%a %H:%M}"}}],
                ensure_ascii=False,
            ),
        )
        self.counts["updated"] += 1
        if hour % 3 == 0:
            user = rng.choice(self.users)
            self._cli(
                "records",
                "update",
                "Usuários",
                "--data",
                json.dumps(
                    [
                        {
                            "id": user,
                            "fields": {
                                "plano": rng.choice(["Free", "Pro", "Enterprise"]),
                                "status": rng.choice(["Ativo", "Inativo"]),
                            },
                        }
                    ]
                ),
            )
            self.counts["updated"] += 1
        victim = self.interactions.pop(rng.randrange(len(self.interactions)))
        self._cli("records", "delete", "Interações", "--yes", "--id", victim)
        self.counts["deleted"] += 1
        for _ in range(2):  # the workflows' hot query; the second read is a hit unless a write dropped it
            self._cli("cache", "get", "Usuários", "--filter", '{"status": "Ativo"}', "--fields", "Nome,status")
            self.counts["cache_gets"] += 1


def simulate(
    entries: list[CronEntry],
    start: datetime,
    days: float = 7,
    *,
    runner: Runner | None = None,
    workload: Callable[[datetime], Any] | None = None,
    calls: Iterable[tuple[datetime, Callable[[datetime], Any]]] = (),
    after: Callable[[Event, Run | None], Any] | None = None,
) -> WeekReport:
    """Run the crontab ``entries`` from ``start`` for ``days`` (see the module docstring).

    ``workload`` defaults to a :class:`Workload` on the same runner; pass ``lambda at: None`` for none.
    The clock stays pinned at the end of the week when this returns.
    """
    from beststag_cli.config import load_config

    runner = runner or cli_runner()
    end = start + timedelta(days=days)
    events = cron_events(entries, start, end)
    wl = workload if workload is not None else Workload(runner)
    hours = int((end - start).total_seconds() // 3600) + 1
    events += [
        Event(start + timedelta(hours=h, minutes=WORKLOAD_MINUTE), 10_000, "workload", call=wl)
        for h in range(hours)
        if start + timedelta(hours=h, minutes=WORKLOAD_MINUTE) < end
    ]
    events += [Event(at, 20_000 + i, getattr(fn, "__name__", "call"), call=fn) for i, (at, fn) in enumerate(calls)]
    events.sort(key=lambda e: (e.at, e.order))

    report = WeekReport(start, end)
    t_week = time.perf_counter()
    lock_started: dict[str, datetime] = {}
    for ev in events:
        clock.set_now(ev.at)
        if ev.call is not None:
            ev.call(ev.at)
            if after is not None:
                after(ev, None)
            continue
        lock = lock_of(ev.args)
        overlapped = lock is not None and lock_started.get(lock) == ev.at
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if overlapped:  # the job that started this minute still holds the lock
                from beststag_cli.backup.runner import base_lock

                settings = load_config()
                stack.enter_context(base_lock(settings, str(settings.base_id)))
            code, _, err = _run_quietly(runner, ["--quiet", *ev.args])
        if lock is not None:
            lock_started[lock] = ev.at
        run = Run(ev.at, ev.name, ev.args, code, err.strip(), overlapped, time.perf_counter() - t0)
        report.runs.append(run)
        if after is not None:
            after(ev, run)
    report.seconds = time.perf_counter() - t_week
    report.workload = dict(getattr(wl, "counts", {}))
    return report


def main(argv: list[str] | None = None) -> int:
    """`scripts/simulate-week [--start ISO] [--days N] [--crontab FILE]`: run it, print a JSON summary."""
    import argparse
    from pathlib import Path

    from .schedule import parse_crontab

    p = argparse.ArgumentParser(prog="simulate-week", description=__doc__.split("\n\n")[0])
    p.add_argument("--crontab", default="crontab.example")
    p.add_argument("--start", default="2026-06-01T00:00:00Z", help="a Monday 00:00 UTC (default 2026-06-01)")
    p.add_argument("--days", type=float, default=7)
    args = p.parse_args(argv)
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    entries = parse_crontab(Path(args.crontab).read_text(encoding="utf-8"))
    runner = cli_runner()
    # the operator's first day: one backup of each type before cron takes over (no "never backed up" alerts)
    clock.set_now(start - timedelta(hours=1))
    for t in ("complete", "critical", "incremental"):
        code, _, err = _run_quietly(runner, ["--quiet", "backup", "run", "--type", t])
        if code != 0:
            print(err)
            return code
    report = simulate(entries, start, args.days, runner=runner)
    print(json.dumps(report.summary(), indent=2, ensure_ascii=False))
    bad = [r for r in report.runs if r.exit_code not in (0,)]
    for r in bad[:20]:
        print(f"{r.at:%a %Y-%m-%d %H:%M} {r.name} exit {r.exit_code}: {r.stderr[:200]}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
