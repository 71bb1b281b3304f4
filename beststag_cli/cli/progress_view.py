"""The live progress display on a terminal: the core's :class:`~beststag_cli.progress.Reporter` drawn by rich.

One line per task: spinner, label, a bar only when the total is known, the count (``1,200/2,000
records``, or ``1,200 records`` without a total), bytes moved, the rate, the ETA (known totals only)
and the elapsed time. The display prints through the log handler's Console, so log lines appear
above it instead of tearing it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Task as RichTask
from rich.text import Text

from ..progress import Reporter, Task


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class _Bar(BarColumn):
    """A bar only for a known total: an unknown one is not drawn full (nor as a pulse that looks like work done)."""

    def render(self, task: RichTask) -> Any:
        if not task.fields.get("known", True):
            return Text("")
        return super().render(task)


class _Count(ProgressColumn):
    def render(self, task: RichTask) -> Text:
        unit = task.fields.get("unit", "records")
        done = int(task.completed)
        if not task.fields.get("known", True):
            return Text(f"{done:,} {unit}")
        return Text(f"{done:,}/{int(task.total or 0):,} {unit}")


class _Bytes(ProgressColumn):
    def render(self, task: RichTask) -> Text:
        b = task.fields.get("bytes", 0)
        return Text(human_bytes(b) if b else "", style="cyan")


class _Rate(ProgressColumn):
    def render(self, task: RichTask) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed:
            return Text("")
        parts = [f"{task.completed / elapsed:,.1f} {_short(task.fields.get('unit', 'records'))}/s"]
        b = task.fields.get("bytes", 0)
        if b:
            parts.append(f"{human_bytes(b / elapsed)}/s")
        return Text(" · ".join(parts), style="green")


class _Eta(ProgressColumn):
    def render(self, task: RichTask) -> Text:
        if not task.fields.get("known", True) or task.finished:
            return Text("")
        remaining = task.time_remaining
        if remaining is None:
            return Text("ETA -:--", style="dim")
        m, s = divmod(int(remaining), 60)
        h, m = divmod(m, 60)
        return Text(f"ETA {h}:{m:02d}:{s:02d}" if h else f"ETA {m}:{s:02d}", style="dim")


def _short(unit: str) -> str:
    return {"records": "rec", "files": "files", "queries": "q"}.get(unit, unit)


class _LiveTask:
    def __init__(self, bars: Progress, task_id: TaskID) -> None:
        self._bars, self._id = bars, task_id
        self._bytes = 0
        self._lock = threading.Lock()

    def advance(self, n: int = 0, bytes: int = 0) -> None:
        with self._lock:
            self._bytes += bytes
            b = self._bytes
        self._bars.update(self._id, advance=n, bytes=b)

    def set_total(self, total: int | None) -> None:
        self._bars.update(self._id, total=total, known=total is not None)

    def done(self, note: str = "") -> None:
        task = next(t for t in self._bars.tasks if t.id == self._id)
        # finished (the spinner turns into a tick); a count that never had a total still shows no bar
        total = task.completed if task.total is None else task.total
        self._bars.update(
            self._id, total=total, completed=max(task.completed, total), note=f"[green]{escape(note or 'done')}[/]"
        )

    def failed(self, error: str) -> None:
        self._bars.update(self._id, note=f"[red]failed: {escape(error[:120])}[/]")
        self._bars.stop_task(self._id)


class LiveReporter:
    def __init__(self, bars: Progress) -> None:
        self._bars = bars

    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        # names and errors are data, never markup: "[/Tabela]" would fail the display's last refresh
        return _LiveTask(
            self._bars,
            self._bars.add_task(escape(label), total=total, unit=unit, bytes=0, note="", known=total is not None),
        )


def make_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        _Bar(),
        _Count(),
        _Bytes(),
        _Rate(),
        _Eta(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=False,
    )


@contextmanager
def live_progress(console: Console | None = None) -> Iterator[Reporter]:
    """A live display on ``console`` (default: the log handler's, so log lines print above it)."""
    from .console_log import rich_console

    console = console or rich_console() or Console(stderr=True)
    with make_progress(console) as bars:
        yield LiveReporter(bars)
