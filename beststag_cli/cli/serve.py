"""`beststag serve`: the webhook server for the n8n workflows."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from ..errors import BadInput
from . import render
from .state import STATE


def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Address to bind (default: webhook.host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Port (default: webhook.port, 8787).", min=0, max=65535)
    ] = None,
    workers: Annotated[int, typer.Option(metavar="N", help="Worker processes.", min=1, max=32)] = 1,
) -> None:
    """Serve the /webhook/airtable/cache|backup|metrics endpoints (OpenAPI at /docs).

    Example: BESTSTAG_WEBHOOK_SECRET=… beststag serve --host 0.0.0.0 --port 8787
    """
    try:
        import uvicorn

        from ..server.app import create_app
    except ImportError:
        raise BadInput(
            "the webhook server needs the [serve] extra", hint="pip install 'beststag[serve]' (FastAPI and uvicorn)"
        ) from None
    from pydantic import SecretStr

    from ..fsutil import ensure_private_dir
    from ..server.secret import resolve_secret

    settings = STATE.settings
    from ..logs import log_requests_to_console

    log_requests_to_console(quiet=STATE.quiet)  # one line a request: method, path, status, duration
    host = host or settings.webhook.host
    port = settings.webhook.port if port is None else port
    configured = settings.webhook.secret.get_secret_value() if settings.webhook.secret else None
    ensure_private_dir(settings.paths.data_dir)
    secret, path = resolve_secret(configured, host, settings.paths.data_dir)
    settings.webhook.secret = SecretStr(secret)
    if path is not None:
        render.note(
            f"no BESTSTAG_WEBHOOK_SECRET: using the secret in {path} (0600); n8n sends it as a "
            "bearer token in the Authorization header"
        )
    render.note(f"beststag webhooks on http://{host}:{port} (docs at /docs); Ctrl-C stops")
    if workers == 1:
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        )
        _serve_until_signalled(server)
        return
    os.environ["BESTSTAG_WEBHOOK_SECRET"] = secret  # each worker loads the config itself
    if settings.config_path is not None:
        os.environ["BESTSTAG_CONFIG"] = str(settings.config_path)
    uvicorn.run(
        "beststag_cli.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def _serve_until_signalled(server: Any) -> None:
    """Run uvicorn; a SIGTERM/SIGINT it has answered with a graceful shutdown ends `serve` with status 0.

    uvicorn takes both signals while it runs, shuts down (the app's lifespan: the feed's loop and pulls
    stop, the cache and journal close), then raises the signal again under the handlers it found: these,
    which let a stop that was asked for end quietly. A signal before uvicorn took over is Ctrl-C (130)."""
    import signal

    def after_shutdown(sig: int, frame: Any) -> None:
        if not server.started:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, after_shutdown) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
