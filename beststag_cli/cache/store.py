"""The cache's storage: diskcache on disk (JSON values, never pickle), an in-memory LRU in front.

Values are JSON documents encoded to bytes, compressed with zlib above a size threshold; a
one-byte header says which. diskcache stores bytes as they are (no pickling); `_NoPickleDisk`
refuses to unpickle anything it finds, so a tampered cache file cannot run code.

Cross-process coherence of the in-memory LRU: every change to the disk cache bumps a shared
*epoch* (an 8-byte counter in a memory-mapped file); an LRU entry is served only while the epoch
it was read at is still current, so a write made by another process (CLI, cron, webhook server)
is never hidden by a stale in-memory copy. Reading the epoch costs well under a microsecond.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import sqlite3
import stat
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from ..diskspace import as_disk_full
from ..errors import CorruptFile, DiskFull
from ..fsutil import ensure_private_dir

RAW = b"J"
ZLIB = b"Z"


class _NoPickleDisk(diskcache.Disk):
    """A diskcache Disk that stores only bytes/str and refuses to unpickle."""

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache value (the cache stores JSON only)")
        return super().fetch(mode, filename, value, read)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise ValueError("refusing to unpickle a cache key")
        return super().get(key, raw)


try:  # orjson decodes a 20 KB answer in ~30 µs against ~80 µs for json: it is the hit path's main cost
    import orjson as _orjson
except ImportError:  # pragma: no cover - the stdlib does the same, slower
    _orjson = None  # type: ignore[assignment]


def _dumps(value: Any) -> bytes:
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except (TypeError, _orjson.JSONEncodeError):
            pass  # e.g. an integer beyond 64 bits: the stdlib writes it
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(data: bytes | bytearray) -> Any:
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def encode(value: Any, compress_min_bytes: int) -> bytes:
    data = _dumps(value)
    if len(data) >= compress_min_bytes:
        return ZLIB + zlib.compress(data, 3)
    return RAW + data


def decode(blob: bytes | bytearray) -> Any:
    head, body = blob[:1], blob[1:]
    if head == ZLIB:
        body = zlib.decompress(body)
    elif head != RAW:
        raise ValueError("unknown cache value encoding")
    return _loads(body)


class Epoch:
    """A shared counter in a memory-mapped file; `bump()` under a file lock.

    The file's first 8 bytes are written with ``write()`` (never a sparse ``ftruncate``) under the
    lock before they are mapped, so a full disk fails here with ENOSPC instead of a SIGBUS at the
    first bump. Any 8 bytes are a valid counter (garbage only moves it on); links are not followed.
    """

    def __init__(self, path: Path) -> None:
        import fcntl

        self.path = path
        self._lock_path = str(path) + ".lock"
        self._tlock = threading.Lock()
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(path))
            lk = self._open_lock()
            try:
                fcntl.flock(lk, fcntl.LOCK_EX)
                head = os.pread(fd, 8, 0)
                if (len(head) < 8 or os.fstat(fd).st_blocks == 0) and os.pwrite(fd, head.ljust(8, b"\0"), 0) != 8:
                    raise OSError(errno.ENOSPC, "short write", str(path))
            finally:
                os.close(lk)
            self._mm = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        return os.open(
            self._lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600
        )

    def read(self) -> int:
        return int(struct.unpack_from("<Q", self._mm, 0)[0])

    def bump(self) -> int:
        import fcntl

        with self._tlock:
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                value = (self.read() + 1) % 2**64  # a garbage value near the top wraps, never overflows
                struct.pack_into("<Q", self._mm, 0, value)
                return value
            finally:
                os.close(fd)

    def close(self) -> None:
        self._mm.close()


class EpochLRU:
    """In-memory answers, each valid only while the shared epoch it was read at is current."""

    def __init__(self, items: int) -> None:
        self.items = items
        self._d: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, epoch: int) -> Any | None:
        with self._lock:
            hit = self._d.get(key)
            if hit is not None and hit[0] == epoch:
                self._d.move_to_end(key)
                return hit[1]
        return None

    def put(self, key: str, value: Any, epoch: int) -> None:
        with self._lock:
            self._d[key] = (epoch, value)
            self._d.move_to_end(key)
            while len(self._d) > self.items:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


class StoreLock:
    """A diskcache lock whose value names its holder (`holder.token()`), blocking until held.

    Expires on its own after ``expire_s``; a waiter that finds it held by a process of this host
    and boot that is gone (``kill -9``) breaks it at once. ``broken`` lists the holders it broke.
    """

    POLL_S = 0.002

    def __init__(self, dc: diskcache.Cache, name: str, expire_s: float) -> None:
        self._dc = dc
        self.name = name
        self.expire_s = expire_s
        self.broken: list[dict[str, Any]] = []
        self._token: bytes | None = None

    def _current(self) -> Any:
        try:
            return self._dc.get(self.name)
        except ValueError:  # not a value we wrote (refused pickle): nobody we know holds it
            return b"?"

    def acquire(self) -> None:
        from . import holder

        tok = holder.token()
        while not self._dc.add(self.name, tok, expire=self.expire_s, retry=True):
            cur = self._current()
            if cur is not None and holder.is_dead(cur):
                with self._dc.transact(retry=True):
                    if self._current() == cur:
                        self._dc.delete(self.name, retry=True)
                        self.broken.append(holder.parse(cur) or {})
                continue
            time.sleep(self.POLL_S)
        self._token = tok

    def release(self) -> None:
        tok, self._token = self._token, None
        if tok is None:
            return
        with self._dc.transact(retry=True):
            if self._current() == tok:  # expired and taken by another meanwhile: not ours to drop
                self._dc.delete(self.name, retry=True)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


_CORRUPT_WORDS = ("not a database", "malformed", "encrypted", "corrupt", "unsupported file format")


def _is_corrupt(e: BaseException) -> bool:
    if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
        return True  # "file is not a database", "database disk image is malformed"
    if isinstance(e, sqlite3.Error):
        return any(w in str(e).lower() for w in _CORRUPT_WORDS)
    if isinstance(e, NotADirectoryError | IsADirectoryError | FileExistsError):
        return True
    if isinstance(e, OSError):  # a link, a folder or a device where a cache file should be
        return e.errno in (errno.ELOOP, errno.EISDIR, errno.ENOTDIR, errno.EINVAL, errno.ENXIO)
    return isinstance(e, struct.error | UnicodeDecodeError)  # garbage where text or a counter was


def _epoch_only(e: BaseException, directory: Path) -> bool:
    """The failure is the epoch file's (a link, a folder, a short file), not the database's."""
    return (
        isinstance(e, OSError)
        and bool(e.filename)
        and Path(str(e.filename)).name.startswith("epoch")
        and Path(str(e.filename)).parent == directory
    )


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's text on one line: SQLite's messages about damaged files can quote bytes, newlines included."""
    return " ".join(str(e).split())[:limit]


