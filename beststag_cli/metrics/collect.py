"""`metrics collect`: one call that gathers the sections a metric type asks for.

>>> result = collect(settings, "performance", "24h", gateway=gateway)   # doctest: +SKIP
>>> result["metrics"]["performance"]["response_time_seconds"]["p95"]   # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import BadInput
from ..journal import Journal
from . import rollup
from .backups import collect_backup
from .performance import collect_performance
from .storage import collect_storage
from .usage import collect_usage, take_census
from .windows import SECTIONS, Window, check_kind, check_range, iso_utc

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway

_LAST_KEY = "metrics.last.{}"


def open_journal(settings: Settings, gateway: Gateway | None = None) -> tuple[Journal, bool]:
    """The journal (the gateway's when there is one) and whether it existed before this call."""
    existed = settings.paths.journal.exists()
    if gateway is not None and gateway.journal is not None:
        return gateway.journal, existed
    return Journal(settings.paths.journal), existed


def journal_is_empty(journal: Journal) -> bool:
    """True when nothing was ever recorded (a fresh install; rollups count too, as they outlive archival)."""
    row = journal.query(
        "SELECT EXISTS(SELECT 1 FROM requests) OR EXISTS(SELECT 1 FROM cache_events)"
        " OR EXISTS(SELECT 1 FROM backup_runs) OR EXISTS(SELECT 1 FROM count_snapshots)"
        " OR EXISTS(SELECT 1 FROM requests_hourly) AS any_rows"
    )[0]
    return not row["any_rows"]


def collect(
    settings: Settings,
    kind: str,
    range_name: str,
    *,
    gateway: Gateway | None = None,
    journal: Journal | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Collect the metrics of ``kind`` (usage|performance|storage|all) over ``range_name``.

    Usage and storage need ``gateway`` (record counts come from Airtable); performance and backup
    figures come from the journal only.

    :return: ``{"type", "range", "generated_at", "window", "metrics": {section: {...}}, "notes"}``.
    :raises BadInput: for an unknown type or range, or usage/storage without a gateway.
    """
    check_kind(kind)
    check_range(range_name)
    sections = SECTIONS[kind]
    if gateway is None and ("usage" in sections or "storage" in sections):
        raise BadInput(f"metrics of type {kind} need Airtable (record counts)", hint="pass a gateway")
    if journal is None:
        journal, _ = open_journal(settings, gateway)
    end = clock.timestamp() if now is None else now
    window = Window.ending(range_name, end)
    notes: list[str] = []
    if journal_is_empty(journal):
        notes.append(
            f"no journal yet at {journal.path}: nothing has been recorded, so the figures from it "
            "are empty; they fill in as beststag commands talk to Airtable, cache and back up"
        )
    rollup.refresh(journal)

    metrics: dict[str, Any] = {}
    census = None
    if "usage" in sections or "storage" in sections:
        assert gateway is not None
        census = take_census(settings, gateway, journal, end)
        if census.estimated:
            notes.append(
                "estimated record counts (large tables, metrics.sample_above_records): " + ", ".join(census.estimated)
            )
        if census.missing:
            notes.append("configured tables missing from the base: " + ", ".join(census.missing))
    if "usage" in sections:
        assert gateway is not None and census is not None
        metrics["usage"] = collect_usage(settings, gateway, journal, window, census)
        sampled = [t for t, v in metrics["usage"]["activity"].items() if v.get("sampled")]
        if sampled:
            notes.append("activity sampled (listing capped by metrics.sample_above_records): " + ", ".join(sampled))
    if "performance" in sections:
        metrics["performance"] = collect_performance(settings, journal, window)
        if metrics["performance"]["requests_total"] == 0:
            notes.append(f"no Airtable requests recorded in the last {range_name}")
        if metrics["performance"]["cache"]["lookups_total"] == 0:
            notes.append(f"no cache lookups recorded in the last {range_name}: cache ratios are empty")
    if "backup" in sections:
        metrics["backup"] = collect_backup(settings, journal, window)
        if metrics["backup"]["runs_total"] == 0:
            notes.append(f"no finished backup run in the last {range_name}")
    if "storage" in sections:
        assert census is not None
        metrics["storage"] = collect_storage(settings, journal, window, census, metrics.get("backup"))

    result = {
        "type": kind,
        "range": range_name,
        "generated_at": iso_utc(end),
        "window": {"start": iso_utc(window.start), "end": iso_utc(window.end)},
        "metrics": metrics,
        "notes": notes,
    }
    remember(journal, result)
    return result


def _without_series(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_series(v) for k, v in value.items() if k != "series"}
    return value


def remember(journal: Journal, result: dict[str, Any]) -> None:
    """Keep each section's latest figures in the journal, so the Prometheus file can hold them all."""
    for section, data in result["metrics"].items():
        journal.kv_set(
            _LAST_KEY.format(section),
            json.dumps(
                {"range": result["range"], "generated_at": result["generated_at"], "data": _without_series(data)},
                ensure_ascii=False,
            ),
        )


def remembered(journal: Journal) -> dict[str, dict[str, Any]]:
    """The latest figures of each section collected so far (section -> {range, generated_at, data})."""
    out: dict[str, dict[str, Any]] = {}
    for section in ("usage", "performance", "storage", "backup"):
        raw = journal.kv_get(_LAST_KEY.format(section))
        if raw:
            out[section] = json.loads(raw)
    return out
