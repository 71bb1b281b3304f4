"""Metrics and alerts: usage, performance, storage and backup figures from the journal and Airtable.

Public API (the CLI in ``cli/metrics.py`` is a thin client of these):

- :func:`collect` — one collection (``usage|performance|storage|all`` over ``1h|24h|7d|30d``);
- :func:`write_prometheus` — the textfile from the latest figures of every section;
- :func:`check_alerts` / :func:`evaluate_alerts` — the five alerts, their state and notifications;
- :func:`write_report` — the self-contained HTML report with charts;
- :func:`archive` — old journal rows into compressed monthly files (rollups kept);
- :func:`push` — headline figures into the Airtable metrics table;
- :func:`refresh_rollups` — fold new journal rows into the hourly rollups.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import AlertsFiring
from .alerts import ALERT_NAMES, Alert
from .alerts import check as check_alerts
from .alerts import evaluate as evaluate_alerts
from .archive import archive, read_archive
from .collect import collect, open_journal, remembered
from .rollup import refresh as refresh_rollups
from .windows import KINDS, RANGES, Window

if TYPE_CHECKING:  # loaded on first use at run time (below)
    from .export import prometheus_text, summary_rows, write_prometheus
    from .push import push, rows_for
    from .report import count_history, write_report

__all__ = [
    "ALERT_NAMES",
    "KINDS",
    "RANGES",
    "Alert",
    "AlertsFiring",
    "Window",
    "archive",
    "check_alerts",
    "collect",
    "count_history",
    "evaluate_alerts",
    "open_journal",
    "prometheus_text",
    "push",
    "read_archive",
    "refresh_rollups",
    "remembered",
    "rows_for",
    "summary_rows",
    "write_prometheus",
    "write_report",
]

#: loaded on first use: push and report import the pydantic config models, export is ~10 ms that `metrics
#: alerts` on the fast path (cli/readonly.py) does not need; the names bound above are import-light
_LAZY = {
    "push": ".push",
    "rows_for": ".push",
    "count_history": ".report",
    "write_report": ".report",
    "prometheus_text": ".export",
    "summary_rows": ".export",
    "write_prometheus": ".export",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    # importing the submodule `push` bound the package's `push` to that module: the function wins, as before
    globals()[name] = value
    return value