#: what the store's files may raise when they are damaged or the disk is full
STORE_ERRORS = (sqlite3.Error, OSError, struct.error, diskcache.Timeout, UnicodeDecodeError)


class CacheStore:
    """Key → JSON value with expiry, on disk, with an optional in-memory LRU in front.

    The cache is never the reason a read fails. Damaged files (garbage in ``cache.db``, the epoch,
    a link where a file should be) are moved aside inside the cache dir (``store.corrupt-<time>``;
    only the latest such copy is kept) and the store is rebuilt empty. When the store cannot be
    opened or written (a full disk), it runs *degraded*: reads are misses, writes raise
    :class:`~beststag_cli.errors.DiskFull` (or ``CorruptFile``) for the caller to decide whether the
    write was the point. ``warnings`` lists what happened, one line each (also logged).
    """

    def __init__(
        self,
        directory: Path,
        *,
        size_limit_bytes: int = 256 * 2**20,
        compress_min_bytes: int = 4096,
        lru_items: int = 0,
    ) -> None:
        self.directory = Path(directory)
        self.size_limit_bytes = size_limit_bytes
        self.compress_min_bytes = compress_min_bytes
        self._lru_items = lru_items
        self._lru = EpochLRU(lru_items)
        self.warnings: list[str] = []
        self._failure: Exception | None = None  # set while degraded
        self._dc: Any = None
        self.epoch: Any = None
        try:
            self._open()
        except STORE_ERRORS as e:
            self._handle(e, "open")

    # ---------------------------------------------------------------- opening, repair, degradation
    def _open(self) -> None:
        for p in (self.directory, self.directory / "store", self.directory / "store" / "cache.db"):
            if p.is_symlink():  # never open (or write) a database through a link planted in the data dir
                raise OSError(errno.ELOOP, "a symbolic link where a cache file belongs", str(p))
        db = self.directory / "store" / "cache.db"
        if db.exists() and not db.is_file():
            raise IsADirectoryError(errno.EISDIR, "not a database file", str(db))
        ensure_private_dir(self.directory)
        old_umask = os.umask(0o077)  # diskcache creates cache.db and value files itself
        try:
            # diskcache owns `store/`; the epoch lives beside it so `check()` sees only its own files
            self._dc = diskcache.Cache(
                str(ensure_private_dir(self.directory / "store")),
                disk=_NoPickleDisk,
                size_limit=self.size_limit_bytes,
                eviction_policy="least-recently-stored",
                statistics=False,
                disk_min_file_size=2**40,
            )  # values stay in cache.db (0600)
            self.epoch = Epoch(self.directory / "epoch")
        except BaseException:
            self._close_quietly()
            raise
        finally:
            os.umask(old_umask)
        self._failure = None

    def _close_quietly(self) -> None:
        for obj in (self._dc, self.epoch):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # closing a damaged store: nothing more to do
                    pass
        self._dc = None
        self.epoch = _NullEpoch()

    def _warn(self, line: str) -> None:
        self.warnings.append(line)
        try:
            import logging

            from ..logs import log_event

            log_event("cache.degraded", _level=logging.WARNING, path=str(self.directory), message=line)
        except Exception:  # a warning must not fail the read it is about
            pass

    def _handle(self, e: BaseException, op: str) -> bool:
        """Deal with a failure of the store's files; True when the store was rebuilt and may be retried."""
        full = as_disk_full(e, self.directory)
        if full is not None:
            free = full.free_bytes
            self._failure = DiskFull(str(self.directory), free)
            self._warn(
                f"cache {self.directory}: disk full during {op} ({free if free is not None else '?'} bytes "
                "free): answering from Airtable without the cache"
            )
            if op == "open":
                self._close_quietly()
            return False
        if _is_corrupt(e):
            aside = self._set_aside(store=not _epoch_only(e, self.directory))
            try:
                self._open()
            except STORE_ERRORS as e2:
                self._close_quietly()
                self._failure = CorruptFile(
                    f"cache {self.directory} cannot be rebuilt: {type(e2).__name__}: {_one_line(e2)}"
                )
                self._warn(f"{self._failure.message}; answering from Airtable without the cache")
                return False
            self._lru.clear()
            self._warn(
                f"cache {self.directory} was damaged ({type(e).__name__}: {_one_line(e, 120)}); "
                f"moved aside to {aside.name if aside else '-'} and rebuilt empty"
            )
            return True
        self._failure = CorruptFile(f"cache {self.directory}: {type(e).__name__}: {_one_line(e, 160)}")
        self._warn(f"{self._failure.message}; answering from Airtable without the cache")
        if op == "open":
            self._close_quietly()
        return False

    def _set_aside(self, *, store: bool = True) -> Path | None:
        """Move the damaged files aside (inside the cache dir, never following links); keep one old copy.

        ``store=False`` when only the epoch is damaged: the database stays (moving a database that other
        processes still have open is only worth it when it is the damaged part).
        """
        import shutil

        from .. import clock

        self._close_quietly()
        stamp = clock.now().strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        aside = self.directory / f"store.corrupt-{stamp}"
        if self.directory.is_symlink() or not self.directory.is_dir():
            return None
        if store:
            for old in self.directory.glob("store.corrupt-*"):
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
        moved = False
        for name in ("store", "epoch", "epoch.lock") if store else ("epoch", "epoch.lock"):
            src = self.directory / name
            if src.is_symlink() or src.exists():
                try:
                    if name == "store":
                        os.replace(src, aside)
                        moved = True
                    elif src.is_symlink() or not src.is_file():
                        os.replace(src, self.directory / f"{name}.corrupt-{stamp}")
                except OSError:
                    continue
        return aside if moved else (self.directory / "epoch" if not store else None)

    def _run(self, op: str, fn: Callable[[], Any], default: Any, *, write: bool) -> Any:
        """Run one operation on the store's files: damaged files are rebuilt, a full disk degrades."""
        if self._dc is None:
            if write:
                raise self._failure or CorruptFile(f"cache {self.directory} is unavailable")
            return default
        try:
            return fn()
        except STORE_ERRORS as e:
            rebuilt = self._handle(e, op)
            if rebuilt:
                try:
                    return fn()
                except STORE_ERRORS as e2:
                    self._handle(e2, op)
            if write:
                raise (self._failure or CorruptFile(f"cache {self.directory}: {op} failed")) from None
            return default

    @property
    def degraded(self) -> str | None:
        """Why the store cannot be used now (None when it can)."""
        return None if self._dc is not None else (getattr(self._failure, "message", None) or "unavailable")

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Any | None:
        """The stored value, or None. Expired-by-diskcache entries are gone; damaged files read as a miss."""
        epoch = 0
        if self._lru_items and self._dc is not None:
            epoch = self._run("read", self.epoch.read, None, write=False)
            if epoch is None:
                return None
            hit = self._lru.get(key, epoch)
            if hit is not None:
                return hit
        blob = self._fetch(key)
        if blob is None:
            return None
        try:
            value = decode(blob) if isinstance(blob, bytes | bytearray) else None
        except (ValueError, zlib.error):
            value = None
        if value is None:  # not something we wrote: dropped, read as a miss
            self._run("delete", lambda: self._dc.delete(key), None, write=False)
            return None
        if self._lru_items:
            self._remember(key, value, epoch)
        return value

    def _remember(self, key: str, value: Any, epoch: int) -> None:
        self._lru.put(key, value, epoch)

    def _fetch(self, key: str) -> Any:
        """The raw stored value; a tampered entry (pickled, refused by `_NoPickleDisk`) is dropped, never run."""

        def fetch() -> Any:
            try:
                return self._dc.get(key)
            except ValueError:
                self._dc.delete(key)
                return None

        return self._run("read", fetch, None, write=False)

    def get_int(self, key: str, default: int = 0) -> int:
        v = self._fetch(key)
        try:
            return default if v is None else int(v)
        except (TypeError, ValueError):
            self._run("delete", lambda: self._dc.delete(key), None, write=False)
            return default

    # ---------------------------------------------------------------- writes
    def set(self, key: str, value: Any, *, expire_s: float | None, tag: str | None = None) -> int:
        """Store a value (expire_s None = never); returns its encoded size."""
        blob = encode(value, self.compress_min_bytes)

        def put() -> int:
            self._dc.set(key, blob, expire=expire_s, tag=tag)
            return self.epoch.bump()

        epoch = self._run("write", put, None, write=True)
        if self._lru_items:
            self._remember(key, value, epoch)
        return len(blob)

    def delete(self, key: str) -> bool:
        def drop() -> bool:
            removed = bool(self._dc.delete(key))
            self.epoch.bump()
            return removed

        return bool(self._run("write", drop, False, write=True))

    def incr(self, key: str) -> int:
        """Atomic counter increment across processes (table generations)."""

        def bump() -> int:
            try:
                value = int(self._dc.incr(key, default=0))
            except (TypeError, ValueError):  # not a counter (tampered): start a fresh one past it
                self._dc.delete(key)
                value = int(self._dc.incr(key, default=int(self.epoch.read() % 2**31)))
            self.epoch.bump()
            return value

        return int(self._run("write", bump, 0, write=True))

    # ---------------------------------------------------------------- indexes (sets of keys)
    def index_add(self, name: str, member: str) -> None:
        """Add to a set shared by processes (atomic; not served from the LRU)."""

        def add() -> None:
            with self._dc.transact():
                members = self._members(name)
                if member not in members:
                    members.append(member)
                    self._dc.set(name, encode(members, self.compress_min_bytes))

        self._run("write", add, None, write=True)

    def _members(self, name: str) -> list[str]:
        try:
            blob = self._dc.get(name)
            members = decode(blob) if isinstance(blob, bytes | bytearray) else []
        except (ValueError, zlib.error):
            members = []
        return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []

    def index_members(self, name: str) -> list[str]:
        return list(self._run("read", lambda: self._members(name), [], write=False))

    # ---------------------------------------------------------------- maintenance
    def expire(self) -> int:
        """Remove expired entries; returns how many."""
        return int(self._run("expire", lambda: int(self._dc.expire()), 0, write=True))

    def clear(self) -> int:
        def clear() -> int:
            n = int(self._dc.clear())
            self.epoch.bump()
            return n

        n = int(self._run("clear", clear, 0, write=True))
        self._lru.clear()
        return n

    def volume(self) -> int:
        return int(self._run("read", lambda: int(self._dc.volume()), 0, write=False))

    def __len__(self) -> int:
        return int(self._run("read", lambda: len(self._dc), 0, write=False))

    def check(self) -> list[Any]:
        """What is wrong with the store's files (empty when all is well); repairs nothing but diskcache's own."""
        if self._dc is None:
            return [self.degraded]
        out: list[Any] = []
        try:
            out.extend(str(w.message) if hasattr(w, "message") else str(w) for w in self._dc.check())
        except STORE_ERRORS as e:
            out.append(f"{self.directory / 'store'}: {type(e).__name__}: {str(e)[:160]}")
        return out

    def lock(self, key: str, expire_s: float = 30.0) -> Any:
        """A lock shared by processes (stampede protection); a dead holder's lock is broken at once."""
        if self._dc is None:
            return contextlib.nullcontext(None)  # no store to share a lock through: nothing to protect
        return _GuardedLock(self, StoreLock(self._dc, "lock:" + key, expire_s))

    def close(self) -> None:
        self._close_quietly()


