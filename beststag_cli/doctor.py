"""`beststag doctor`: is this installation able to do its work? Each check is plain data.

Doctor looks and never fixes: it changes no mode (a loose one is a finding whose hint is the chmod
that fixes it), rebuilds nothing, and writes inside the data dir only the probe that tells whether
it can be written (created and removed again). ``--repair`` is the one exception, and it says so.
Every check gives one line: its name, what is wrong, how to fix it. A hint never sends the operator
back to doctor itself (messages borrowed from other errors lose such clauses).

Checks that need the network (the base, its tables, Airtable's clock, Redis, S3) are skipped with
``offline`` and say so.
"""

from __future__ import annotations

import errno
import os
import platform
import re
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import __version__, clock
from .errors import BestStagError
from .names import did_you_mean

if TYPE_CHECKING:
    from .config import Settings

Status = Literal["ok", "fail", "skip"]

#: below this much free space on the data dir's filesystem, backups and the journal are at risk
LOW_SPACE_BYTES = 100 * 1024 * 1024
#: the probe written to tell whether the data dir takes writes (a full disk often still creates empty files)
PROBE_BYTES = 4096
#: host clock vs Airtable's `Date` header: beyond this, `since`/`as_of` and ages disagree
MAX_SKEW_S = 60.0
#: Redis and S3 answer within this or are reported unreachable (doctor must not hang a terminal)
CONNECT_TIMEOUT_S = 3.0
#: the zone the schedule, retention buckets and metrics count in (ops/schedule.py)
SCHEDULE_ZONE = "UTC"

_SELF_REFERENCE = re.compile(r"beststag doctor|`doctor\b|\bdoctor --")


@dataclass
class Check:
    name: str
    status: Status
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        self.hint = _own_hint(self.hint)

    @property
    def ok(self) -> bool:
        """Not failed (a skipped check is not a failure)."""
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message, "hint": self.hint}


def _own_hint(hint: str) -> str:
    """``hint`` without the clauses that send the operator to doctor (it is what is running)."""
    if not _SELF_REFERENCE.search(hint):
        return hint
    parts = [p.strip() for p in re.split(r";\s*|\.\s+(?=[A-Z`])", hint) if p.strip()]
    return "; ".join(p for p in parts if not _SELF_REFERENCE.search(p))


def _ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def _fail(name: str, message: str, hint: str) -> Check:
    return Check(name, "fail", message, hint)


def _skip(name: str, message: str) -> Check:
    return Check(name, "skip", message)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n:,} bytes"  # pragma: no cover


def _mode(st: os.stat_result) -> int:
    return stat.S_IMODE(st.st_mode)


def _scrub(text: str, settings: Settings) -> str:
    """``text`` with every secret we know of masked: configured secrets, URL passwords, AWS keys."""
    from .settings_sources import MASK, env_secret_values, mask_url_password

    out = mask_url_password(text)
    secrets = list(settings.secrets()) + env_secret_values(os.environ)
    for s in sorted(set(secrets), key=len, reverse=True):
        if len(s) >= 4:
            out = out.replace(s, MASK)
    return out


# --------------------------------------------------------------------------------------------
# configuration and identity (local)


def check_config(settings: Settings) -> Check:
    src = settings.config_path
    return _ok("config", f"{src}" if src else "no file found: built-in defaults")


def check_token(settings: Settings) -> Check:
    if settings.sandbox_mode:
        where = (
            "in-process sandbox at " + str(settings.paths.sandbox_db)
            if settings.endpoint_url.rstrip("/").endswith("sandbox.beststag.local")
            else f"sandbox server at {settings.endpoint_url}"
        )
        return _ok("token", f"no AIRTABLE_TOKEN: sandbox mode ({where})")
    # never a character of the token itself: its length and kind are enough to spot a truncated paste
    tok = settings.api_token()
    kind = "personal access token" if tok.startswith("pat") else "token"
    return _ok("token", f"{kind} set ({len(tok)} characters), endpoint {settings.endpoint_url}")


# --------------------------------------------------------------------------------------------
# the data dir and what is in it (local, read only)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def _probe(d: Path) -> OSError | None:
    """Create, fill, fsync and remove a small file inside ``d``; the error if any step failed."""
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-probe-", dir=d)
    except OSError as e:
        return e
    try:
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        return e
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass
    return None


