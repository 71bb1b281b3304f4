"""`beststag metrics …`: collect, alerts, report, archive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import BadInput
from . import render
from .jobrun import as_job
from .state import STATE

app = typer.Typer(
    help="Usage, performance, storage and backup metrics; alerts; HTML report; archival.\n\n"
    "Example: beststag metrics collect --range 24h",
    no_args_is_help=True,
)

FORMATS = ("table", "json", "prometheus")

TypeOpt = Annotated[str, typer.Option("--type", "-t", metavar="TYPE", help="usage | performance | storage | all.")]
RangeOpt = Annotated[str, typer.Option("--range", "-r", metavar="RANGE", help="1h | 24h | 7d | 30d.")]


def _journal_and_gateway(kind: str, need_gateway: bool) -> tuple[Any, Any]:
    from ..metrics import open_journal

    gateway = STATE.gateway if need_gateway else None
    journal, _ = open_journal(STATE.settings, gateway)
    return journal, gateway


def _notes(notes: list[str]) -> None:
    for n in notes:
        render.note(f"[dim]note:[/] {n}")


@app.command()
@as_job("metrics-{kind}")
def collect(
    kind: TypeOpt = "all",
    range_: RangeOpt = "24h",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="table | json | prometheus (also writes the textfile var/metrics/beststag.prom).",
        ),
    ] = "table",
    push: Annotated[
        bool, typer.Option("--push", help="Also add the headline figures to the Airtable metrics table.")
    ] = False,
) -> None:
    """Collect usage, performance, storage and backup metrics over a time range.

    Example: beststag metrics collect --type performance --range 1h --format prometheus
    """
    from ..metrics import collect as core_collect
    from ..metrics import push as core_push
    from ..metrics import summary_rows, write_prometheus
    from ..metrics.windows import SECTIONS, check_kind, check_range

    check_kind(kind)
    check_range(range_)
    if fmt not in FORMATS:
        raise BadInput(
            f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})",
            hint="use --format table, json or prometheus",
        )
    settings = STATE.settings
    needs_airtable = push or "usage" in SECTIONS[kind] or "storage" in SECTIONS[kind]
    journal, gateway = _journal_and_gateway(kind, needs_airtable)
    result = core_collect(settings, kind, range_, gateway=gateway, journal=journal)
    prom_text = None
    if fmt == "prometheus":
        prom_text = write_prometheus(
            journal, settings.paths.prom_file, drill_max_age_h=float(settings.backup.drill_max_age_h)
        )
        result["prometheus_file"] = str(settings.paths.prom_file)
    if push:
        ids = core_push(settings, gateway, result)
        result["pushed"] = {"table": settings.metrics.table, "records": ids}
    if STATE.json or fmt == "json":
        render.emit_json(result)
    elif prom_text is not None:
        sys.stdout.write(prom_text)
        sys.stdout.flush()
        render.note(f"wrote {settings.paths.prom_file}")
    else:
        for section, rows in summary_rows(result).items():
            render.table(f"{section} — last {range_}", ["figure", "value", "trend"], rows)
    if push:
        render.note(f"pushed {len(result['pushed']['records'])} rows to {settings.metrics.table}")
    _notes(result["notes"])


@app.command()
def alerts(
    range_: Annotated[
        str | None,
        typer.Option(
            "--range", "-r", metavar="RANGE", help="Window to evaluate (default: alerts.range in the config)."
        ),
    ] = None,
) -> None:
    """Check the alerts; exit 1 while any fires, notifying the configured webhooks.

    Example: beststag metrics alerts --range 1h
    """
    from .views import metrics_alerts

    metrics_alerts(STATE.settings, range_)  # the body is shared with the fast path (cli/readonly.py)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="The HTML file to write.")],
    range_: RangeOpt = "7d",
) -> None:
    """Write a self-contained HTML page with charts of the trends.

    Example: beststag metrics report --out report.html --range 7d
    """
    from ..metrics import collect as core_collect
    from ..metrics import count_history, evaluate_alerts, write_report
    from ..metrics.windows import check_range

    check_range(range_)
    if out.exists() and out.is_dir():
        raise BadInput(f"{out} is a folder", hint="give a file name, e.g. --out report.html")
    settings = STATE.settings
    journal, gateway = _journal_and_gateway("all", True)
    result = core_collect(settings, "all", range_, gateway=gateway, journal=journal)
    alerts = [a.to_dict() for a in evaluate_alerts(settings, journal, range_)]
    window_start = result["metrics"]["performance"]["series"]["requests"][0]["t"]
    write_report(out, result, count_history(journal, window_start), alerts, settings.alerts.cache_hit_ratio_min)
    if STATE.json:
        render.emit_json(
            {"path": str(out), "range": range_, "generated_at": result["generated_at"], "notes": result["notes"]}
        )
    else:
        render.line(f"wrote {out}")
    _notes(result["notes"])


@app.command()
@as_job("metrics-archive")
def archive(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would move.")] = False,
) -> None:
    """Move journal rows older than metrics.retention_days into compressed monthly files.

    Example: beststag metrics archive --dry-run
    """
    from ..metrics import archive as core_archive

    journal, _ = _journal_and_gateway("archive", False)
    result = core_archive(STATE.settings, journal, dry_run=dry_run)
    if STATE.json:
        render.emit_json(result)
        return
    verb = "would move" if dry_run else "moved"
    render.table(
        f"archive: rows older than {result['cutoff']} ({verb})",
        ["journal table", "rows"],
        [[t, n] for t, n in result["tables"].items()],
    )
    for f in result["files"]:
        render.note(f"wrote {f}")