class _GuardedLock:
    """A store lock whose failure (damaged or full store) degrades to no lock rather than failing the read."""

    def __init__(self, store: CacheStore, lock: StoreLock) -> None:
        self._store = store
        self._lock = lock
        self._held = False

    @property
    def broken(self) -> list[dict[str, Any]]:
        return self._lock.broken

    def __enter__(self) -> _GuardedLock:
        def take() -> bool:
            self._lock.acquire()
            return True

        self._held = bool(self._store._run("lock", take, False, write=False))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._held:
            self._store._run("unlock", self._lock.release, None, write=False)


class _NullEpoch:
    """The epoch of a store that could not be opened: nothing is cached, so nothing is ever current."""

    def read(self) -> int:
        return 0

    def bump(self) -> int:
        return 0

    def close(self) -> None:
        pass


def check(settings: Any) -> list[str]:
    """What is wrong with the on-disk cache (empty when all is well); reads only, repairs nothing.

    For `beststag doctor`: ``cache.db`` must be an SQLite database that passes ``quick_check``,
    the epoch a regular file of at least 8 bytes, and no link may stand where a cache file is.
    A damaged cache is never fatal (reads fall back to Airtable and the store rebuilds itself on
    first use); :func:`repair` does that rebuild now.
    """
    if getattr(settings.cache, "backend", "diskcache") != "diskcache":
        return []
    root = Path(settings.paths.cache_dir)
    out: list[str] = []
    for p in (root, root / "store", root / "store" / "cache.db", root / "epoch", root / "epoch.lock"):
        if p.is_symlink():
            out.append(f"{p} is a symbolic link (beststag never follows links in its data dir)")
    if out or not root.exists():
        return out
    if (root / "store").exists() and not (root / "store").is_dir():
        return [f"{root / 'store'} is not the cache's folder"]
    epoch = root / "epoch"
    if epoch.exists() and (not epoch.is_file() or epoch.stat().st_size < 8):
        out.append(f"{epoch} is not the cache's 8-byte epoch file")
    db = root / "store" / "cache.db"
    if db.exists():
        if not db.is_file():
            out.append(f"{db} is not a file")
            return out
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                rows = con.execute("PRAGMA quick_check").fetchall()
                con.execute("SELECT COUNT(*) FROM Cache").fetchone()
            finally:
                con.close()
            bad = [str(r[0]) for r in rows if str(r[0]).lower() != "ok"]
            if bad:
                out.append(f"{db} is damaged: {bad[0][:160]}")
        except (sqlite3.Error, UnicodeDecodeError) as e:
            out.append(f"{db} is damaged: {type(e).__name__}: {str(e)[:160]}")
    return out


def repair(settings: Any) -> list[str]:
    """Open the cache now, so that damaged files are moved aside and the store rebuilt; what was done."""
    from .backend import make_store

    store = make_store(settings)
    try:
        return list(getattr(store, "warnings", []))
    finally:
        store.close()
