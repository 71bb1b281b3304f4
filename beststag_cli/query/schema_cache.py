"""The base schema, cached on disk (`<data_dir>/schema/<base_id>.json`) with a TTL.

Validation needs the schema for every query; fetching it costs one metadata request, so it is
kept for `SCHEMA_TTL_S`. An unknown table or field triggers one refetch when the cached copy is
older than `RECHECK_AFTER_S` (the table may have just been created), never more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import UnknownField, UnknownTable
from .schema import BaseSchema, TableInfo

if TYPE_CHECKING:
    from ..gateway.api import Gateway

SCHEMA_TTL_S = 3600.0
RECHECK_AFTER_S = 60.0


def schema_path(data_dir: Path, base_id: str) -> Path:
    return Path(data_dir) / "schema" / f"{base_id}.json"


def _read(path: Path) -> tuple[float, dict[str, Any]] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return float(doc["fetched_at"]), dict(doc["schema"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SchemaCache:
    """Per process: memory, then the file, then the metadata API."""

    def __init__(self, gateway: Gateway, *, ttl_s: float = SCHEMA_TTL_S) -> None:
        self.gateway = gateway
        self.ttl_s = ttl_s
        self._schema: BaseSchema | None = None
        self._fetched_at = 0.0
        self.fetches = 0

    @property
    def path(self) -> Path:
        return schema_path(self.gateway.settings.paths.data_dir, self.gateway.base_id)

    def get(self, *, refresh: bool = False) -> BaseSchema:
        now = clock.timestamp()
        if not refresh and self._schema is not None and now - self._fetched_at < self.ttl_s:
            return self._schema
        if not refresh:
            hit = _read(self.path)
            if hit is not None and 0 <= now - hit[0] < self.ttl_s:
                self._fetched_at = hit[0]
                self._schema = BaseSchema.from_json(self.gateway.base_id, hit[1])
                return self._schema
        return self._fetch()

    def _fetch(self) -> BaseSchema:
        from ..fsutil import ensure_private_dir, write_private_file

        data = self.gateway.schema()
        self.fetches += 1
        self._fetched_at = clock.timestamp()
        self._schema = BaseSchema.from_json(self.gateway.base_id, data)
        ensure_private_dir(self.path.parent)
        write_private_file(self.path, json.dumps({"fetched_at": self._fetched_at, "schema": data}, ensure_ascii=False))
        return self._schema

    def _stale_enough(self) -> bool:
        return clock.timestamp() - self._fetched_at >= RECHECK_AFTER_S

    def table(self, name: str) -> TableInfo:
        """The table's schema; refetches once if it is unknown and our copy is not brand new."""
        schema = self.get()
        try:
            return schema.table(name)
        except UnknownTable:
            if not self._stale_enough():
                raise
        return self.get(refresh=True).table(name)

    def check_fields(self, table: str, names: list[str]) -> TableInfo:
        """The table, after making sure every name is a field of it (one refetch allowed)."""
        t = self.table(table)
        missing = [n for n in names if not t.has_field(n)]
        if missing and self._stale_enough():
            t = self.get(refresh=True).table(table)
        for n in names:
            t.field(n)  # raises UnknownField with a suggestion
        return t

    def invalidate(self) -> None:
        self._schema = None
        try:
            self.path.unlink()
        except OSError:
            pass


__all__ = ["SchemaCache", "UnknownField", "UnknownTable", "schema_path"]
