"""Off-site copies of backups in S3-compatible object storage (``backup.remote: s3://bucket/prefix``).

Layout in the bucket mirrors the local one (ids and file names are the same, so a remote backup
downloads into a folder that `verify_dir` and the restore read as they are)::

    <prefix>/<type>/<YYYY-MM-DDTHH-MM-SSZ>/schema.json, attachments.jsonl, tables/..., manifest.json
    <prefix>/attachments/<aa>/<sha256>        content-addressed, shared by every backup

- **Upload** happens after the backup verified locally (attachments re-hashed too): the attachment
  files it lists (skipped when the bucket already has that sha256 at that size), then every file
  of its folder, then ``manifest.json`` last. A remote backup is *listed* only through its
  manifest, so an upload cut halfway is never listed and the next upload completes it.
- **Verify** streams every object the manifest names (and every attachment file) and compares its
  size and sha256 with the manifest's; the first difference raises :class:`BackupBroken`.
- **Restore** downloads the backup and every backup it is built on (the per-table parents) into a
  private folder under ``.partial/``, verifies them like local ones, and hands that folder to the
  normal restore; the folder is removed afterwards (a killed restore's is collected by cleanup).
- **Cleanup** applies the same keep rules to the remote backups (deleting a backup deletes its
  manifest first) and removes attachment files no remaining remote backup lists, once unused for
  an hour.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, instance roles); ``backup.remote_endpoint_url`` points at a non-AWS store.
Every id and file name read from the bucket is checked before it becomes a local path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import clock
from beststag_cli.config import BACKUP_TYPES
from beststag_cli.errors import BadInput, BestStagError, NotFound, RemoteFailed
from beststag_cli.fsutil import ensure_private_dir
from beststag_cli.logs import log_event

from .layout import (
    ATTACHMENTS,
    BARE_TS_RE,
    MANIFEST,
    SCHEMA,
    SHA256_RE,
    STORE_DIR,
    BackupInfo,
    BlobStore,
    Manifest,
    check_backup_id,
    read_attachment_list,
    resolve_backup_id,
    resolve_restore_id,
    safe_rel,
)
from .verify import BackupBroken, VerifyReport, table_files

if TYPE_CHECKING:
    from beststag_cli.config import Settings

BLOB_GRACE = timedelta(hours=1)
_CHUNK = 1 << 20


def parse_remote(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (``bucket``, ``some/prefix/``); the prefix is empty or ends with /."""
    m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url.rstrip("/"))
    if not m:
        raise BadInput(f"backup.remote {url!r} is not an s3://bucket/prefix URL")
    prefix = (m.group(2) or "").strip("/")
    return m.group(1), (prefix + "/" if prefix else "")


@dataclass
class RemoteBackup:
    """A backup listed in the bucket (through its manifest)."""

    id: str
    type: str
    manifest: Manifest | None
    url: str
    problem: str | None = None

    @property
    def status(self) -> str:
        return self.manifest.status if self.manifest is not None else "broken"

    @property
    def good(self) -> bool:
        return self.manifest is not None and self.manifest.status in ("ok", "partial")

    @property
    def base(self) -> str | None:
        return self.manifest.base if self.manifest is not None else None

    def summary(self) -> dict[str, Any]:
        if self.manifest is not None:
            out = self.manifest.summary(None)
            out["path"] = self.url
            return out
        return {
            "id": self.id,
            "type": self.type,
            "status": "broken",
            "path": self.url,
            "records": 0,
            "bytes": 0,
            "tables": {},
            "error": self.problem,
        }


