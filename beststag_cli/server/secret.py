"""The webhook secret: configured, or generated once into a private file on a loopback install."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from ..errors import BadInput
from ..fsutil import write_private_file

SECRET_FILE = "webhook.secret"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_secret(configured: str | None, host: str, data_dir: Path) -> tuple[str, Path | None]:
    """(secret, file it was read from or written to). Refuses a non-loopback host without one."""
    if configured:
        return configured, None
    if not is_loopback(host):
        raise BadInput(
            f"refusing to listen on {host} without a webhook secret",
            hint="set BESTSTAG_WEBHOOK_SECRET; n8n sends it as a bearer token in the Authorization header",
        )
    path = data_dir / SECRET_FILE
    try:
        text = path.read_text().strip()
        if len(text) >= 16:
            return text, path
    except OSError:
        pass
    value = secrets.token_urlsafe(32)
    write_private_file(path, value + "\n")
    return value, path
