"""On-disk layout of backups: ids, directories, manifests, compressed JSONL and the attachment store.

```
<backups>/<type>/<YYYY-MM-DDTHH-MM-SSZ>/   one finished backup (only ever created by a rename)
    manifest.json                        id, type, status, base, times, parent, per-table entries
    schema.json                          the base schema from the metadata API
    attachments.jsonl                    {"id": att..., "sha256", "size", "filename", "type"} a line
    tables/<slug>-<tableid>.jsonl.gz     one record a line, as Airtable returned it (+ "sha256" on
                                         each attachment object)
    tables/<slug>-<tableid>.ids.gz       incremental only: every record id of the table at that time
<backups>/attachments/<aa>/<sha256>      content-addressed files shared by every backup
<backups>/.partial/<type>-<ts>-<pid>/    a run in progress (never listed); renamed into place at the end
```

A backup id is ``<type>/<timestamp>`` (``complete/2026-11-25T22-03-45Z``). Every id and file name
that comes from a user or a manifest is checked against a strict pattern before it touches a
path, so ``../`` can never escape the backups folder.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, cast

from beststag_cli.errors import BadInput, NotFound, UnsafePath
from beststag_cli.fsutil import (
    FILE_MODE,
    atomic_write,
    check_safe_path,
    ensure_private_dir,
    private_open,
    private_root,
)
from beststag_cli.names import did_you_mean, fold
from beststag_cli.paths import BACKUP_TYPES

FORMAT_VERSION = 1
TS_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
_TS_RE = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z"
BACKUP_ID_RE = re.compile(rf"^({'|'.join(BACKUP_TYPES)})/({_TS_RE})$")
BARE_TS_RE = re.compile(rf"^{_TS_RE}$")
_REL_FILE_RE = re.compile(r"^tables/[a-z0-9-]{1,60}-tbl[A-Za-z0-9]{14}\.(jsonl|ids)\.(gz|zst)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

MANIFEST = "manifest.json"
SCHEMA = "schema.json"
ATTACHMENTS = "attachments.jsonl"
RUN_INFO = "run.json"
PARTIAL_DIR = ".partial"
STORE_DIR = "attachments"

# statuses of a backup (manifest) and of a table inside it
OK = "ok"
PARTIAL = "partial"
FAILED = "failed"
BROKEN = "broken"  # listed, but its manifest cannot be read


# --------------------------------------------------------------------------------------------
# ids and names


def format_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    """Airtable's instant format (millisecond precision, Z)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def check_backup_id(backup_id: str) -> tuple[str, str]:
    """(type, timestamp) of a well-formed id; BadInput for anything else (``../`` included)."""
    m = BACKUP_ID_RE.match(backup_id)
    if not m:
        raise BadInput(
            f"{backup_id!r} is not a backup id (expected TYPE/YYYY-MM-DDTHH-MM-SSZ, "
            "e.g. complete/2026-01-31T02-00-00Z)",
            hint="`beststag backup list` shows the ids",
        )
    return m.group(1), m.group(2)


def slug(name: str) -> str:
    """A file-name-safe form of a table name: `Memória Contextual` → `memoria-contextual`."""
    s = re.sub(r"[^a-z0-9]+", "-", fold(name)).strip("-")
    return s[:40].rstrip("-") or "table"


def table_file(name: str, table_id: str, kind: str, compression: str) -> str:
    """Relative path of a table's record file (kind ``jsonl``) or id list (kind ``ids``)."""
    ext = "zst" if compression == "zstd" else "gz"
    return f"tables/{slug(name)}-{table_id}.{kind}.{ext}"


def safe_rel(path_text: str) -> str:
    """A table file path read from a manifest, checked before it is joined to a directory."""
    if not _REL_FILE_RE.match(path_text):
        raise BadInput(f"manifest names an unexpected file {path_text!r}")
    return path_text


# --------------------------------------------------------------------------------------------
# manifest

_TABLE_ID_RE = re.compile(r"^tbl[A-Za-z0-9]{14}$")
_WEBHOOK_ID_RE = re.compile(r"^ach[A-Za-z0-9]{14}$")


