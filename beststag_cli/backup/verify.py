"""Checking a backup: checksums, every line parses, counts match the manifest, schema and attachments present.

`verify_dir` is what `backup verify` runs and what every run does to itself before its folder is
renamed into place. It stops at the first problem and raises :class:`BackupBroken`, whose message
names the broken file, so an operator knows what to look at.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli.errors import BackupBroken, BadInput, Interrupted, OperationFailed, UnsafePath
from beststag_cli.progress import Reporter, Task, guard

from .chain import backup_index, table_chain
from .layout import (
    ATTACHMENTS,
    MANIFEST,
    OK,
    SCHEMA,
    SHA256_RE,
    BackupInfo,
    BlobStore,
    Manifest,
    TableEntry,
    iter_lines,
    open_read,
    read_bytes,
    read_manifest,
    safe_rel,
    sha256_file,
)

if TYPE_CHECKING:
    pass


def table_files(backup_id: str, name: str, t: TableEntry) -> Iterator[tuple[str, str | None, int, int, bool]]:
    """A table's files named in its manifest — (checked path, sha256, bytes, lines, holds records) —
    for the record file and the id list, each path checked before it is joined to a directory."""
    for rel, sha, size, lines, records in (
        (t.file, t.sha256, t.bytes, t.records, True),
        (t.ids_file, t.ids_sha256, t.ids_bytes, t.ids, False),
    ):
        if rel is None:
            continue
        try:
            checked = safe_rel(rel)
        except BadInput:
            raise BackupBroken(backup_id, MANIFEST, f"table {name}: bad file name {rel!r}") from None
        yield checked, sha, size, lines, records


#: lines read between two progress updates (one call a line would cost more than the check)
_ADVANCE_EVERY = 500


@dataclass
class VerifyReport:
    id: str
    tables: int = 0
    records: int = 0
    files: int = 0
    attachments: int = 0
    bytes_checked: int = 0
    checked_blobs: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ok": True,
            "tables": self.tables,
            "records": self.records,
            "files": self.files,
            "attachments": self.attachments,
            "bytes_checked": self.bytes_checked,
        }


def _check_file(
    backup_id: str, directory: Path, rel: str, sha: str | None, size: int | None, report: VerifyReport
) -> Path:
    path = directory / rel
    try:
        n, digest = sha256_file(path)  # never through a symlink inside the data dir (UnsafePath)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise BackupBroken(backup_id, rel, "missing") from None
    except UnsafePath:
        raise
    except OSError as e:
        raise BackupBroken(backup_id, rel, f"cannot be read ({e.strerror})") from None
    report.files += 1
    report.bytes_checked += n
    if size is not None and n != size:
        raise BackupBroken(backup_id, rel, f"size {n} bytes, manifest says {size} (truncated?)")
    if sha is not None and digest != sha:
        raise BackupBroken(backup_id, rel, "sha256 does not match the manifest (the file was altered)")
    return path


def _count_lines(backup_id: str, path: Path, rel: str, records: bool, task: Task | None = None) -> int:
    n = 0
    try:
        for line in iter_lines(path):
            n += 1
            if task is not None and n % _ADVANCE_EVERY == 0:
                task.advance(_ADVANCE_EVERY)
            if records:
                obj = json.loads(line)
                if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "fields" not in obj:
                    raise BackupBroken(backup_id, rel, f"line {n} is not a record")
            elif not line.startswith("rec"):
                raise BackupBroken(backup_id, rel, f"line {n} is not a record id")
    except (BackupBroken, Interrupted, UnsafePath):
        raise
    except (OSError, EOFError, zlib.error, ValueError, UnicodeDecodeError) as e:
        raise BackupBroken(backup_id, rel, f"unreadable after line {n}: {type(e).__name__}: {e}") from None
    except Exception as e:  # zstandard raises its own ZstdError
        raise BackupBroken(backup_id, rel, f"unreadable after line {n}: {type(e).__name__}: {e}") from None
    if task is not None:
        task.advance(n % _ADVANCE_EVERY)
    return n


def verify_dir(
    directory: Path,
    *,
    store: BlobStore,
    expected_id: str | None = None,
    hash_blobs: bool = True,
    checked_blobs: set[str] | None = None,
    progress: Reporter | None = None,
) -> VerifyReport:
    """Verify one backup folder (finished or still under ``.partial/``).

    :param hash_blobs: re-hash attachment files (False: check they exist with the right size).
    :param checked_blobs: sha256s already hashed in this session (``verify --all`` shares it).
    :param progress: records read and attachment bytes hashed (totals from this backup's manifest).
    :raises BackupBroken: naming the first broken file.
    """
    progress = guard(progress)
    label = expected_id or directory.name
    try:
        m: Manifest = read_manifest(directory)
    except FileNotFoundError:
        raise BackupBroken(label, MANIFEST, "missing") from None
    except (Interrupted, UnsafePath):
        raise
    except Exception as e:
        raise BackupBroken(label, MANIFEST, f"unreadable: {type(e).__name__}: {e}") from None
    if expected_id is not None and m.id != expected_id:
        raise BackupBroken(label, MANIFEST, f"names backup {m.id!r}, not {expected_id!r}")
    bid = m.id
    report = VerifyReport(bid, checked_blobs=checked_blobs if checked_blobs is not None else set())

    schema_path = _check_file(bid, directory, SCHEMA, m.schema_sha256, m.schema_bytes or None, report)
    try:
        schema = json.loads(read_bytes(schema_path).decode("utf-8"))
        schema_tables = {t["id"] for t in schema["tables"]}
    except (Interrupted, UnsafePath):
        raise
    except Exception as e:
        raise BackupBroken(bid, SCHEMA, f"not a base schema: {e}") from None

    task = progress.task(f"verify {bid}", total=sum(t.records for t in m.tables.values() if t.status == OK))
    try:
        for name, t in m.tables.items():
            if t.status != OK:
                continue
            if t.table_id not in schema_tables:
                raise BackupBroken(bid, SCHEMA, f"has no table {t.table_id} ({name})")
            for rel, sha, size, count, records in table_files(bid, name, t):
                path = _check_file(bid, directory, rel, sha, size, report)
                lines = _count_lines(bid, path, rel, records, task if records else None)
                if lines != count:
                    raise BackupBroken(bid, rel, f"{lines} lines, manifest says {count}")
                if records:
                    report.records += lines
            report.tables += 1
    except BackupBroken as e:
        task.failed(f"{e.file}: {e.problem}")
        raise
    task.done(f"{report.records:,} records")

    att_path = directory / ATTACHMENTS
    if m.attachments_sha256 is not None or att_path.exists():
        _check_file(bid, directory, ATTACHMENTS, m.attachments_sha256, None, report)
        try:
            items = [json.loads(x) for x in read_bytes(att_path).decode("utf-8").splitlines() if x.strip()]
        except ValueError as e:
            raise BackupBroken(bid, ATTACHMENTS, f"a line does not parse: {e}") from None
        if len(items) != m.attachments_count:
            raise BackupBroken(bid, ATTACHMENTS, f"{len(items)} entries, manifest says {m.attachments_count}")
        files = progress.task(f"verify {bid} attachments", total=len(items), unit="files")
        for n, a in enumerate(items, 1):
            if not isinstance(a, dict):
                raise BackupBroken(bid, ATTACHMENTS, f"line {n} is not an attachment entry")
            sha = a.get("sha256")
            if not isinstance(sha, str) or not SHA256_RE.match(sha):
                raise BackupBroken(
                    bid,
                    ATTACHMENTS,
                    f"attachment {a.get('id')!r:.80}: sha256: expected a sha256 (64 hex), got {sha!r:.80}",
                )
            listed_size = a.get("size")
            if isinstance(listed_size, bool) or not isinstance(listed_size, int) or listed_size < 0:
                raise BackupBroken(
                    bid,
                    ATTACHMENTS,
                    f"attachment {a.get('id')!r:.80}: size: expected a count (integer >= 0), got {listed_size!r:.80}",
                )
            hashed = report.bytes_checked
            _check_blob(bid, store, sha, listed_size, str(a.get("id")), hash_blobs, report)
            files.advance(1, bytes=report.bytes_checked - hashed)
            report.attachments += 1
        files.done()
    return report


def _check_blob(
    bid: str, store: BlobStore, sha: str, size: int, att_id: str, hash_blobs: bool, report: VerifyReport
) -> None:
    path = store.path(sha)
    rel = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
    what = f"{rel} (attachment {att_id})"
    try:
        f = open_read(path)  # never through a symlink inside the data dir (UnsafePath)
    except (FileNotFoundError, NotADirectoryError):
        raise BackupBroken(bid, what, "missing") from None
    with f:
        st = os.fstat(f.fileno())
        if size >= 0 and st.st_size != size:
            raise BackupBroken(bid, what, f"size {st.st_size} bytes, expected {size}")
        if not hash_blobs or sha in report.checked_blobs:
            return
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    report.bytes_checked += st.st_size
    if h.hexdigest() != sha:
        raise BackupBroken(bid, what, "content does not match its sha256")
    report.checked_blobs.add(sha)


def verify_backup(
    info: BackupInfo,
    store: BlobStore,
    checked_blobs: set[str] | None = None,
    index: dict[str, BackupInfo] | None = None,
    progress: Reporter | None = None,
) -> VerifyReport:
    """Verify a listed backup (see :func:`verify_dir`) and, like a restore, that every good table's
    chain of incrementals reaches a full copy through backups that are still there and readable.

    :param index: the listed backups by id (default: listed from the backup's folder).
    """
    if info.manifest is None:
        raise BackupBroken(info.id, MANIFEST, info.problem or "unreadable")
    report = verify_dir(info.path, store=store, expected_id=info.id, checked_blobs=checked_blobs, progress=progress)
    check_chains(info, index if index is not None else backup_index(info.path.parent.parent))
    return report


def check_chains(info: BackupInfo, index: dict[str, BackupInfo]) -> None:
    """Raise :class:`BackupBroken` when a good table of ``info`` could not be restored: the same
    :func:`chain.table_chain` a restore follows, over the listed backups (broken ones included)."""
    assert info.manifest is not None
    for name in info.manifest.ok_tables():
        try:
            table_chain(info, name, index)
        except OperationFailed as e:
            raise BackupBroken(info.id, MANIFEST, f"table {name}: {e.message}") from None
