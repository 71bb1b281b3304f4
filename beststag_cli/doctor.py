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
    links = []
    for p in [d, *d.rglob("*")]:
        if p != d and p.is_symlink():
            links.append(str(p.relative_to(d)))
            continue
        if not p.exists():
            continue
        want = 0o700 if p.is_dir() else 0o600
        if _mode(p) & 0o077:
            loose.append(f"{p.relative_to(d.parent) if p != d else p} is {_mode(p):o} (want {want:o})")
    if links:
        return Check("data_dir", False, "symlinks inside the data dir (beststag refuses them): "
                     + ", ".join(links[:5]) + (" …" if len(links) > 5 else ""),
                     f"remove them (`find {d} -type l`) or replace them with real folders/files")
    if loose:
        return Check("data_dir", False, "; ".join(loose[:5]) + (" …" if len(loose) > 5 else ""),
                     f"chmod -R go-rwx {d}")
    return Check("data_dir", True, f"{d} writable, private (0700/0600)")


def check_locks(settings: Settings) -> Check:
    from filelock import FileLock, Timeout

    held = []
    locks = settings.paths.locks
    for p in sorted(locks.glob("*.lock")) if locks.is_dir() and not locks.is_symlink() else []:
        if p.is_symlink() or not p.is_file():
            continue  # never open (and truncate) a planted link's target; data_dir reports it
        try:
            with FileLock(str(p), timeout=0):
                pass
        except Timeout:
            held.append(p.stem)
    return Check("locks", True, "held now: " + ", ".join(held) if held else "no job running")


def check_cache(settings: Settings) -> Check:
    """The on-disk cache's files (read only): a damaged cache never fails a read, but doctor says so."""
    from .cache.store import check

    try:
        problems = check(settings)
    except OSError as e:
        problems = [f"{settings.paths.cache_dir}: {e.strerror or e}"]
    if problems:
        return Check("cache", False, "; ".join(problems[:3]),
                     "reads fall back to Airtable meanwhile; `beststag doctor --repair` (or any cache read) "
                     "moves the damaged files aside (cache/store.corrupt-*) and rebuilds the cache")
    return Check("cache", True, f"{settings.paths.cache_dir} sound" if settings.cache.backend == "diskcache"
                 else f"{settings.cache.backend} (not checked here)")


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


def _journal(settings: Settings, gateway: Any) -> Any:
    from .journal import Journal

    j = getattr(gateway, "journal", None) if gateway is not None else None
    return j if j is not None else Journal(settings.paths.journal)


def check_journal(settings: Settings, gateway: Any) -> Check:
    """The journal opens, has our schema and passes ``PRAGMA quick_check``."""
    from .errors import BestStagError
    from .journal import quick_check

    path = settings.paths.journal
    if not path.exists():
        return Check("journal", True, f"{path}: not created yet")
    try:
        problem = quick_check(_journal(settings, gateway))
    except BestStagError as e:  # e.g. UnsafePath: the journal is a symlink
        return Check("journal", False, e.message, e.hint)
    if problem:
        return Check("journal", False, problem,
                     "`beststag doctor --repair` moves it aside (journal.sqlite.corrupt-<time>) and starts a fresh one")
    return Check("journal", True, f"{path}: quick_check ok")


def repair_journal(settings: Settings, gateway: Any) -> str:
    """Move the damaged journal aside inside the data dir and start a fresh one; what was done."""
    from .journal import Journal, set_aside

    j = getattr(gateway, "journal", None) if gateway is not None else None
    if j is not None:
        j.close()  # our own connections; the next use opens the fresh file
    dest = set_aside(settings.paths.journal)
    fresh = Journal(settings.paths.journal)
    fresh.query("SELECT 1")
    fresh.close()
    return f"moved the damaged journal to {dest} and started a fresh one" if dest else "no journal to repair"


#: check name -> repair for `doctor --repair` (run for failed checks only, in the order of the checks)
def repair_cache(settings: Settings, gateway: Any) -> str:
    """Open the cache now: damaged files are moved aside (cache/store.corrupt-*) and the store rebuilt."""
    from .cache.store import repair

    done = repair(settings)
    return "cache: " + ("; ".join(done) if done else "rebuilt")


REPAIRS: dict[str, Any] = {"journal": repair_journal, "cache": repair_cache}


def run_checks(settings: Settings, gateway: Any) -> list[Check]:
    base, schema = check_base(gateway)
    return [check_config(settings), check_token(settings), base, check_tables(settings, schema),
            check_data_dir(settings), check_cache(settings), check_locks(settings), check_journal(settings, gateway),
            check_backups(settings), check_versions()]


def run_repairs(settings: Settings, gateway: Any, checks: list[Check]) -> list[str]:
    """Run the repair of every failed check that has one; one line per repair done."""
    return [REPAIRS[c.name](settings, gateway) for c in checks if not c.ok and c.name in REPAIRS]
