"""`beststag sandbox …`: the local Airtable-compatible emulator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import BadInput
from . import render
from .confirm import confirm
from .state import STATE

if TYPE_CHECKING:
    from ..sandbox import Sandbox

app = typer.Typer(
    help="The local Airtable-compatible sandbox (used when no AIRTABLE_TOKEN is set).\n\n"
    "Example: beststag sandbox info",
    no_args_is_help=True,
)


def _open() -> Sandbox:
    from ..fsutil import ensure_private_dir
    from ..sandbox.admin import open_sandbox

    path = STATE.settings.paths.sandbox_db
    ensure_private_dir(path.parent)  # 0700, no planted link: the data dir's rules (fsutil), not the sandbox's
    return open_sandbox(path)


def _table_names(sb: Any) -> set[str]:
    from ..sandbox import SANDBOX_BASE_ID

    if not sb.store.has_base(SANDBOX_BASE_ID):
        return set()
    return {t["name"] for t in sb.store.base_schema(SANDBOX_BASE_ID)["tables"]}


def _drop_cached(tables: set[str]) -> None:
    """The cache must not answer with records the reseed or reset removed (or changed)."""
    from ..cache import invalidate_base
    from ..sandbox import SANDBOX_BASE_ID

    settings = STATE.settings
    bases = {SANDBOX_BASE_ID} | ({settings.base_id} if settings.sandbox_mode and settings.base_id else set())
    for base in sorted(bases):
        invalidate_base(settings, base, sorted(tables))


@app.command()
def info() -> None:
    """Show the sandbox token, the sample base's tables and every base with its record count.

    Example: beststag --json sandbox info
    """
    from ..sandbox.admin import info as core_info

    sb = _open()
    sb.ensure_sample()
    data = core_info(sb)
    if STATE.json:
        render.emit_json(data)
        return
    render.line(f"base [bold]{data['base_id']}[/]  token [bold]{data['token']}[/]  file {data['path']}")
    render.table(None, ["table", "id", "records"], [[t["name"], t["id"], t["records"]] for t in data["tables"]])
    if len(data["bases"]) > 1 or any(b["id"] != data["base_id"] for b in data["bases"]):
        render.table(
            "every base",
            ["base", "name", "tables", "records"],
            [[b["id"], b["name"], len(b["tables"]), b["records"]] for b in data["bases"]],
        )


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete every sandbox base and record.

    Example: beststag sandbox reset --yes
    """
    from ..sandbox.admin import reset as core_reset

    confirm("Delete all sandbox data?", what="sandbox reset deletes every sandbox base and record", yes=yes)
    sb = _open()
    tables = _table_names(sb)
    core_reset(sb)
    _drop_cached(tables)
    render.note("sandbox reset (cached answers of the sandbox base dropped)")


