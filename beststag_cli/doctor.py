"""`beststag doctor`: is this installation able to do its work? Each check is plain data."""

from __future__ import annotations

import os
import platform
import stat
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings
from .errors import BestStagError
from .names import did_you_mean


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_config(settings: Settings) -> Check:
    src = settings.config_path
    return Check("config", True, f"{src}" if src else "no file found: built-in defaults")


def check_token(settings: Settings) -> Check:
    if settings.sandbox_mode:
        where = ("in-process sandbox at " + str(settings.paths.sandbox_db)
                 if settings.endpoint_url.rstrip("/").endswith("sandbox.beststag.local")
                 else f"sandbox server at {settings.endpoint_url}")
        return Check("token", True, f"no AIRTABLE_TOKEN: sandbox mode ({where})",
                     "set AIRTABLE_TOKEN and AIRTABLE_BASE_ID to use real Airtable")
    tok = settings.api_token()
    return Check("token", True, f"set ({tok[:3]}…, {len(tok)} characters)")


def check_base(gateway: Any) -> tuple[Check, dict[str, Any] | None]:
    t0 = time.perf_counter()
    try:
        schema = gateway.schema()
    except BestStagError as e:
        return Check("base", False, f"{gateway.base_id}: {e.message}", e.hint), None
    ms = (time.perf_counter() - t0) * 1000
    return Check("base", True, f"{gateway.base_id} reachable ({len(schema['tables'])} tables, {ms:.0f} ms)"), schema


def check_tables(settings: Settings, schema: dict[str, Any] | None) -> Check:
    if schema is None:
        return Check("tables", False, "not checked: the base is unreachable")
    names = [t["name"] for t in schema["tables"]]
    ids = {t["id"] for t in schema["tables"]}
    missing = []
    for name, t in settings.tables.items():
        if name in names or (t.id and t.id in ids):
            continue
        missing.append(f'"{name}"{did_you_mean(name, names)}')
    if missing:
        return Check("tables", False, "missing from the base: " + ", ".join(missing),
                     "fix `tables:` in the config to match the base's table names")
    return Check("tables", True, f"all {len(settings.tables)} configured tables present")


def check_data_dir(settings: Settings) -> Check:
    from .fsutil import ensure_private_dir

    d = settings.paths.data_dir
    try:
        ensure_private_dir(d)
        probe = d / f".doctor-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        return Check("data_dir", False, f"{d}: not writable ({e.strerror})", "fix the folder's owner or data_dir")
    loose = []
    for p in [d, *d.rglob("*")]:
        if p.is_symlink() or not p.exists():
            continue
        want = 0o700 if p.is_dir() else 0o600
        if _mode(p) & 0o077:
            loose.append(f"{p.relative_to(d.parent) if p != d else p} is {_mode(p):o} (want {want:o})")
    if loose:
        return Check("data_dir", False, "; ".join(loose[:5]) + (" …" if len(loose) > 5 else ""),
                     f"chmod -R go-rwx {d}")
    return Check("data_dir", True, f"{d} writable, private (0700/0600)")


def check_locks(settings: Settings) -> Check:
    from filelock import FileLock, Timeout

    held = []
    locks = settings.paths.locks
    for p in sorted(locks.glob("*.lock")) if locks.exists() else []:
        try:
            with FileLock(str(p), timeout=0):
                pass
        except Timeout:
            held.append(p.stem)
    return Check("locks", True, "held now: " + ", ".join(held) if held else "no job running")


def check_backups(settings: Settings) -> Check:
    """Every listed backup's manifest reads and type-checks (files are `backup verify`'s job)."""
    from .backup.layout import list_backups

    try:
        backups = list_backups(settings.paths.backups)
    except OSError as e:
        return Check("backups", False, f"{settings.paths.backups}: cannot be read ({e.strerror})",
                     "fix the folder's owner and mode")
    broken = [b for b in backups if b.manifest is None]
    if broken:
        detail = "; ".join(f"{b.id}: {b.problem}" for b in broken[:3]) + (" …" if len(broken) > 3 else "")
        return Check("backups", False, f"{len(broken)} of {len(backups)} backup(s) broken: {detail}",
                     "they are skipped as parents and by cleanup; move them out of the backups folder "
                     "and run a new complete backup (`beststag backup verify --all` checks every file)")
    return Check("backups", True, f"{len(backups)} backup(s), every manifest readable")


def check_versions() -> Check:
    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    return Check("versions", True, f"beststag {__version__}, python {platform.python_version()}, "
                                   f"pyairtable {v('pyairtable')}, diskcache {v('diskcache')}")


def run_checks(settings: Settings, gateway: Any) -> list[Check]:
    base, schema = check_base(gateway)
    return [check_config(settings), check_token(settings), base, check_tables(settings, schema),
            check_data_dir(settings), check_locks(settings), check_backups(settings), check_versions()]