class S3Remote:
    """The bucket and prefix of ``backup.remote``, through boto3."""

    def __init__(
        self, settings: Settings, *, connect_timeout: float = 10, read_timeout: float = 60, attempts: int | None = None
    ) -> None:
        url = settings.backup.remote
        if not url:
            raise BadInput("no remote is configured", hint="set backup.remote: s3://bucket/prefix in the config")
        self.url = url
        self.bucket, self.prefix = parse_remote(url)
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise BadInput(
                "backup.remote needs boto3, which is not installed", hint="pip install 'beststag[remote]'"
            ) from None
        b = settings.backup
        region = b.remote_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        attempts = attempts or int(os.environ.get("AWS_MAX_ATTEMPTS") or 5)
        cfg = Config(
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": "path"} if b.remote_endpoint_url else None,
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=b.remote_endpoint_url, region_name=region, config=cfg
        )

    # ---------------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """boto3/botocore errors leave as RemoteFailed naming the remote and what was being done."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except NoCredentialsError:
            raise RemoteFailed(
                f"{what} on {self.url}: no credentials",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
            ) from None
        except ClientError as e:
            err = e.response.get("Error", {})
            raise RemoteFailed(
                f"{what} on {self.url}: {err.get('Code', '?')}: {err.get('Message', '')}"[:300]
            ) from None
        except BotoCoreError as e:
            raise RemoteFailed(f"{what} on {self.url}: {type(e).__name__}: {str(e)[:200]}") from None

    def key(self, rel: str) -> str:
        return self.prefix + rel

    def url_of(self, backup_id: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{backup_id}"

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _put(self, path: Path, key: str) -> int:
        self.client.upload_file(str(path), self.bucket, key)
        return path.stat().st_size

    def _get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _hash_object(self, key: str) -> tuple[int, str] | None:
        """(size, sha256) of an object, streamed; None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        h = hashlib.sha256()
        n = 0
        for chunk in body.iter_chunks(_CHUNK):
            h.update(chunk)
            n += len(chunk)
        return n, h.hexdigest()

    def _keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from (dict(o) for o in page.get("Contents", []))

    # ---------------------------------------------------------------- upload
    def upload(self, info: BackupInfo, store: BlobStore) -> dict[str, Any]:
        """Send one local backup: attachments, its files, ``manifest.json`` last. Idempotent."""
        if info.manifest is None:
            raise BadInput(f"backup {info.id} cannot be read ({info.problem}); it is not uploaded")
        files = 0
        sent = 0
        atts = 0
        with self.guard(f"uploading {info.id}"):
            for a in read_attachment_list(info.path):
                sha, size = str(a["sha256"]), int(a["size"])
                key = self.key(f"{STORE_DIR}/{sha[:2]}/{sha}")
                head = self._head(key)
                if head is not None and int(head.get("ContentLength", -1)) == size:
                    continue
                sent += self._put(store.path(sha), key)
                atts += 1
            rels = sorted(p.relative_to(info.path).as_posix() for p in info.path.rglob("*") if p.is_file())
            for rel in rels:
                if rel == MANIFEST:
                    continue
                if rel not in (SCHEMA, ATTACHMENTS):
                    try:
                        safe_rel(rel)
                    except BadInput:
                        log_event("backup.remote_skipped_file", _level=30, backup_id=info.id, file=rel)
                        continue
                sent += self._put(info.path / rel, self.key(f"{info.id}/{rel}"))
                files += 1
            sent += self._put(info.path / MANIFEST, self.key(f"{info.id}/{MANIFEST}"))
            files += 1
        out: dict[str, Any] = {
            "status": "uploaded",
            "url": self.url_of(info.id),
            "files": files,
            "attachments": atts,
            "bytes": sent,
        }
        log_event("backup.uploaded", backup_id=info.id, **out)
        return out

    # ---------------------------------------------------------------- listing
    def list_backups(self, types: tuple[str, ...] | list[str] = BACKUP_TYPES) -> list[RemoteBackup]:
        """Backups whose manifest is in the bucket, oldest first."""
        out: list[RemoteBackup] = []
        with self.guard("listing backups"):
            for btype in types:
                base = self.key(f"{btype}/")
                for obj in self._keys(base):
                    rest = obj["Key"][len(base) :]
                    parts = rest.split("/")
                    if len(parts) != 2 or parts[1] != MANIFEST or not BARE_TS_RE.match(parts[0]):
                        continue
                    out.append(self._read(f"{btype}/{parts[0]}"))
        out.sort(key=lambda b: (b.id.split("/", 1)[1], b.type))
        return out

    def _read(self, backup_id: str) -> RemoteBackup:
        btype, _ = check_backup_id(backup_id)
        url = self.url_of(backup_id)
        raw = self._get_bytes(self.key(f"{backup_id}/{MANIFEST}"))
        if raw is None:
            raise NotFound(f"no backup {backup_id} in {self.url}", hint="`beststag backup list --remote` shows them")
        try:
            m = Manifest.from_dict(json.loads(raw))
            if m.id != backup_id:
                raise ValueError(f"manifest id {m.id!r} does not match its key")
            return RemoteBackup(backup_id, btype, m, url)
        except (ValueError, KeyError, TypeError, BadInput) as e:
            return RemoteBackup(backup_id, btype, None, url, f"{MANIFEST}: {e}")

    def find(self, backup_id: str, *, restore_of: str | None = None) -> RemoteBackup:
        """The remote backup ``backup_id`` names: an id, a bare timestamp, ``latest`` or ``TYPE/latest``
        (``restore_of``: a restore's, whose bare ``latest`` is that base's newest whole-base backup)."""
        if restore_of is None:
            backup_id = resolve_backup_id(backup_id, self.list_backups, self.url)
        else:
            backup_id = resolve_restore_id(backup_id, self.list_backups, self.url, restore_of)
        with self.guard(f"reading {backup_id}"):
            return self._read(backup_id)

    # ---------------------------------------------------------------- verify
    def verify(self, backup_id: str, checked_blobs: set[str] | None = None) -> VerifyReport:
        """Stream every object of a remote backup and compare sizes and sha256s with its manifest."""
        rb = self.find(backup_id)
        bid = rb.id
        if rb.manifest is None:
            raise BackupBroken(bid, MANIFEST, rb.problem or "unreadable")
        m = rb.manifest
        report = VerifyReport(bid, checked_blobs=checked_blobs if checked_blobs is not None else set())
        with self.guard(f"verifying {bid}"):
            self._check(bid, SCHEMA, m.schema_sha256, m.schema_bytes or None, report)
            for name, t in m.tables.items():
                if t.status != "ok":
                    continue
                for rel, sha, size, _, _ in table_files(bid, name, t):
                    self._check(bid, rel, sha, size, report)
                report.tables += 1
                report.records += t.records
            if m.attachments_sha256 is not None:
                self._check(bid, ATTACHMENTS, m.attachments_sha256, None, report)
                raw = self._get_bytes(self.key(f"{bid}/{ATTACHMENTS}")) or b""
                try:
                    items = [json.loads(x) for x in raw.decode("utf-8").splitlines() if x.strip()]
                except ValueError as e:
                    raise BackupBroken(bid, ATTACHMENTS, f"a line does not parse: {e}") from None
                for a in items:
                    sha = str(a.get("sha256", ""))
                    if not SHA256_RE.match(sha):
                        raise BackupBroken(bid, ATTACHMENTS, f"attachment {a.get('id')} has no valid sha256")
                    report.attachments += 1
                    if sha in report.checked_blobs:
                        continue
                    rel = f"{STORE_DIR}/{sha[:2]}/{sha}"
                    got = self._hash_object(self.key(rel))
                    what = f"{rel} (attachment {a.get('id')})"
                    if got is None:
                        raise BackupBroken(bid, what, "missing")
                    if got != (int(a.get("size", -1)), sha):
                        raise BackupBroken(bid, what, "content does not match its sha256")
                    report.bytes_checked += got[0]
                    report.checked_blobs.add(sha)
        return report

    def _check(self, bid: str, rel: str, sha: str | None, size: int | None, report: VerifyReport) -> None:
        got = self._hash_object(self.key(f"{bid}/{rel}"))
        if got is None:
            raise BackupBroken(bid, rel, "missing")
        n, digest = got
        report.files += 1
        report.bytes_checked += n
        if size is not None and n != size:
            raise BackupBroken(bid, rel, f"size {n} bytes, manifest says {size} (truncated?)")
        if sha is not None and digest != sha:
            raise BackupBroken(bid, rel, "sha256 does not match the manifest (the object was altered)")

    # ---------------------------------------------------------------- download
    def download(self, backup_id: str, root: Path, *, restore_of: str | None = None) -> list[str]:
        """Download a backup and every backup it is built on under ``root`` (a backups folder); their ids.

        :param restore_of: the base a restore is for: ``backup_id`` resolves as a restore's (see ``find``).
        """
        done: list[str] = []
        store = BlobStore(root)
        todo = [self.find(backup_id, restore_of=restore_of).id]
        while todo:
            bid = todo.pop()
            if bid in done:
                continue
            rb = self.find(bid)
            if rb.manifest is None:
                raise BackupBroken(rb.id, MANIFEST, rb.problem or "unreadable")
            self._download_one(rb, root, store)
            done.append(rb.id)
            todo.extend(p for p in rb.manifest.parents() if p not in done)
        return done

    def _download_one(self, rb: RemoteBackup, root: Path, store: BlobStore) -> None:
        assert rb.manifest is not None
        m = rb.manifest
        btype, ts = check_backup_id(rb.id)
        target = ensure_private_dir(root / btype / ts)
        rels = [SCHEMA]
        if m.attachments_sha256 is not None:
            rels.append(ATTACHMENTS)
        for t in m.tables.values():
            if t.status == "ok":
                rels += [safe_rel(r) for r in (t.file, t.ids_file) if r is not None]
        with self.guard(f"downloading {rb.id}"):
            for rel in rels:
                path = target / rel
                ensure_private_dir(path.parent)
                self._fetch(self.key(f"{rb.id}/{rel}"), path)
            for a in read_attachment_list(target):
                sha = str(a.get("sha256", ""))
                if not SHA256_RE.match(sha) or store.has(sha, int(a.get("size", -1))):
                    continue
                dest = store.path(sha)
                ensure_private_dir(dest.parent)
                self._fetch(self.key(f"{STORE_DIR}/{sha[:2]}/{sha}"), dest)
            self._fetch(self.key(f"{rb.id}/{MANIFEST}"), target / MANIFEST)  # last, like the upload

    def _fetch(self, key: str, dest: Path) -> None:
        from botocore.exceptions import ClientError

        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}")
        try:
            self.client.download_file(self.bucket, key, str(tmp))
        except ClientError as e:
            tmp.unlink(missing_ok=True)
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BackupBroken(key.removeprefix(self.prefix).split("/", 2)[0], key, "missing") from None
            raise
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)

    # ---------------------------------------------------------------- delete
    def delete_backup(self, backup_id: str) -> int:
        """Delete a remote backup: its manifest first (it stops being listed), then its other objects."""
        check_backup_id(backup_id)
        with self.guard(f"deleting {backup_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(f"{backup_id}/{MANIFEST}"))
            keys = [o["Key"] for o in self._keys(self.key(f"{backup_id}/"))]
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                )
        log_event("backup.remote_removed", backup_id=backup_id, url=self.url_of(backup_id))
        return len(keys) + 1

    def attachment_lists(self, backups: list[RemoteBackup]) -> set[str] | None:
        """sha256s the backups list (None when a list cannot be read: then keep every file)."""
        out: set[str] = set()
        for b in backups:
            raw = self._get_bytes(self.key(f"{b.id}/{ATTACHMENTS}"))
            if raw is None:
                if b.manifest is not None and b.manifest.attachments_count:
                    return None
                continue
            try:
                out.update(str(json.loads(x)["sha256"]) for x in raw.decode("utf-8").splitlines() if x.strip())
            except (ValueError, KeyError):
                return None
        return out

    def collect_blobs(self, referenced: set[str], now: datetime, *, dry_run: bool) -> tuple[int, int]:
        """Delete attachment files nothing references and nobody used for BLOB_GRACE; (count, bytes)."""
        n = size = 0
        for obj in list(self._keys(self.key(f"{STORE_DIR}/"))):
            sha = obj["Key"].rsplit("/", 1)[-1]
            if not SHA256_RE.match(sha) or sha in referenced or obj["LastModified"] > now - BLOB_GRACE:
                continue
            n += 1
            size += int(obj.get("Size", 0))
            if not dry_run:
                self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])
        return n, size


# -------------------------------------------------------------------------------------------- entry points


def upload_after_run(settings: Settings, info: BackupInfo, remote: S3Remote | None = None) -> dict[str, Any]:
    """Verify a finished local backup (attachments re-hashed) and upload it; never raises.

    :param remote: the remote to send it to (default: ``backup.remote``'s, built here).
    :return: ``{"status": "uploaded", "url", "files", "attachments", "bytes"}`` or
        ``{"status": "failed", "url", "error"}``.
    """
    from .verify import verify_backup

    url = str(settings.backup.remote)
    try:
        store = BlobStore(settings.paths.backups)
        verify_backup(info, store)
        return (remote or S3Remote(settings)).upload(info, store)
    except BestStagError as e:
        log_event("backup.upload_failed", _level=40, backup_id=info.id, url=url, error=e.message)
        return {"status": "failed", "url": url, "error": e.message}
    except Exception as e:  # a bug or an unexpected library error: the local backup stands
        log_event("backup.upload_failed", _level=40, backup_id=info.id, url=url, error=repr(e)[:300])
        return {"status": "failed", "url": url, "error": f"{type(e).__name__}: {str(e)[:200]}"}


@dataclass
class UploadOutcome:
    """What one `backup upload` did: per backup, oldest first, ``upload_after_run``'s answer and its id."""

    url: str
    results: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] != "uploaded"]

    def error(self) -> RemoteFailed | None:
        failed = self.failed
        if not failed:
            return None
        return RemoteFailed(
            f"{len(failed)} upload(s) to {self.url} failed, first {failed[0]['id']}: {failed[0]['error']}",
            hint="run the same upload again: what was sent is kept",
        )