@app.command()
def seed(
    scale: Annotated[
        float, typer.Option(metavar="SCALE", help="1 ≈ 2,000 records; 50 ≈ 100,000.", min=0.01, max=500)
    ] = 1.0,
    seed_: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed (same seed, same data).")] = 42,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """(Re)create the sample BestStag base, deterministic from --seed.

    Example: beststag sandbox seed --scale 50
    """
    from ..sandbox import SANDBOX_BASE_ID
    from ..sandbox.admin import seed as core_seed

    sb = _open()
    if sb.store.has_base(SANDBOX_BASE_ID):  # a first seed replaces nothing: no question
        confirm(
            "Replace the sample base (every record in it)?",
            what=f"sandbox seed replaces every record of {SANDBOX_BASE_ID}",
            yes=yes,
        )
    tables = _table_names(sb)
    with render.progress() as progress:
        counts = core_seed(sb, scale=scale, seed=seed_, progress=progress)
    _drop_cached(tables | set(counts))
    if STATE.json:
        render.emit_json({"base_id": "appBestStagSandbx", "tables": counts})
    else:
        render.table("sample base seeded", ["table", "records"], [[k, v] for k, v in counts.items()])


@app.command()
def load(
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema", metavar="FILE", help="Airtable's schema document (the answer of GET /v0/meta/bases/ID/tables)."
        ),
    ] = None,
    from_backup: Annotated[
        str | None,
        typer.Option("--from-backup", metavar="ID", help="A backup id (or latest): its schema, records and files."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base", metavar="BASE_ID", help="Id of the new base, appXXX (default: new, or the backup's base)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Name of the new base.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the base if it exists (its records go).")] = False,
) -> None:
    """Load a copy of a real base: from its schema document or a backup, ids kept.

    Example: beststag sandbox load --from-backup latest --base appRehearsal000001
    """
    from ..sandbox_load import load_from_backup, load_schema_file

    if (schema is None) == (from_backup is None):
        raise BadInput("give one of --schema FILE or --from-backup ID", hint="beststag sandbox load --help")
    sb = _open()
    target = base or None
    old_tables = (
        {t["name"] for t in sb.store.base_schema(target)["tables"]} if target and sb.store.has_base(target) else set()
    )
    if schema is not None:
        result = load_schema_file(sb, schema, base_id=base, name=name, replace=replace)
    else:
        assert from_backup is not None
        result = load_from_backup(
            sb, STATE.settings.paths.backups, from_backup, base_id=base, name=name, replace=replace
        )
    if result.replaced:  # the cache must not answer with the replaced base's records
        from ..cache import invalidate_base

        invalidate_base(STATE.settings, result.base_id, sorted(old_tables | set(result.tables)))
    if STATE.json:
        render.emit_json(result.to_dict())
        return
    render.table(
        f"loaded {result.base_id} ({result.name}) from {result.source}",
        ["table", "records"],
        [[k, v] for k, v in result.tables.items()],
    )
    if result.blobs:
        render.note(f"{result.blobs} attachment file(s) stored")


@app.command()
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.", min=0, max=65535)] = 8765,
    token: Annotated[
        str | None,
        typer.Option(metavar="TOKEN", help="Token to accept (default $BESTSTAG_SANDBOX_TOKEN or 'sandbox')."),
    ] = None,
    latency_ms: Annotated[float, typer.Option(metavar="MS", help="Latency added to every request.", min=0)] = 0.0,
    rate_limit: Annotated[
        bool, typer.Option("--rate-limit", help="Enforce 5 req/s per base and the 30 s penalty, like Airtable.")
    ] = False,
    penalty_s: Annotated[
        float, typer.Option(metavar="SECONDS", help="Penalty after a 429 (with --rate-limit).", min=0)
    ] = 30.0,
    fault_rate: Annotated[
        float,
        typer.Option(metavar="SHARE", help="Share of requests answered 429/500/503 (split evenly).", min=0, max=1),
    ] = 0.0,
    fault_seed: Annotated[int, typer.Option(metavar="N", help="Seed of the fault sequence.")] = 0,
) -> None:
    """Serve the sandbox over HTTP, so curl, airtable.js or n8n can use it.

    Example: beststag sandbox serve --port 8765 --rate-limit
    """
    from ..sandbox import FaultConfig, LimitConfig
    from ..sandbox.server import make_server

    sb = _open()
    if token:
        sb.app.tokens = {token}
    sb.ensure_sample()
    sb.app.set_limits(LimitConfig(per_second=5 if rate_limit else None, penalty_s=penalty_s))
    share = fault_rate / 3
    sb.app.set_faults(
        FaultConfig(seed=fault_seed, latency_ms=latency_ms, rate_429=share, rate_500=share, rate_503=share)
    )
    try:
        server = make_server(sb.app, host, port)
    except OSError as e:
        raise BadInput(f"cannot listen on {host}:{port}: {e.strerror}", hint="choose another --port") from None
    url = f"http://{host}:{server.server_port}"
    tok = next(iter(sb.app.tokens))
    print(f"sandbox serving {url}  base appBestStagSandbx  token {tok}", flush=True)
    render.note(f"pyairtable: Api('{tok}', endpoint_url='{url}'); airtable.js: endpointUrl '{url}'. Ctrl-C stops.")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
