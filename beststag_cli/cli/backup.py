"""`beststag backup …`: run, list, show, verify, restore and clean up backups of the base."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..errors import BadInput, PartialSuccess, RemoteFailed
from . import render
from .jobrun import as_job, interruptible
from .state import STATE
from .views import backup as _render_backup
from .views import backup_list
from .views import size as _size

app = typer.Typer(
    help="Backups of the base: run, list, show, verify, restore, drill, cleanup.\n\n"
    "Example: beststag backup run --type complete",
    no_args_is_help=True,
)


def _split(tables: str | None) -> list[str] | None:
    if tables is None:
        return None
    names = [t.strip() for t in tables.split(",") if t.strip()]
    if not names:
        raise BadInput("--tables is empty", hint="give table names separated by commas")
    return names


@app.command()
@interruptible
@as_job("backup-{type_}")
def run(
    type_: Annotated[str, typer.Option("--type", metavar="TYPE", help="incremental, complete or critical.")],
    tables: Annotated[
        str | None,
        typer.Option(metavar="TABLE,...", help="Tables, comma-separated (default: the type's tables in config)."),
    ] = None,
) -> None:
    """Back up the base into a new timestamped folder (exit 3 when some tables failed).

    Example: beststag backup run --type complete
    """
    from ..backup.runner import run_backup

    with render.progress() as progress:
        result = run_backup(STATE.settings, STATE.gateway, type_, _split(tables), progress=progress)
    data = result.summary()
    if STATE.json:
        render.emit_json(data)
    else:
        _render_backup(data)
    if result.remote is not None and result.remote.get("status") != "uploaded":
        raise RemoteFailed(
            f"backup {data['id']} is kept locally, but its upload to {result.remote.get('url')} "
            f"failed: {result.remote.get('error')}",
            hint=f"`beststag backup upload {data['id']}` sends it again",
        )
    if result.failed:
        first = next(iter(result.failed.items()))
        raise PartialSuccess(
            f"backup {data['id']} is partial: {len(result.failed)} table(s) failed, first {first[0]}: {first[1]}",
            hint="the other tables are kept; run the backup again",
        )


_REMOTE_HELP = "The copies in backup.remote (S3) instead of the local folder."


@app.command("list")
def list_(
    type_: Annotated[str | None, typer.Option("--type", metavar="TYPE", help="Only this type.")] = None,
    remote: Annotated[bool, typer.Option("--remote", help=_REMOTE_HELP)] = False,
) -> None:
    """List finished backups, oldest first (runs in progress are never listed).

    Example: beststag backup list --type incremental
    """
    from ..backup.layout import list_backups
    from ..config import BACKUP_TYPES

    if type_ is not None and type_ not in BACKUP_TYPES:
        raise BadInput(f"unknown backup type {type_!r} (expected one of {', '.join(BACKUP_TYPES)})")
    types = [type_] if type_ else list(BACKUP_TYPES)
    if remote:
        from ..backup.remote import S3Remote

        data = [b.summary() for b in S3Remote(STATE.settings).list_backups(types)]
    else:
        data = [b.summary() for b in list_backups(STATE.settings.paths.backups, types=types)]
    if STATE.json:
        render.emit_json(data)
        return
    backup_list(data)


@app.command()
def show(backup_id: Annotated[str, typer.Argument(metavar="ID", help="TYPE/TIMESTAMP (see `backup list`).")]) -> None:
    """Show one backup: status, parent, and per table its mode, records and size.

    Example: beststag backup show complete/2026-01-04T02-00-00Z
    """
    from ..backup.layout import find_backup

    data = find_backup(STATE.settings.paths.backups, backup_id).summary()
    if STATE.json:
        render.emit_json(data)
    else:
        _render_backup(data)


@app.command()
def verify(
    backup_id: Annotated[str | None, typer.Argument(metavar="ID", help="The backup to check.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every backup.")] = False,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote", help="Check the copies in backup.remote: every object's size and sha256 against the manifest."
        ),
    ] = False,
) -> None:
    """Check checksums, records, counts, schema and attachments (exit 1 naming the first broken file).

    Example: beststag backup verify --all
    """
    from ..backup.verify_run import verify_backups

    if (backup_id is None) == (not all_):
        raise BadInput("give a backup ID or --all", hint="e.g. beststag backup verify --all")
    with render.progress() as progress:
        outcome = verify_backups(STATE.settings, None if all_ else str(backup_id), remote=remote, progress=progress)
    if STATE.json:
        render.emit_json(outcome.to_dict())
    else:
        for r in outcome.verified:
            render.line(f"[green]ok[/]  {r.id}  {r.tables} tables, {r.records:,} records, {r.attachments} attachments")
        if not outcome.checked:
            render.note("no backups to verify")
    error = outcome.error()
    if error is not None:
        raise error


@app.command()
@interruptible
def restore(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="The backup (its state at that time is restored).")],
    tables: Annotated[
        str | None, typer.Option(metavar="TABLE,...", help="Tables, comma-separated (default: all in the backup).")
    ] = None,
    base: Annotated[
        str | None, typer.Option(metavar="BASE_ID", help="Restore into this base (default: the backup's own base).")
    ] = None,
    new_base: Annotated[
        str | None,
        typer.Option(
            "--new-base", metavar="NAME", help="Create a base of this name (in --workspace) and restore into it."
        ),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(metavar="WORKSPACE_ID", help="The workspace of --new-base (wspXXXXXXXXXXXXXX).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking (needed without a terminal).")] = False,
    prune_extra: Annotated[
        bool, typer.Option("--prune-extra", help="Same base: delete records the backup does not have.")
    ] = False,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Download the backup (and what it is built on) from backup.remote, verify it, then restore.",
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            max=86400,
            metavar="SECONDS",
            help="Wait up to this long for another restore into the same base to finish (default: exit 75 at once).",
        ),
    ] = 0.0,
) -> None:
    """Restore the base (or --base another one) to the state of a backup; resumes an interrupted restore.

    Tables and fields the target lacks are created from the backup's schema first; what the API cannot
    create (formulas, rollups, lookups, views…) is listed in a file for a person to recreate.

    Example: beststag backup restore complete/2026-01-04T02-00-00Z --tables Usuários --dry-run
    """
    target = _target(base, new_base, workspace)
    if not remote:
        _restore(STATE.settings, backup_id, tables, base, dry_run, yes, prune_extra, wait, target)
        return
    from ..backup.remote import downloaded

    with downloaded(STATE.settings, backup_id) as settings:
        _restore(settings, backup_id, tables, base, dry_run, yes, prune_extra, wait, target)


def _target(base: str | None, new_base: str | None, workspace: str | None) -> Any:
    from ..backup.restore import NewBase

    if new_base is None:
        if workspace is not None:
            raise BadInput("--workspace goes with --new-base NAME", hint="e.g. --new-base 'BestStag (restored)'")
        return None
    if base is not None:
        raise BadInput("--new-base and --base name two targets; give one of them")
    if workspace is None:
        raise BadInput("--new-base needs --workspace wspXXXXXXXXXXXXXX", hint="the workspace id is in its URL")
    return NewBase(new_base, workspace)


def _restore(
    settings: Any,
    backup_id: str,
    tables: str | None,
    base: str | None,
    dry_run: bool,
    yes: bool,
    prune_extra: bool,
    wait: float,
    new_base: Any = None,
) -> None:
    from ..backup.restore import plan_restore, restore_session

    gateway = STATE.gateway
    if dry_run:
        plan = plan_restore(
            settings,
            gateway,
            backup_id,
            tables=_split(tables),
            target_base=base,
            prune_extra=prune_extra,
            new_base=new_base,
        )
        if STATE.json:
            render.emit_json({**plan.summary(), "dry_run": True})
        else:
            from ..backup.restore import describe_writes

            _render_plan(plan.summary())
            render.line(
                f"dry run: restore would make {describe_writes(plan.write_counts())} in {plan.summary()['target_base']}"
            )
        return
    with restore_session(
        settings,
        gateway,
        backup_id,
        tables=_split(tables),
        target_base=base,
        prune_extra=prune_extra,
        wait_s=wait,
        new_base=new_base,
    ) as plan:
        _confirm_and_execute(settings, gateway, plan, yes)


def _confirm_and_execute(settings: Any, gateway: Any, plan: Any, yes: bool) -> None:
    from ..backup.restore import describe_writes, execute_restore

    target = plan.summary()["target_base"]
    if (plan.writes or plan.new_base is not None) and not yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise BadInput(
                f"restore would make {describe_writes(plan.write_counts())} in {target}; without a terminal pass --yes",
                hint="check the plan first with --dry-run",
            )
        _render_plan(plan.summary())
        if not typer.confirm(f"Make {describe_writes(plan.write_counts())} in {target}?", default=False, err=True):
            raise BadInput("nothing restored", hint="pass --yes to skip the question")
    with render.progress() as progress:
        result = execute_restore(settings, gateway, plan, progress=progress)
    data = result.summary()
    if STATE.json:
        render.emit_json(data)
        return
    _render_plan(data)
    render.line(
        f"restored: {describe_writes(data['writes'])} in {data['target_base']} in {data['duration_s']:.1f} s "
        f"(restore {data['id']})"
    )
    if data.get("manual_file"):
        render.line(f"to recreate by hand (fields the API cannot create, views): {data['manual_file']}")


def _render_plan(d: dict[str, Any]) -> None:
    render.line(
        f"restore of [bold]{d['backup_id']}[/] into {d['target_base']} ({d['mode']})"
        + ("  [dim]resuming an interrupted restore[/]" if d.get("resumed") else "")
    )
    cols = ["table", "records", "create", "update", "skip", "delete", "attachments"]
    rows = [
        [n, t["records"], t["create"], t["update"], t["skip"], t["delete"], t["attachments"]]
        for n, t in d["tables"].items()
    ]
    if any("created" in t for t in d["tables"].values()):
        cols += ["created", "updated", "deleted", "uploaded"]
        for row, t in zip(rows, d["tables"].values(), strict=True):
            row += [t["created"], t["updated"], t["deleted"], t["uploaded"]]
    render.table(None, cols, rows)
    _render_schema(d.get("schema") or {})
    for w in d.get("warnings", []):
        render.note(f"[yellow]warning:[/] {w}")


def _render_schema(s: dict[str, Any]) -> None:
    """The schema plan: tables and fields to create, then what a person must recreate."""
    rows: list[list[Any]] = [[t, "create table", ", ".join(fields)] for t, fields in s.get("create_tables", {}).items()]
    rows += [[label.split(".", 1)[0], "create field", label.split(".", 1)[1]] for label in s.get("create_fields", [])]
    if rows:
        render.table(None, ["table", "schema", "fields"], rows)
    done = s.get("done") or {}
    if done.get("tables_created") or done.get("fields_created") or done.get("found"):
        render.line(
            f"schema: {len(done.get('tables_created', []))} table(s) and {len(done.get('fields_created', []))} "
            f"field(s) created, {len(done.get('renamed', []))} inverse link(s) renamed, "
            f"{len(done.get('found', []))} found made already (by an earlier run or a lost answer)"
        )
    manual = s.get("manual") or []
    views = s.get("views") or {}
    if manual or views:
        mrows = [[m["table"], m["field"], m["type"], m["what"]] for m in manual]
        mrows += [
            [t, v["name"], f"view ({v['type']})", "views cannot be created through the API"]
            for t, vs in views.items()
            for v in vs
        ]
        render.table("to recreate by hand", ["table", "field", "type", "how"], mrows)


@app.command()
@interruptible
@as_job("backup-drill")
def drill(
    backup_id: Annotated[
        str, typer.Argument(metavar="ID", help="The backup: an id, latest (default) or TYPE/latest.")
    ] = "latest",
    type_: Annotated[
        str | None,
        typer.Option("--type", metavar="TYPE", help="latest means the newest backup of this type (complete, ...)."),
    ] = None,
) -> None:
    """Restore a backup into a scratch sandbox base and compare it with the backup (exit 1 naming the first difference).

    Nothing is sent to Airtable: the base is built from the backup's schema.json in a sandbox of the
    drill's own, restored through the same code as `backup restore`, read back, compared (every
    writable field, link and attachment's sha256), recorded in the journal and removed.

    Example: beststag backup drill latest --type complete
    """
    from ..backup.drill import run_drill

    with render.progress() as progress:
        result = run_drill(STATE.settings, _journal(), backup_id, backup_type=type_, progress=progress)
    data = result.summary()
    if STATE.json:
        render.emit_json(data)
    else:
        _render_drill(data)
    error = result.failure()
    if error is not None:
        raise error


def _journal() -> Any:
    journal = STATE.gateway.journal
    if journal is None:  # pragma: no cover - a gateway always opens the configured journal
        raise BadInput("no journal to record the drill in")
    return journal


def _render_drill(d: dict[str, Any]) -> None:
    color = "green" if d["passed"] else "red"
    render.line(
        f"[{color}]{d['status']}[/]  drill {d['id']} of [bold]{d['backup_id']}[/]: {d['records']:,} records, "
        f"{d['attachments']:,} attachments, {d['links']:,} links compared in {d['duration_s']:.1f} s"
    )
    if d["tables"]:
        rows = [[n, t["records"], t["attachments"], t["links"]] for n, t in d["tables"].items()]
        render.table(None, ["table", "records", "attachments", "links"], rows)
    req, est = d["requests"], d["recovery_estimate"]
    if req["restore"]:
        render.line(
            f"a real restore needs {req['total']:,} requests ({req['restore']:,} restore, {req['schema']:,} schema): "
            f"{est['seconds']:,.1f} s at {est['requests_per_second']:g} req/s"
        )
    for w in d.get("warnings", []):
        render.note(f"[yellow]warning:[/] {w}")


@app.command()
@interruptible
@as_job("backup-cleanup")
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")] = False,
) -> None:
    """Delete backups the keep rules do not keep, unused attachments, and old leftovers of killed runs.

    Example: beststag backup cleanup --dry-run
    """
    from ..backup.cleanup import cleanup as core_cleanup

    report = core_cleanup(STATE.settings, STATE.gateway.base_id, dry_run=dry_run)
    data = report.to_dict()
    if STATE.json:
        render.emit_json(data)
        return
    verb = "would remove" if dry_run else "removed"
    render.line(
        f"{verb} {len(report.removed)} backup(s), kept {len(report.kept)}; {verb} "
        f"{report.attachments_removed} attachment file(s) ({_size(report.attachment_bytes_freed)}) and "
        f"{len(report.partial_removed)} leftover(s) of killed runs"
    )
    _render_decisions(report.kept, report.removed, verb)
    for bid, missing in report.missing_parents.items():
        render.note(f"[yellow]warning:[/] {bid} needs {', '.join(missing)}, which is already gone")
    if report.remote is not None:
        r = report.remote
        render.line(
            f"{r['url']}: {verb} {len(r['removed'])} backup(s), kept {len(r['kept'])}; {verb} "
            f"{r['attachments_removed']} attachment file(s) ({_size(r['attachment_bytes_freed'])})"
        )
        _render_decisions(r["kept"], r["removed"], verb)


def _render_decisions(kept: dict[str, list[str]] | list[str], removed: list[str], verb: str) -> None:
    """One row per backup, newest first within each type: kept by which rules, or removed (restic forget)."""
    from ..backup.retention import reason_label

    why = kept if isinstance(kept, dict) else {bid: [] for bid in kept}
    rows = [[bid, "keep", ", ".join(reason_label(r) for r in reasons) or "a keep rule"] for bid, reasons in why.items()]
    rows += [[bid, verb, "no keep rule keeps it"] for bid in removed]
    rows.sort(key=lambda r: r[0].rsplit("/", 1)[-1], reverse=True)  # newest first ...
    rows.sort(key=lambda r: r[0].split("/", 1)[0])  # ... within each type (a stable sort keeps that order)
    render.table(None, ["backup", "decision", "why"], rows)


@app.command()
def upload(
    backup_id: Annotated[str | None, typer.Argument(metavar="ID", help="The backup to send.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every local backup the remote does not have yet.")] = False,
) -> None:
    """Verify local backups and send them to backup.remote (a run does this by itself; this retries).

    Example: beststag backup upload --all
    """
    from ..backup.remote import upload_backups

    if (backup_id is None) == (not all_):
        raise BadInput("give a backup ID or --all", hint="e.g. beststag backup upload --all")
    outcome = upload_backups(STATE.settings, None if all_ else str(backup_id))
    if STATE.json:
        render.emit_json(outcome.results)
    else:
        for r in outcome.results:
            render.line(f"{r['id']}  {r['status']}  {r.get('url')}  {r.get('error', '')}")
        if not outcome.results:
            render.note("nothing to upload: the remote has every local backup")
    error = outcome.error()
    if error is not None:
        raise error
