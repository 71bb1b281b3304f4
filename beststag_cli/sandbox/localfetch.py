"""Reading an attachment URL the sandbox may reach: loopback only.

Airtable downloads a URL attachment after answering (shared/reference/airtable-api.md §4.4); the
sandbox does it at once, but only for hosts on this machine (127.0.0.0/8, ::1, ``localhost``): it
never opens a connection elsewhere (tests run behind a proxy trap, and a sandbox reaches no network).
Proxies from the environment are ignored, so a loopback URL is never sent to a proxy either.
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 5.0
MAX_REDIRECTS = 3  # Airtable follows at most 3 redirects (reference §4.4)


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not is_loopback_url(newurl):
            return None  # a redirect off this machine is not followed: the answer stays an HTTP error
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _LoopbackRedirects())


def fetch_loopback(url: str, max_bytes: int) -> tuple[bytes, str | None] | None:
    """(content, Content-Type without parameters) of a loopback URL; None when the URL is not on
    loopback, cannot be read, answers an error, or is larger than ``max_bytes``."""
    if not is_loopback_url(url):
        return None
    try:
        with _OPENER.open(url, timeout=TIMEOUT_S) as resp:
            data = resp.read(max_bytes + 1)
            ctype = resp.headers.get_content_type() if resp.headers.get("Content-Type") else None
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if len(data) > max_bytes:
        return None
    return data, ctype
