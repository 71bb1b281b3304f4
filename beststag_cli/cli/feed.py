"""`beststag feed …`: the change feed (Airtable's webhooks) that keeps the cache exact for outside writers."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import UpstreamUnavailable
from . import render
from .jobrun import as_job
from .state import STATE

app = typer.Typer(
    help="The change feed: Airtable's webhooks tell the cache of changes made by everyone else.\n\n"
    "Example: beststag feed enable",
    no_args_is_help=True,
)


def _journal() -> Any:
    journal = STATE.gateway.journal
    if journal is None:
        raise UpstreamUnavailable("the journal is not available; the feed keeps its state there")
    return journal


def _when(ts: float | None) -> str:
    from ..metrics.windows import iso_utc

    return iso_utc(ts) if ts is not None else "—"


def _status_json(st: Any) -> dict[str, Any]:
    return {
        "base": st.base,
        "enabled": st.enabled,
        "whole": st.whole,
        "webhook_id": st.webhook_id,
        "cursor": st.cursor,
        "expiration": st.expiration,
        "last_pull": _when(st.last_pull_ts) if st.last_pull_ts else None,
        "continuous_since": _when(st.continuous_since_ts) if st.continuous_since_ts else None,
        "broken_since": _when(st.broken_since_ts) if st.broken_since_ts else None,
        "broken_reason": st.broken_reason,
        "gaps": [{"table": g.table, "since": _when(g.since_ts), "reason": g.reason} for g in st.gaps],
    }


def _show(st: Any) -> None:
    if STATE.json:
        render.emit_json(_status_json(st))
        return
    if not st.enabled:
        render.line(f"feed: off for base {st.base} (enable it with: beststag feed enable)")
        return
    health = "whole" if st.whole else "BROKEN: " + (st.broken_reason or "tables with gaps")
    render.line(f"feed: {health}; webhook {st.webhook_id}, cursor {st.cursor}, expires {st.expiration or '—'}")
    render.line(f"last pull {_when(st.last_pull_ts)}; continuous since {_when(st.continuous_since_ts)}")
    if st.gaps:
        render.table("gaps", ["table", "since", "reason"], [[g.table, _when(g.since_ts), g.reason] for g in st.gaps])


@app.command()
def enable() -> None:
    """Register the base's webhook (once: a second run refreshes it) and start following changes.

    Example: beststag feed enable
    """
    from ..feed import service

    tables = list(STATE.settings.tables)
    st = service.enable(STATE.gateway, _journal(), tables, STATE.settings.feed.notification_url)
    _show(st)


@app.command()
def status() -> None:
    """Show the feed: its webhook, cursor, expiry, and any gap (tables the cache revalidates meanwhile).

    Example: beststag feed status --json
    """
    from ..feed import service

    st = service.status(_journal(), STATE.gateway.base_id)
    _show(st)
    if st.enabled and not st.whole:
        raise typer.Exit(1)


@app.command()
def pull() -> None:
    """Read the payloads since the last pull into the cache (cron, or when Airtable pings `serve`).

    Example: beststag --quiet feed pull
    """
    from ..feed import service

    gw = STATE.gateway
    res = service.pull(gw, _journal(), STATE.cache.schema(), max_pages=STATE.settings.feed.max_pages)
    if STATE.json:
        render.emit_json(
            {
                "base": res.base,
                "pages": res.pages,
                "payloads": res.payloads,
                "changes": res.changes,
                "records": res.records,
                "cursor": res.cursor,
                "gaps": res.gaps,
                "healed": res.healed,
                "skipped": res.skipped,
            }
        )
    elif res.skipped:
        render.line("another pull of this base is running; it reads everything since the stored cursor")
    else:
        render.line(
            f"pulled {res.payloads} payload(s) in {res.pages} request(s): {res.records} record change(s), "
            f"cursor {res.cursor}" + (" (gaps healed)" if res.healed else "")
        )
        for table, why in sorted(res.gaps.items()):
            render.note(f"[yellow]gap:[/] {table}: {why}")
    if res.gaps:
        raise typer.Exit(1)


@app.command()
@as_job("feed-refresh")
def refresh(
    if_enabled: bool = typer.Option(False, "--if-enabled", help="Do nothing (exit 0) while the feed is off."),
) -> None:
    """Extend the webhook's life by 7 days (the scheduled jobs do this well before it expires).

    Example: beststag feed refresh --if-enabled
    """
    from ..feed import service

    journal = _journal()
    if if_enabled and not service.status(journal, STATE.gateway.base_id).enabled:
        if STATE.json:
            render.emit_json({"base": STATE.gateway.base_id, "enabled": False, "refreshed": False})
        return
    _show(service.refresh(STATE.gateway, journal))


@app.command()
def disable() -> None:
    """Delete the webhook at Airtable and forget the feed (the cache goes back to revalidation alone).

    Example: beststag feed disable
    """
    from ..feed import service

    gone = service.disable(STATE.gateway, _journal())
    if STATE.json:
        render.emit_json({"base": STATE.gateway.base_id, "disabled": gone})
    else:
        render.line("feed disabled" if gone else "no feed was enabled")
