"""The Airtable-compatible sandbox: storage, REST API, in-process adapter and server.

`Sandbox(path)` opens (or creates) a sandbox data file; `sandbox.mount(session)` serves a
`requests` session from it without a socket; `sandbox.app` is the WSGI app for a real server.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .app import FaultConfig, LimitConfig, SandboxApp
from .store import ApiError, ListParams, SandboxStore

if TYPE_CHECKING:
    import requests
    from pyairtable import Api

SANDBOX_ENDPOINT = "http://sandbox.beststag.local"
SANDBOX_BASE_ID = "appBestStagSandbx"
DEFAULT_TOKEN = "sandbox"

__all__ = [
    "DEFAULT_TOKEN",
    "SANDBOX_BASE_ID",
    "SANDBOX_ENDPOINT",
    "ApiError",
    "FaultConfig",
    "LimitConfig",
    "ListParams",
    "Sandbox",
    "SandboxApp",
    "SandboxStore",
    "get_sandbox",
]


def sandbox_tokens(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return [env.get("BESTSTAG_SANDBOX_TOKEN") or DEFAULT_TOKEN]


class Sandbox:
    """A sandbox data file with its WSGI app."""

    def __init__(
        self,
        path: str | Path,
        *,
        tokens: list[str] | None = None,
        limits: LimitConfig | None = None,
        faults: FaultConfig | None = None,
        iterator_ttl_s: float = 300.0,
    ) -> None:
        self.path = Path(path)
        self.store = SandboxStore(path, iterator_ttl_s=iterator_ttl_s)
        self.app = SandboxApp(self.store, tokens=tokens or sandbox_tokens(), limits=limits, faults=faults)

    @classmethod
    def from_env(cls, path: str | Path) -> Sandbox:
        """Faults and limits from BESTSTAG_SANDBOX_FAULTS (JSON) and BESTSTAG_SANDBOX_RATE_LIMIT (req/s)."""
        faults = (
            FaultConfig.from_json(os.environ["BESTSTAG_SANDBOX_FAULTS"])
            if os.environ.get("BESTSTAG_SANDBOX_FAULTS")
            else None
        )
        limits = None
        if os.environ.get("BESTSTAG_SANDBOX_RATE_LIMIT"):
            spec = json.loads(os.environ["BESTSTAG_SANDBOX_RATE_LIMIT"])
            limits = LimitConfig(**spec) if isinstance(spec, dict) else LimitConfig(per_second=float(spec))
        return cls(path, limits=limits, faults=faults)

    def mount(self, session: requests.Session, endpoint: str = SANDBOX_ENDPOINT, *, upload_host: bool = False) -> None:
        """Serve `endpoint` in-process. `upload_host` also serves the host plain pyairtable sends uploads to
        (`<scheme>://content.airtable.com`); the Gateway routes uploads to the endpoint itself and needs no such
        mount (the sandbox serves `uploadAttachment` on its own host, in-process and over HTTP)."""
        from urllib.parse import urlsplit

        from .adapter import WSGIAdapter

        adapter = WSGIAdapter(self.app)
        session.mount(endpoint.rstrip("/") + "/", adapter)
        if upload_host:
            session.mount(f"{urlsplit(endpoint).scheme}://content.airtable.com/", adapter)
        session.trust_env = False  # proxies from the environment make no sense in-process (and cost 40%)

    def api(self, token: str = DEFAULT_TOKEN, **kwargs: Any) -> Api:
        """A pyairtable Api served by this sandbox (tests, benchmarks)."""
        from pyairtable import Api

        api = Api(token, endpoint_url=SANDBOX_ENDPOINT, **kwargs)
        self.mount(api.session, upload_host=True)
        return api

    def ensure_sample(self, *, seed: int = 42, scale: float = 1.0) -> bool:
        """Seed the sample BestStag base when absent; True when it was created now."""
        from .seed import load_sample
        from .store import IdsTaken

        if self.store.has_base(SANDBOX_BASE_ID):
            return False
        try:
            load_sample(self.store, seed=seed, scale=scale)
        except IdsTaken:  # a loaded copy of the sample (`sandbox load --from-backup`) holds its ids
            return False
        return True

    def close(self) -> None:
        self.store.close()


_registry: dict[str, Sandbox] = {}
_registry_lock = threading.Lock()


def get_sandbox(path: str | Path) -> Sandbox:
    """One Sandbox per data file per process (threads share it)."""
    key = str(Path(path).resolve())
    with _registry_lock:
        sb = _registry.get(key)
        if sb is None:
            sb = Sandbox.from_env(path)
            _registry[key] = sb
        return sb