class ManifestError(ValueError):
    """A manifest that is not what beststag writes: a missing key, a null or a value of the wrong type."""


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Fields:
    """Typed reads of one JSON object of a manifest; every wrong value is a :class:`ManifestError`."""

    def __init__(self, d: dict[str, Any], where: str) -> None:
        self.d = d
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        if key not in self.d:
            raise ManifestError(f"{self._name(key)}: missing")
        value = self.opt_text(key, pattern=pattern)
        if value is None:
            raise ManifestError(f"{self._name(key)}: expected a string, got null")
        return value

    def opt_text(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.d.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ManifestError(f"{self._name(key)}: expected a string or null, got {_kind(value)}")
        if pattern is not None and not pattern.match(value):
            raise ManifestError(f"{self._name(key)}: {value[:80]!r} is malformed")
        return value

    def choice(self, key: str, allowed: Iterable[str], default: str | None = None) -> str:
        allowed = tuple(allowed)
        value = self.d.get(key, default)
        if not isinstance(value, str) or value not in allowed:
            raise ManifestError(f"{self._name(key)}: expected one of {', '.join(allowed)}, got {value!r:.80}")
        return value

    def count(self, key: str, default: int = 0) -> int:
        value = self.d.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ManifestError(f"{self._name(key)}: expected a count (integer >= 0), got {value!r:.80}")
        return value

    def instant(self, key: str) -> str:
        value = self.text(key)
        self._check_instant(key, value)
        return value

    def opt_instant(self, key: str) -> str | None:
        value = self.opt_text(key)
        if value is not None:
            self._check_instant(key, value)
        return value

    def _check_instant(self, key: str, value: str) -> None:
        try:
            parse_iso(value)
        except (ValueError, OverflowError):
            raise ManifestError(f"{self._name(key)}: {value[:80]!r} is not a time") from None

    def opt_backup_id(self, key: str) -> str | None:
        value = self.opt_text(key)
        if value is not None and not BACKUP_ID_RE.match(value):
            raise ManifestError(f"{self._name(key)}: {value[:80]!r} is not a backup id")
        return value

    def obj(self, key: str) -> dict[str, Any]:
        value = self.d.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ManifestError(f"{self._name(key)}: expected an object, got {_kind(value)}")
        return value

    def req_obj(self, key: str) -> dict[str, Any]:
        """An object that must be there (null and missing are errors)."""
        if key not in self.d:
            raise ManifestError(f"{self._name(key)}: missing")
        if self.d[key] is None:
            raise ManifestError(f"{self._name(key)}: expected an object, got null")
        return self.obj(key)

    def strict_count(self, key: str) -> int:
        """A count that, when present, is an integer >= 0 (null is an error too)."""
        if key in self.d and self.d[key] is None:
            raise ManifestError(f"{self._name(key)}: expected a count (integer >= 0), got null")
        return self.count(key)

    def sha256(self, key: str) -> str:
        """The 64-hex sha256 of a file the manifest names: required, so a null never turns a check off."""
        if key not in self.d:
            raise ManifestError(f"{self._name(key)}: missing (every file needs its sha256)")
        if self.d[key] is None:
            raise ManifestError(f"{self._name(key)}: expected a sha256 (64 hex), got null")
        value = self.d[key]
        if not isinstance(value, str) or not SHA256_RE.match(value):
            raise ManifestError(f"{self._name(key)}: expected a sha256 (64 hex), got {value!r:.80}")
        return value


@dataclass
class TableEntry:
    """One table inside a backup."""

    name: str
    table_id: str
    status: str = OK
    #: full: every record; incremental: records changed since `since`, plus the id list
    mode: str = "full"
    file: str | None = None
    records: int = 0
    bytes: int = 0
    sha256: str | None = None
    ids_file: str | None = None
    ids: int = 0
    ids_bytes: int = 0
    ids_sha256: str | None = None
    #: when listing this table started (an incremental built on this one starts from here)
    as_of: str | None = None
    since: str | None = None
    parent: str | None = None
    attachments: int = 0
    error: str | None = None
    #: the change feed's position before this table was read (webhook id, payload cursor): an incremental
    #: on top of this entry reads the feed's record log from there (beststag_cli/feed/since.py)
    feed_webhook: str | None = None
    feed_cursor: int = 0
    #: how an incremental learnt what changed: "feed" (the record log) or "listing" (every id, and a
    #: LAST_MODIFIED_TIME() filter); `fallback` says why the feed was not used
    changes: str = "listing"
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["id"] = d.pop("table_id")
        d.pop("name")
        return d

    @classmethod
    def from_dict(cls, name: str, d: Any) -> TableEntry:
        """Parse and type-check one table entry; :class:`ManifestError` names the first wrong value."""
        where = f"tables.{name}"
        if not isinstance(d, dict):
            raise ManifestError(f"{where}: expected an object, got {_kind(d)}")
        v = _Fields(d, where)
        file = v.opt_text("file")
        ids_file = v.opt_text("ids_file")
        e = cls(
            name=name,
            table_id=v.text("id", pattern=_TABLE_ID_RE),
            status=v.choice("status", (OK, FAILED), OK),
            mode=v.choice("mode", ("full", "incremental"), "full"),
            file=file,
            records=v.strict_count("records"),
            bytes=v.strict_count("bytes"),
            sha256=v.sha256("sha256") if file is not None else v.opt_text("sha256", pattern=SHA256_RE),
            ids_file=ids_file,
            ids=v.strict_count("ids"),
            ids_bytes=v.strict_count("ids_bytes"),
            ids_sha256=(
                v.sha256("ids_sha256") if ids_file is not None else v.opt_text("ids_sha256", pattern=SHA256_RE)
            ),
            as_of=v.opt_instant("as_of"),
            since=v.opt_instant("since"),
            parent=v.opt_backup_id("parent"),
            attachments=v.count("attachments"),
            error=v.opt_text("error"),
            feed_webhook=v.opt_text("feed_webhook", pattern=_WEBHOOK_ID_RE),
            feed_cursor=v.count("feed_cursor"),
            changes=v.choice("changes", ("listing", "feed"), "listing"),
            fallback=v.opt_text("fallback"),
        )
        if e.status == OK:  # what a restore needs from a good table (verify checks the files themselves)
            if e.file is None:
                raise ManifestError(f"{where}.file: a good table names no record file")
            if e.mode == "incremental" and (e.ids_file is None or e.parent is None or e.since is None):
                raise ManifestError(f"{where}: an incremental table needs ids_file, parent and since")
        return e


@dataclass
class Manifest:
    id: str
    type: str
    base: str
    started: str
    status: str = OK
    finished: str | None = None
    duration_s: float | None = None
    parent: str | None = None
    compression: str = "gzip"
    schema_sha256: str | None = None
    schema_bytes: int = 0
    attachments_sha256: str | None = None
    attachments_count: int = 0
    attachments_bytes: int = 0
    tables: dict[str, TableEntry] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    @property
    def records(self) -> int:
        return sum(t.records for t in self.tables.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes + t.ids_bytes for t in self.tables.values()) + self.schema_bytes

    @property
    def timestamp(self) -> datetime:
        return parse_ts(self.id.split("/", 1)[1])

    def ok_tables(self) -> list[str]:
        return [n for n, t in self.tables.items() if t.status == OK]

    def parents(self) -> set[str]:
        """Every backup this one needs to be restored (the per-table parents)."""
        return {t.parent for t in self.tables.values() if t.parent and t.status == OK}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "base": self.base,
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "parent": self.parent,
            "compression": self.compression,
            "records": self.records,
            "bytes": self.bytes,
            "schema": {"file": SCHEMA, "sha256": self.schema_sha256, "bytes": self.schema_bytes},
            "attachments": {
                "file": ATTACHMENTS,
                "sha256": self.attachments_sha256,
                "count": self.attachments_count,
                "bytes": self.attachments_bytes,
            },
            "tables": {n: t.to_dict() for n, t in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Parse and type-check a manifest; :class:`ManifestError` (a ValueError) names the first wrong value."""
        if not isinstance(d, dict):
            raise ManifestError(f"expected a JSON object, got {_kind(d)}")
        v = _Fields(d, "")
        bid = v.text("id")
        if not BACKUP_ID_RE.match(bid):
            raise ManifestError(f"id: {bid[:80]!r} is not a backup id")
        btype = v.choice("type", BACKUP_TYPES)
        if bid.split("/", 1)[0] != btype:
            raise ManifestError(f"type: {btype!r} does not match the id {bid!r}")
        v.strict_count("records")
        v.strict_count("bytes")
        schema = _Fields(v.req_obj("schema"), "schema")
        att = _Fields(v.req_obj("attachments"), "attachments")
        fmt = v.count("format", FORMAT_VERSION)
        if fmt > FORMAT_VERSION:
            raise ManifestError(f"format: {fmt} is newer than this version of beststag reads ({FORMAT_VERSION})")
        duration = d.get("duration_s")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)):
            raise ManifestError(f"duration_s: expected a number or null, got {_kind(duration)}")
        m = cls(
            id=bid,
            type=btype,
            base=v.text("base"),
            started=v.instant("started"),
            status=v.choice("status", (OK, PARTIAL), OK),
            finished=v.opt_instant("finished"),
            duration_s=duration,
            parent=v.opt_backup_id("parent"),
            compression=v.choice("compression", ("gzip", "zstd"), "gzip"),
            schema_sha256=schema.sha256("sha256"),
            schema_bytes=schema.strict_count("bytes"),
            attachments_sha256=att.sha256("sha256"),
            attachments_count=att.strict_count("count"),
            attachments_bytes=att.strict_count("bytes"),
            format=fmt,
        )
        tables = v.obj("tables")
        m.tables = {n: TableEntry.from_dict(n, t) for n, t in tables.items()}
        return m

    def summary(self, path: Path | None = None) -> dict[str, Any]:
        """The `--json` shape of `backup run`, `show` and `list` (docs/cli.md; tests/backup pin its keys)."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "path": str(path) if path is not None else None,
            "base": self.base,
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "parent": self.parent,
            "records": self.records,
            "bytes": self.bytes,
            "attachments": {"count": self.attachments_count, "bytes": self.attachments_bytes},
            "tables": {
                n: {
                    "records": t.records,
                    "bytes": t.bytes + t.ids_bytes,
                    "status": t.status,
                    "mode": t.mode,
                    **({"error": t.error} if t.error else {}),
                }
                for n, t in self.tables.items()
            },
        }
        return out


def write_manifest(directory: Path, manifest: Manifest) -> None:
    atomic_write(directory / MANIFEST, json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2) + "\n")