def check_data_dir(settings: Settings) -> Check:
    """The data dir takes writes (a probe file created and removed inside it) and has room."""
    from .diskspace import free_bytes

    d = settings.paths.data_dir
    ro_hint = (
        f"remount that filesystem read-write (`mount -o remount,rw {_mount_point(d)}`) or point "
        "BESTSTAG_DATA_DIR (data_dir) at a writable folder"
    )
    if not os.path.lexists(d):
        above = _nearest_existing(d)
        if _read_only_fs(above):
            return _fail(
                "data_dir", f"{d} does not exist and cannot be created: {above} is on a read-only filesystem", ro_hint
            )
        return _ok("data_dir", f"{d} not created yet (the first command creates it, 0700)")
    if os.path.islink(d) or not d.is_dir():
        return _fail(
            "data_dir",
            f"{d} is not a folder" + (" (a symlink)" if os.path.islink(d) else ""),
            "point BESTSTAG_DATA_DIR (data_dir) at a real folder",
        )
    if _read_only_fs(d):
        return _fail(
            "data_dir", f"{d} is on a read-only filesystem: nothing can be cached, journaled or backed up", ro_hint
        )
    free = free_bytes(d)
    err = _probe(d)
    if err is not None:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return _fail(
                "data_dir",
                f"{d}: disk full, a {PROBE_BYTES}-byte file could not be written ({_size(free or 0)} free)",
                "free space on that filesystem, or move BESTSTAG_DATA_DIR (data_dir) to a bigger one",
            )
        if err.errno == errno.EROFS:
            return _fail("data_dir", f"{d} is on a read-only filesystem", ro_hint)
        who = f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "this user"
        return _fail(
            "data_dir",
            f"{d} is not writable by {who}: {err.strerror or err}",
            f"give the folder to the user beststag runs as (`chown -R {who.split()[-1]} {d}`)",
        )
    if free is not None and free < LOW_SPACE_BYTES:
        return _fail(
            "data_dir",
            f"{d}: disk full soon, only {_size(free)} free (below {_size(LOW_SPACE_BYTES)})",
            "free space on that filesystem, or move BESTSTAG_DATA_DIR (data_dir) to a bigger one",
        )
    return _ok("data_dir", f"{d} writable, {_size(free) if free is not None else 'unknown space'} free")


def _mount_point(path: Path) -> Path:
    p = Path(os.path.abspath(_nearest_existing(path)))
    while not os.path.ismount(p) and p.parent != p:
        p = p.parent
    return p


def check_modes(settings: Settings) -> Check:
    """No symlink inside the data dir and nothing readable by others: reported, never changed."""
    d = settings.paths.data_dir
    if not os.path.isdir(d) or os.path.islink(d):
        return _skip("modes", f"{d} does not exist yet")
    loose: list[str] = []
    links: list[str] = []
    public = Path(settings.paths.prom_file)
    for top, dirs, files in os.walk(d, onerror=lambda e: None):  # never follows links
        for name in [*dirs, *files]:
            p = Path(top) / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links.append(str(p.relative_to(d)))
            elif p == public and _mode(st) == 0o644:
                continue  # the Prometheus textfile: 0644 on purpose (node_exporter reads it), the one exception
            elif _mode(st) & 0o077:
                loose.append(f"{p.relative_to(d)} is {_mode(st):o}")
    try:
        top_mode = _mode(os.lstat(d))
    except OSError:
        top_mode = 0o700
    if top_mode & 0o077:
        loose.insert(0, f"{d} is {top_mode:o}")
    if links:
        return _fail(
            "modes",
            "symlinks inside the data dir (beststag refuses them): "
            + ", ".join(links[:5])
            + (" …" if len(links) > 5 else ""),
            f"remove them (`find {d} -type l`) or replace them with real folders/files",
        )
    if loose:
        hint = f"chmod 700 {d}" if len(loose) == 1 and top_mode & 0o077 else f"chmod -R go-rwx {d}"
        return _fail(
            "modes",
            "readable by others (want 0700 folders, 0600 files): "
            + "; ".join(loose[:5])
            + (f" … ({len(loose)} in all)" if len(loose) > 5 else ""),
            hint,
        )
    return _ok("modes", f"{d} private (0700/0600), no symlinks")


