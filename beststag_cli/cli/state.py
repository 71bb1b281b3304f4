"""Global options and the lazily-built objects every command shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..cache.manager import CacheManager
    from ..config import Settings
    from ..gateway.api import Gateway


@dataclass
class State:
    config: Path | None = None
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    emitted: bool = False  # machine output already written to stdout
    _settings: Settings | None = None
    _gateway: Gateway | None = None
    _cache: CacheManager | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ..config import load_config
            from ..logs import setup_logging
            from .console_log import rich_handler

            self._settings = load_config(self.config)
            self._save_snapshot()  # the CLI's job, not the loader's: library users and tests write nothing
            setup_logging(
                self._settings,
                quiet=self.quiet,
                verbose=self.verbose,
                json_mode=self.json,
                terminal_handler=rich_handler,
            )
        return self._settings

    @property
    def gateway(self) -> Gateway:
        """The gateway; its change sink is the cache, built on the first write only."""
        if self._gateway is None:
            from ..cache.sync import CacheSync
            from ..gateway import build

            self._gateway = build(self.settings, sink=CacheSync(lambda: self.cache), source="cli")
        return self._gateway

    def _save_snapshot(self) -> None:
        """The settings snapshot the fast paths (cache hits, read-only commands) answer from."""
        from ..fastconfig import save_snapshot

        assert self._settings is not None
        save_snapshot(self._settings)

    @property
    def cache(self) -> CacheManager:
        """The cache, reading through `gateway` (the one way the CLI builds it)."""
        if self._cache is None:
            from ..cache import build_cache

            self._cache = build_cache(self.settings, gateway_factory=lambda: self.gateway, source="cli")
        return self._cache

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def close(self) -> None:
        if self._settings is not None:  # the data dir may exist only now: let the next hit be fast
            self._save_snapshot()
        if self._cache is not None:
            self._cache.close()
        if self._gateway is not None:
            self._gateway.close()


STATE = State()