def open_read(path: str | Path) -> IO[bytes]:
    """Open a backup file for reading. Inside the data dir, never through a symlink (at the file or a
    folder above it) and only a regular file: :class:`UnsafePath` otherwise. Outside, as ``open``."""
    p = check_safe_path(path)
    root = private_root(p, outermost=True)
    if root is None:
        return open(p, "rb")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(p):
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            raise UnsafePath(
                f"{p} is a symlink (to {target}); beststag does not follow links inside its data dir {root}"
            ) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{p} is not a regular file; beststag only reads regular files in its data dir")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path) -> bytes:
    """The content of a backup file, read as :func:`open_read` opens it."""
    with open_read(path) as f:
        return f.read()


def read_manifest(directory: Path) -> Manifest:
    """Parse ``manifest.json``; ValueError/OSError/KeyError when it is missing or malformed,
    :class:`UnsafePath` when it (or the backup folder) is a symlink inside the data dir."""
    raw = read_bytes(directory / MANIFEST)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ManifestError(f"not JSON: {str(e)[:120]}") from None
    return Manifest.from_dict(data)


# --------------------------------------------------------------------------------------------
# the backups folder


@dataclass
class BackupInfo:
    """A finished backup as found on disk."""

    id: str
    type: str
    path: Path
    manifest: Manifest | None
    problem: str | None = None

    @property
    def status(self) -> str:
        return self.manifest.status if self.manifest is not None else BROKEN

    @property
    def timestamp(self) -> datetime:
        return parse_ts(self.id.split("/", 1)[1])

    @property
    def good(self) -> bool:
        return self.manifest is not None and self.manifest.status in (OK, PARTIAL)

    @property
    def base(self) -> str | None:
        """The base it is a backup of (None when its manifest cannot be read)."""
        return self.manifest.base if self.manifest is not None else None

    def summary(self) -> dict[str, Any]:
        if self.manifest is not None:
            return self.manifest.summary(self.path)
        return {
            "id": self.id,
            "type": self.type,
            "status": BROKEN,
            "path": str(self.path),
            "records": 0,
            "bytes": 0,
            "tables": {},
            "error": self.problem,
        }