def check_journal(settings: Settings) -> Check:
    """The journal passes ``PRAGMA quick_check``, opened read-only (``mode=ro``): doctor never creates,
    migrates or chmods it."""
    path = settings.paths.journal
    repair = "`--repair` moves it aside (journal.sqlite.corrupt-<time>, kept for inspection) and starts a fresh one"
    links = [c for c in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if os.path.islink(c)]
    if links:
        return _fail(
            "journal",
            f"{links[0]} is a symlink (beststag never opens its journal through a link)",
            f"remove the link ({links[0]}) and move the real file back",
        )
    if not path.exists():
        return _ok("journal", f"{path}: not created yet")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        text = str(e)
        if "locked" in text or "busy" in text:
            return _skip("journal", f"{path}: busy (a job is writing it): {text}")
        return _fail("journal", f"{path} is damaged: {type(e).__name__}: {text[:160]}", repair)
    bad = [str(r[0]) for r in rows if str(r[0]).lower() != "ok"]
    if bad:
        return _fail("journal", f"{path} is damaged: {'; '.join(bad[:3])[:200]}", repair)
    if tables and "requests" not in tables:
        return _fail("journal", f"{path} is not beststag's journal (no table requests)", repair)
    return _ok("journal", f"{path}: quick_check ok")


def check_cache(settings: Settings) -> Check:
    """The on-disk cache's files, read only: a damaged cache never fails a read, but doctor says so."""
    from .cache.store import check

    if settings.cache.backend != "diskcache":
        return _skip("cache", f"{settings.cache.backend} backend (see the redis check)")
    try:
        problems = check(settings)
    except OSError as e:
        problems = [f"{settings.paths.cache_dir}: {e.strerror or e}"]
    if problems:
        return _fail(
            "cache",
            "; ".join(problems[:3]),
            "reads fall back to Airtable meanwhile; `--repair` (or the next cache read) moves the "
            "damaged files aside (cache/store.corrupt-*) and rebuilds the cache",
        )
    return _ok("cache", f"{settings.paths.cache_dir} sound")


def check_backups(settings: Settings) -> Check:
    """Every listed backup's manifest reads and type-checks (the files are `backup verify`'s job)."""
    from .backup.layout import list_backups

    try:
        backups = list_backups(settings.paths.backups)
    except OSError as e:
        return _fail(
            "backups", f"{settings.paths.backups}: cannot be read ({e.strerror})", "fix the folder's owner and mode"
        )
    except BestStagError as e:
        return _fail("backups", e.message, e.hint)
    broken = [b for b in backups if b.manifest is None]
    if broken:
        detail = "; ".join(f"{b.id}: {b.problem}" for b in broken[:3]) + (" …" if len(broken) > 3 else "")
        return _fail(
            "backups",
            f"{len(broken)} of {len(backups)} backup(s) broken: {detail}",
            "they are skipped as parents and by cleanup; move them out of the backups folder "
            "and run a new complete backup (`beststag backup run --type complete`)",
        )
    return _ok("backups", f"{len(backups)} backup(s), every manifest readable")


def check_locks(settings: Settings) -> Check:
    """Which job locks are held now (flock on a read-only descriptor: no lock file is created or chmod-ed)."""
    import fcntl

    held = []
    locks = settings.paths.locks
    for p in sorted(locks.glob("*.lock")) if locks.is_dir() and not locks.is_symlink() else []:
        try:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue  # a planted link or a special file: the modes check reports it
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(p.stem)
        finally:
            os.close(fd)
    return _ok("locks", "held now: " + ", ".join(held) if held else "no job running")


