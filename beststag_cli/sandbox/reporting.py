"""How seeding reports its progress, in the sandbox's own terms.

The sandbox imports nothing of the product (tests/test_import_contracts.py), so it cannot take
`beststag_cli.progress.Reporter` by name; these Protocols are the part of it seeding calls, and
any reporter of that shape (the product's included, structurally) can be passed. `guard` makes a
reporter's failures harmless: a broken display must never fail a seed.
"""

from __future__ import annotations

import contextlib
from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 0, bytes: int = 0) -> None: ...

    def set_total(self, total: int | None) -> None: ...

    def done(self, note: str = "") -> None: ...

    def failed(self, error: str) -> None: ...


class Reporter(Protocol):
    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task: ...


class _NullTask:
    def advance(self, n: int = 0, bytes: int = 0) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def done(self, note: str = "") -> None:
        pass

    def failed(self, error: str) -> None:
        pass


class _GuardedTask:
    def __init__(self, inner: Task) -> None:
        self._inner = inner

    def advance(self, n: int = 0, bytes: int = 0) -> None:
        with contextlib.suppress(Exception):
            self._inner.advance(n, bytes)

    def set_total(self, total: int | None) -> None:
        with contextlib.suppress(Exception):
            self._inner.set_total(total)

    def done(self, note: str = "") -> None:
        with contextlib.suppress(Exception):
            self._inner.done(note)

    def failed(self, error: str) -> None:
        with contextlib.suppress(Exception):
            self._inner.failed(error)


class _Guarded:
    def __init__(self, inner: Reporter | None) -> None:
        self._inner = inner

    def task(self, label: str, *, total: int | None = None, unit: str = "records") -> Task:
        if self._inner is None:
            return _NullTask()
        try:
            return _GuardedTask(self._inner.task(label, total=total, unit=unit))
        except Exception:
            return _NullTask()


def guard(reporter: Reporter | None) -> Reporter:
    """``reporter`` with every call's exceptions swallowed (None: reports nothing)."""
    return reporter if isinstance(reporter, _Guarded) else _Guarded(reporter)