def list_backups(root: Path, *, types: Iterable[str] = BACKUP_TYPES) -> list[BackupInfo]:
    """Finished backups under ``root``, oldest first. ``.partial/`` is never looked at."""
    out: list[BackupInfo] = []
    for btype in types:
        tdir = root / btype
        if not tdir.is_dir():
            continue
        for entry in os.scandir(tdir):
            if not BARE_TS_RE.match(entry.name):
                continue
            bid = f"{btype}/{entry.name}"
            path = Path(entry.path)
            if entry.is_symlink():  # listed, never followed
                out.append(
                    BackupInfo(bid, btype, path, None, "symlink: beststag does not follow links inside its data dir")
                )
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                m = read_manifest(path)
                if m.id != bid:
                    raise ValueError(f"manifest id {m.id!r} does not match its folder")
                out.append(BackupInfo(bid, btype, path, m))
            except (OSError, ValueError, KeyError, TypeError, BadInput) as e:
                out.append(BackupInfo(bid, btype, path, None, f"{MANIFEST}: {e}"))
    out.sort(key=lambda b: (b.timestamp, b.type))
    return out


LATEST = "latest"
#: the types a bare ``latest`` may name for a restore: each holds every table of the base (critical
#: holds a few), so restoring "the latest" brings the whole base back, never two tables of it
WHOLE_BASE_TYPES = ("complete", "incremental")


