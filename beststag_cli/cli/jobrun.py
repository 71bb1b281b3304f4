"""`@as_job("backup-{type_}")`: run a command as one run of a scheduled job (log lines, health pings)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .state import STATE

F = TypeVar("F", bound=Callable[..., Any])


def as_job(name: str) -> Callable[[F], F]:
    """Wrap a command in :func:`beststag_cli.ops.job`; ``name`` is formatted with the command's arguments.

    A ``--dry-run`` is not a run of the job: it is neither logged as one nor pinged.
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return fn(*args, **kwargs)
            from ..ops.jobs import job

            with job(STATE.settings, name.format(**kwargs)):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def interruptible(fn: F) -> F:
    """Run a long command with SIGINT/SIGTERM raising :class:`errors.Interrupted` (see beststag_cli.interrupts).

    Put it above :func:`as_job`, so the job's end line and fail ping see the interruption.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..interrupts import handling

        with handling():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