def upload_backups(settings: Settings, backup_id: str | None) -> UploadOutcome:
    """Verify and send one local backup (``backup_id``: an id or alias) or, with ``None``, every good
    local backup whose manifest the remote does not have yet (a half-finished upload has none).

    :raises BadInput: no remote is configured (before any backup is read), or an unknown id.
    """
    from .layout import find_backup, list_backups

    remote = S3Remote(settings)  # no remote configured: exit 2 with the hint, not one failed upload per backup
    root = settings.paths.backups
    if backup_id is None:
        have = {b.id for b in remote.list_backups() if b.manifest is not None}
        targets = [b for b in list_backups(root) if b.good and b.id not in have]
    else:
        targets = [find_backup(root, backup_id)]
    return UploadOutcome(remote.url, [{"id": b.id, **upload_after_run(settings, b, remote)} for b in targets])


@contextlib.contextmanager
def downloaded(settings: Settings, backup_id: str) -> Iterator[Settings]:
    """Download a remote backup (and its chain) into a private folder, verify it, yield settings that read it.

    The yielded settings differ only in ``backup.dir``; the folder is removed on exit.
    """
    from .verify import verify_dir

    work = settings.paths.backups_partial / f"remote-{os.getpid()}-{secrets.token_hex(4)}"
    ensure_private_dir(work)
    try:
        remote = S3Remote(settings)
        ids = remote.download(backup_id, work, restore_of=str(settings.base_id))
        store = BlobStore(work)
        checked: set[str] = set()
        for bid in ids:
            verify_dir(work / bid, store=store, expected_id=bid, hash_blobs=True, checked_blobs=checked)
        log_event("backup.downloaded", backup_id=backup_id, chain=ids, url=remote.url)
        yield settings.model_copy(update={"backup": settings.backup.model_copy(update={"dir": work})})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cleanup_remote(settings: Settings, *, dry_run: bool, now: datetime | None = None) -> dict[str, Any]:
    """Apply the keep rules to the remote backups and collect unreferenced remote attachment files."""
    from .retention import Policy, Snapshot, plan_retention

    now = now or clock.now()
    remote = S3Remote(settings)
    with remote.guard("cleaning up"):
        backups = remote.list_backups()
        snaps = [
            Snapshot(
                id=b.id,
                type=b.type,
                time=b.manifest.timestamp,
                ok=b.status == "ok",
                parents=frozenset(b.manifest.parents()),
                base=b.manifest.base,
            )
            for b in backups
            if b.manifest is not None
        ]
        policies = {t: Policy.from_settings(settings.backup.of(t).retention) for t in BACKUP_TYPES}
        plan = plan_retention(snaps, policies, now)
        removed = list(plan.remove)
        if not dry_run:
            for bid in removed:
                remote.delete_backup(bid)
        remaining = [b for b in backups if b.id not in set(removed)]
        referenced = remote.attachment_lists(remaining)
        count = freed = 0
        if referenced is not None:
            count, freed = remote.collect_blobs(referenced, now, dry_run=dry_run)
        else:
            log_event("backup.remote_cleanup_skipped_gc", _level=30, url=remote.url)
    return {
        "url": remote.url,
        "removed": removed,
        "kept": sorted(plan.keep),
        "broken": [b.id for b in backups if b.manifest is None],
        "attachments_removed": count,
        "attachment_bytes_freed": freed,
    }