class _Listed(Protocol):
    """What the resolver needs of a listed backup (a local :class:`BackupInfo` or a remote one)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...


class _ListedWithBase(_Listed, Protocol):
    """A listed backup that also says its type and base (what a restore's bare ``latest`` filters on)."""

    @property
    def type(self) -> str: ...

    @property
    def base(self) -> str | None: ...


def resolve_backup_id(spec: str, listing: Callable[[], Sequence[_Listed]], where: str) -> str:
    """The ``TYPE/TIMESTAMP`` id that ``spec`` names, for every command that takes a backup id.

    ``spec`` is an id, a bare timestamp (when only one type has it), ``latest`` (the newest backup
    of any type that finished ok) or ``TYPE/latest`` (the newest of that type), as restic's
    ``latest``. Partial and broken backups are never "latest": restoring one would bring back
    less than the operator expects. ``listing`` (oldest first) is only called when needed, so
    a plain id costs no scan. A well-formed ``TYPE/TIMESTAMP`` is returned as given: the caller
    checks that it exists (:func:`not_found` says so with a did-you-mean). A restore resolves
    through :func:`resolve_restore_id`.
    """
    btype, _, rest = spec.rpartition("/")
    if rest == LATEST and (not btype or btype in BACKUP_TYPES):
        listed = [b for b in listing() if not btype or b.id.startswith(btype + "/")]
        good = [b for b in listed if b.status == OK]
        if good:
            return good[-1].id
        what = f"{btype} backup" if btype else "backup"
        skipped = f" ({len(listed)} partial or broken one(s) skipped)" if listed else ""
        raise NotFound(
            f"no {what} that finished ok yet in {where}{skipped}",
            hint=f"`beststag backup run --type {btype or 'complete'}` makes one",
        )
    if rest == LATEST:
        raise BadInput(
            f"unknown backup type {btype!r} in {spec!r}"
            f"{did_you_mean(btype, BACKUP_TYPES)} (expected one of {', '.join(BACKUP_TYPES)})",
            hint=f"e.g. {BACKUP_TYPES[0]}/{LATEST}",
        )
    if BARE_TS_RE.match(spec):
        hits = [b for b in listing() if b.id.endswith("/" + spec)]
        if len(hits) == 1:
            return hits[0].id
        if len(hits) > 1:
            raise BadInput(
                f"{spec} names {len(hits)} backups: {', '.join(b.id for b in hits)}",
                hint="give the id with its type, e.g. " + hits[0].id,
            )
        raise not_found(spec, listing(), where)
    if not BACKUP_ID_RE.match(spec):
        known = [b.id for b in listing()]
        suggestion = did_you_mean(spec, [*known, LATEST, *(f"{t}/{LATEST}" for t in BACKUP_TYPES)])
        raise BadInput(
            f"{spec!r} is not a backup id{suggestion} (expected TYPE/YYYY-MM-DDTHH-MM-SSZ, a bare "
            f"timestamp, {LATEST} or TYPE/{LATEST})",
            hint="`beststag backup list` shows the ids",
        )
    return spec


def resolve_restore_id(spec: str, listing: Callable[[], Sequence[_ListedWithBase]], where: str, base: str) -> str:
    """What ``spec`` names for a restore of ``base`` (the configured base): as :func:`resolve_backup_id`,
    except that a bare ``latest`` is the newest complete or incremental backup *of that base* that
    finished ok. restic filters ``latest`` by host and path; here the base plays the host, and the
    type must hold the whole base, so a restore of ``latest`` never brings back a critical backup's
    two tables, nor another base's data. ``critical/latest`` still names the newest critical one.
    """
    if spec != LATEST:
        return resolve_backup_id(spec, listing, where)
    # a broken backup's base is unknown (None): it is counted among the skipped ones, never picked
    listed = [b for b in listing() if b.type in WHOLE_BASE_TYPES and b.base in (base, None)]
    good = [b for b in listed if b.status == OK]
    if good:
        return good[-1].id
    skipped = f" ({len(listed)} partial or broken one(s) skipped)" if listed else ""
    raise NotFound(
        f"no complete or incremental backup of base {base} that finished ok yet in {where}{skipped}",
        hint="`beststag backup run --type complete` makes one; `critical/latest` names the newest critical backup",
    )


def not_found(spec: str, listed: Sequence[_Listed], where: str) -> NotFound:
    """The error for an id that names no backup, with the closest one that exists."""
    return NotFound(
        f"no backup {spec} in {where}{did_you_mean(spec, [b.id for b in listed])}",
        hint="`beststag backup list` shows the ids",
    )


def find_backup(root: Path, backup_id: str, *, restore_of: str | None = None) -> BackupInfo:
    """The backup that ``backup_id`` names (see :func:`resolve_backup_id`: an id, a bare timestamp,
    ``latest`` or ``TYPE/latest``; ``restore_of``: a restore's ``latest``, of that base)."""
    if restore_of is None:
        backup_id = resolve_backup_id(backup_id, lambda: list_backups(root), str(root))
    else:
        backup_id = resolve_restore_id(backup_id, lambda: list_backups(root), str(root), restore_of)
    btype, ts = check_backup_id(backup_id)
    path = check_safe_path(root / btype / ts)
    if not path.is_dir():
        raise not_found(backup_id, list_backups(root), str(root))
    try:
        return BackupInfo(backup_id, btype, path, read_manifest(path))
    except UnsafePath:
        raise
    except (OSError, ValueError, KeyError, TypeError, BadInput) as e:
        return BackupInfo(backup_id, btype, path, None, f"{MANIFEST}: {e}")


# --------------------------------------------------------------------------------------------
# compressed JSONL


class _HashingSink(io.RawIOBase):
    """Counts and hashes the bytes written through it (the compressed bytes, as stored)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        self.f.write(data)
        return len(data)

    def flush(self) -> None:
        self.f.flush()


class LineWriter:
    """Streams lines into a compressed 0600 file, hashing the stored bytes as they are written."""

    def __init__(self, path: Path, compression: str = "gzip") -> None:
        self.path = path
        self.lines = 0
        self._raw = private_open(path, "wb")
        self._sink = _HashingSink(self._raw)
        self._z: Any
        if compression == "zstd":
            import zstandard

            # the compressor only calls write() and flush(), which the sink has
            self._z = zstandard.ZstdCompressor(level=3).stream_writer(cast("IO[bytes]", self._sink), closefd=False)
        else:
            # mtime=0 and no file name: the same records give the same bytes
            self._z = gzip.GzipFile(filename="", mode="wb", fileobj=self._sink, mtime=0, compresslevel=6)
        self._closed = False

    def write_line(self, text: str) -> None:
        self._z.write(text.encode("utf-8") + b"\n")
        self.lines += 1

    def write_json(self, obj: Any) -> None:
        self.write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True))

    def close(self) -> tuple[int, str]:
        """Finish, fsync and close; return (bytes stored, sha256 of them)."""
        if not self._closed:
            self._z.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._closed = True
        return self._sink.size, self._sink.sha.hexdigest()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".zst"):
        import zstandard

        raw = open_read(path)
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.TextIOWrapper(reader, encoding="utf-8")
    raw = open_read(path)
    gz = gzip.GzipFile(filename="", mode="rb", fileobj=raw)
    gz.myfileobj = raw  # type: ignore[assignment]  # GzipFile closes the file it owns (typeshed says FileIO)
    return io.TextIOWrapper(gz, encoding="utf-8")


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a compressed file (without their newline); raises on a corrupt stream."""
    with _open_text(path) as f:
        for line in f:
            yield line.rstrip("\n")


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    for line in iter_lines(path):
        yield json.loads(line)


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with open_read(path) as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
    return n, h.hexdigest()


# --------------------------------------------------------------------------------------------
# attachment store


class BlobStore:
    """Content-addressed files: ``<root>/attachments/<aa>/<sha256>``, written by temp + rename."""

    def __init__(self, backups_root: Path) -> None:
        self.root = backups_root / STORE_DIR
        self.tmp = self.root / ".tmp"

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise BadInput(f"{sha256!r} is not a sha256")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        try:
            st = self.path(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def read(self, sha256: str) -> bytes:
        """A blob's content, never read through a symlink inside the data dir."""
        return read_bytes(self.path(sha256))

    def touch(self, sha256: str) -> None:
        """Mark a blob as used now (cleanup spares recently used blobs; see cleanup.py)."""
        with contextlib.suppress(OSError):
            os.utime(self.path(sha256))

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a stream; return (sha256, size). An identical blob already stored is kept."""
        ensure_private_dir(self.tmp)
        tmp = self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
        h = hashlib.sha256()
        size = 0
        try:
            with private_open(tmp, "wb", parents=False) as f:
                for c in chunks:
                    if c:
                        h.update(c)
                        size += len(c)
                        f.write(c)
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            final = self.path(digest)
            if self.has(digest, size):
                tmp.unlink()
                self.touch(digest)
            else:
                ensure_private_dir(final.parent)
                os.replace(tmp, final)
            return digest, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def all(self) -> Iterator[tuple[str, Path]]:
        if not self.root.is_dir():
            return
        for sub in os.scandir(self.root):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in os.scandir(sub.path):
                if SHA256_RE.match(f.name):
                    yield f.name, Path(f.path)


def read_attachment_list(directory: Path) -> list[dict[str, Any]]:
    p = directory / ATTACHMENTS
    if not p.exists():
        return []
    text = read_bytes(p).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_json_file(path: Path, data: Any) -> tuple[int, str]:
    raw = (json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    atomic_write(path, raw)
    return len(raw), hashlib.sha256(raw).hexdigest()


def older_than(path: Path, age: timedelta, now: datetime) -> bool:
    try:
        return path.stat().st_mtime < (now - age).timestamp()
    except FileNotFoundError:
        return False


__all__ = [
    "ATTACHMENTS",
    "FILE_MODE",
    "LATEST",
    "MANIFEST",
    "SCHEMA",
    "BackupInfo",
    "BlobStore",
    "LineWriter",
    "Manifest",
    "TableEntry",
    "check_backup_id",
    "find_backup",
    "iter_records",
    "list_backups",
    "read_manifest",
    "resolve_backup_id",
    "resolve_restore_id",
    "slug",
    "table_file",
    "write_manifest",
]