def check_feed(settings: Settings) -> Check:
    """The change feed's state in the journal (read-only): off, whole, or broken with its gaps named."""
    path = settings.paths.journal
    from .settings_sources import SANDBOX_BASE_ID

    base = settings.base_id or SANDBOX_BASE_ID
    if not path.exists() or os.path.islink(path):
        return _skip("feed", "off (no journal yet)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute("SELECT cursor, broken_reason FROM feed WHERE base = ?", (base,)).fetchone()
            gaps = con.execute("SELECT table_name, reason FROM feed_gaps WHERE base = ?", (base,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return _skip("feed", "off (the journal has no feed tables yet)")  # damaged: the journal check says so
    if row is None:
        return _skip("feed", "off (beststag feed enable follows outside changes)")
    if row[1] or gaps:
        why = "; ".join(dict.fromkeys(str(r) for _, r in gaps)) or str(row[1])
        tables = ", ".join(sorted(str(t) for t, _ in gaps))
        return _fail(
            "feed",
            f"broken: {len(gaps)} table(s) with gaps ({why}): {tables}"[:400],
            "those tables are revalidated as before; run beststag feed pull (feed enable if the webhook is gone)",
        )
    return _ok("feed", f"whole, cursor {row[0]}")


def check_versions() -> Check:
    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    return _ok(
        "versions",
        f"beststag {__version__}, python {platform.python_version()}, "
        f"pyairtable {v('pyairtable')}, diskcache {v('diskcache')}",
    )


# --------------------------------------------------------------------------------------------
# the host


def _utc_offset(ts: float) -> tuple[timedelta, str]:
    lt = time.localtime(ts)
    return timedelta(seconds=lt.tm_gmtoff), lt.tm_zone


def _fmt_offset(off: timedelta) -> str:
    total = int(off.total_seconds())
    sign = "+" if total >= 0 else "-"
    h, m = divmod(abs(total) // 60, 60)
    return f"UTC{sign}{h:02d}:{m:02d}"


def check_timezone(now: datetime | None = None) -> Check:
    """The host's zone against the schedule's (UTC): cron reads the crontab in the host's local time.

    Checked now and half a year away, so a zone that is UTC only in winter (Europe/London) is caught
    in January too.
    """
    ts = (now or clock.now()).timestamp()
    seen = {_utc_offset(t) for t in (ts, ts + 182 * 86400)}
    off, zone = _utc_offset(ts)
    if all(o == timedelta(0) for o, _ in seen):
        return _ok("timezone", f"host in {zone} ({_fmt_offset(off)}): the schedule's zone")
    other = sorted({_fmt_offset(o) for o, _ in seen})
    return _fail(
        "timezone",
        f"the host runs in {zone} ({'/'.join(other)}) but the schedules, retention and "
        f"metrics assume {SCHEDULE_ZONE}: cron starts each job at the host's local time",
        "set the host's zone to UTC (`timedatectl set-timezone UTC`) or shift the schedules in the "
        "config by the offset",
    )


def _prometheus_path(settings: Settings) -> tuple[Path, bool]:
    """The textfile's path and whether it is configured (``metrics.prometheus_path``) or the default."""
    configured = getattr(settings.metrics, "prometheus_path", None)
    if configured:
        return Path(configured), True
    return settings.paths.prom_file, False


def check_prometheus(settings: Settings, path: Path | None = None) -> Check:
    """node_exporter (another user) can read the textfile: the file o+r, every folder above it o+x."""
    if path is None:
        path, configured = _prometheus_path(settings)
    else:
        configured = True
    path = Path(os.path.abspath(path))
    if not configured and not os.path.lexists(path):
        return _skip("prometheus", "no textfile written (metrics.prometheus_path not set)")
    data_dir = Path(os.path.abspath(settings.paths.data_dir))
    move = (
        "set metrics.prometheus_path to a file in node_exporter's textfile folder "
        "(e.g. /var/lib/node_exporter/textfile_collector/beststag.prom)"
    )
    for folder in [*reversed(path.parents)]:
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            break  # created by the first export (0755 outside the data dir)
        except OSError as e:
            return _fail("prometheus", f"{folder}: {e.strerror}", move)
        if not _mode(st) & 0o001:
            inside = data_dir in path.parents  # the data dir stays 0700: the file has to move out
            return _fail(
                "prometheus",
                f"{path}: node_exporter (another user) cannot reach it, {folder} is {_mode(st):o} (no o+x)",
                move if inside else f"chmod o+x {folder}",
            )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _ok("prometheus", f"{path}: not written yet; its folders are open to node_exporter")
    except OSError as e:
        return _fail("prometheus", f"{path}: {e.strerror}", move)
    if not _mode(st) & 0o004:
        return _fail(
            "prometheus", f"{path} is {_mode(st):o}: node_exporter (another user) cannot read it", f"chmod 644 {path}"
        )
    return _ok("prometheus", f"{path} readable by node_exporter ({_mode(st):o})")


# --------------------------------------------------------------------------------------------
# the network: the base, its tables, Airtable's clock, Redis, S3


@dataclass
class BaseAnswer:
    """What the base check learnt: the schema (None when unreachable) and Airtable's clock."""

    check: Check
    schema: dict[str, Any] | None
    airtable_now: datetime | None
    host_now: datetime | None


def _visible_bases(gateway: Any) -> list[str]:
    """Ids of the bases the token sees (``GET /v0/meta/bases``, every page)."""
    api = gateway.api
    ids: list[str] = []
    offset: str | None = None
    for _ in range(100):  # 1000 bases a page: more than enough, and never a loop on a bad offset
        page = api.request("get", api.build_url("meta/bases"), params={"offset": offset} if offset else None)
        ids += [str(b.get("id")) for b in page.get("bases", []) if isinstance(b, dict)]
        offset = page.get("offset")
        if not offset:
            break
    return ids


def check_base(settings: Settings, gateway: Any) -> BaseAnswer:
    """The token is accepted (whoami), sees the base (meta/bases) and reads its schema; Airtable's clock
    is read from the answers' ``Date`` headers on the way (backup/runner.py:AirtableClock)."""
    from .backup.runner import AirtableClock
    from .config import SANDBOX_BASE_ID

    base = settings.base_id or "?"
    airtable = AirtableClock(settings.endpoint_url)
    try:
        session = gateway.api.session
        session.hooks["response"].append(airtable.hook)
        try:
            gateway.api.request("get", gateway.api.build_url("meta/whoami"))
            seen = _visible_bases(gateway)
            schema = None
            if base in seen:
                t0 = time.perf_counter()
                schema = gateway.schema()
                ms = (time.perf_counter() - t0) * 1000
        finally:
            session.hooks["response"].remove(airtable.hook)
    except BestStagError as e:
        hint = e.hint or "check AIRTABLE_TOKEN and AIRTABLE_BASE_ID"
        return BaseAnswer(_fail("base", f"{base}: {_scrub(e.message, settings)}", hint), None, None, None)
    host_now = clock.now()
    if schema is None:
        shown = ", ".join(seen[:5]) + (" …" if len(seen) > 5 else "")
        if settings.sandbox_mode:
            check = _fail(
                "base",
                f"{base} is not a sandbox base (the sandbox has {shown or 'none'}): without "
                "AIRTABLE_TOKEN beststag runs against the sandbox",
                f"unset AIRTABLE_BASE_ID (airtable.base_id) to use the sandbox ({SANDBOX_BASE_ID}), or "
                "set AIRTABLE_TOKEN to reach that base on Airtable",
            )
        else:
            check = _fail(
                "base",
                f"the token cannot see base {base} (it sees {len(seen)} base(s)" + (f": {shown})" if shown else ")"),
                "give the token access to that base (airtable.com/create/tokens), or fix AIRTABLE_BASE_ID",
            )
        return BaseAnswer(check, None, airtable.now(), host_now)
    tables = schema.get("tables", [])
    return BaseAnswer(
        _ok("base", f"{base} reachable ({len(tables)} tables, {ms:.0f} ms)"), schema, airtable.now(), host_now
    )


def check_tables(settings: Settings, schema: dict[str, Any] | None) -> Check:
    if schema is None:
        return _skip("tables", "not checked: the base is unreachable")
    names = [t["name"] for t in schema["tables"]]
    ids = {t["id"] for t in schema["tables"]}
    missing = []
    for name, t in settings.tables.items():
        if name in names or (t.id and t.id in ids):
            continue
        missing.append(f'"{name}"{did_you_mean(name, names)}')
    if missing:
        return _fail(
            "tables",
            "missing from the base: " + ", ".join(missing),
            "fix `tables:` in the config to match the base's table names",
        )
    return _ok("tables", f"all {len(settings.tables)} configured tables present")


def check_clock(settings: Settings, gateway: Any, answer: BaseAnswer) -> Check:
    """The host's clock against Airtable's (the ``Date`` of the base check's answers)."""
    if getattr(gateway, "in_process_sandbox", False):
        return _skip("clock", "the in-process sandbox runs on this host's clock")
    if answer.airtable_now is None or answer.host_now is None:
        return _skip("clock", "not checked: no answer from Airtable carried a Date header")
    skew = (answer.host_now - answer.airtable_now).total_seconds()
    where = "ahead of" if skew > 0 else "behind"
    if abs(skew) > MAX_SKEW_S:
        return _fail(
            "clock",
            f"the host's clock is {abs(skew):.0f} s {where} Airtable's (its Date header; "
            f"more than {MAX_SKEW_S:.0f} s): backup ages and alerts are off by as much",
            "sync the host's clock with NTP (`timedatectl set-ntp true`, chrony or systemd-timesyncd)",
        )
    return _ok("clock", f"within {max(1.0, abs(skew)):.0f} s of Airtable's (Date header)")


def _redis_urls(settings: Settings) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    if settings.cache.redis_url:
        out[settings.cache.redis_url] = "cache.redis_url / BESTSTAG_REDIS_URL"
    lim = settings.airtable.limiter_redis_url
    if lim and settings.airtable.limiter == "redis":
        out.setdefault(lim, "airtable.limiter_redis_url")
    return [(url, what) for url, what in out.items()]


def check_redis(settings: Settings) -> list[Check]:
    """Each configured Redis answers PING within :data:`CONNECT_TIMEOUT_S` (the error in one line, no password)."""
    urls = _redis_urls(settings)
    if not urls:
        return [_skip("redis", "not configured (BESTSTAG_REDIS_URL / cache.redis_url)")]
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        return [
            _fail(
                "redis",
                "a Redis URL is configured but the redis package is not installed",
                "pip install 'beststag[remote]'",
            )
        ]
    out = []
    for url, what in urls:
        shown = _scrub(url, settings)
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
        )
        try:
            client.ping()
            out.append(_ok("redis", f"{shown} answers"))
        except Exception as e:  # redis-py raises many kinds (connection, auth, TLS, response): all one line
            text = " ".join(str(e).split())[:200]
            out.append(
                _fail(
                    "redis",
                    f"{shown} ({what}): {type(e).__name__}: {_scrub(text, settings)}",
                    "start Redis or fix the URL (host, port, password) in BESTSTAG_REDIS_URL",
                )
            )
        finally:
            client.close()
    return out


def check_s3(settings: Settings) -> Check:
    """``backup.remote``'s bucket answers (HEAD bucket, one attempt, a short connect timeout)."""
    if not settings.backup.remote:
        return _skip("s3", "not configured (backup.remote)")
    from .backup.remote import S3Remote

    try:
        remote = S3Remote(settings, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=CONNECT_TIMEOUT_S * 2, attempts=1)
        with remote.guard("HEAD bucket"):
            remote.client.head_bucket(Bucket=remote.bucket)
    except BestStagError as e:
        text = " ".join(e.message.split())
        return _fail(
            "s3",
            _scrub(text, settings)[:300],
            e.hint or "check backup.remote, backup.remote_endpoint_url and the AWS credentials",
        )
    return _ok("s3", f"{settings.backup.remote} reachable")


# --------------------------------------------------------------------------------------------
# running


def run_checks(settings: Settings, gateway: Callable[[], Any] | None) -> list[Check]:
    """Every check, local ones first; ``gateway`` (a factory) None means offline: network checks skipped."""
    checks = [
        check_config(settings),
        check_token(settings),
        check_data_dir(settings),
        check_modes(settings),
        check_journal(settings),
        check_cache(settings),
        check_backups(settings),
        check_locks(settings),
        check_feed(settings),
        check_timezone(),
        check_prometheus(settings),
        check_versions(),
    ]
    if gateway is None:
        why = "skipped: --offline"
        return [
            *checks,
            _skip("base", why),
            _skip("tables", why),
            _skip("clock", why),
            *([_skip("redis", why)] if _redis_urls(settings) else []),
            *([_skip("s3", why)] if settings.backup.remote else []),
        ]
    try:
        gw = gateway()
        answer = check_base(settings, gw)
    except BestStagError as e:
        gw = None
        answer = BaseAnswer(_fail("base", _scrub(e.message, settings), e.hint), None, None, None)
    checks += [answer.check, check_tables(settings, answer.schema), check_clock(settings, gw, answer)]
    return [*checks, *check_redis(settings), check_s3(settings)]


def repair_journal(settings: Settings, gateway: Any) -> str:
    """Move the damaged journal aside inside the data dir and start a fresh one; what was done."""
    from .journal import Journal, set_aside

    j = getattr(gateway, "_journal", None) if gateway is not None else None
    if j is not None:
        j.close()  # our own connections; the next use opens the fresh file
    dest = set_aside(settings.paths.journal)
    fresh = Journal(settings.paths.journal)
    fresh.query("SELECT 1")
    fresh.close()
    return f"moved the damaged journal to {dest} and started a fresh one" if dest else "no journal to repair"


def repair_cache(settings: Settings, gateway: Any) -> str:
    """Open the cache now: damaged files are moved aside (cache/store.corrupt-*) and the store rebuilt."""
    from .cache.store import repair

    done = repair(settings)
    return "cache: " + ("; ".join(done) if done else "rebuilt")


#: check name -> repair for `doctor --repair` (run for failed checks only, in the order of the checks)
REPAIRS: dict[str, Callable[[Settings, Any], str]] = {"journal": repair_journal, "cache": repair_cache}


def run_repairs(settings: Settings, gateway: Any, checks: list[Check]) -> list[str]:
    """Run the repair of every failed check that has one; one line per repair done."""
    return [REPAIRS[c.name](settings, gateway) for c in checks if not c.ok and c.name in REPAIRS]
