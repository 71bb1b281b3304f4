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

import json
import mmap
import os
import struct
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import diskcache

from ..fsutil import ensure_private_dir, refuse_symlinks

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


def _loads(data: bytes) -> Any:
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def encode(value: Any, compress_min_bytes: int) -> bytes:
    data = _dumps(value)
    if len(data) >= compress_min_bytes:
        return ZLIB + zlib.compress(data, 3)
    return RAW + data


def decode(blob: bytes) -> Any:
    head, body = blob[:1], blob[1:]
    if head == ZLIB:
        body = zlib.decompress(body)
    elif head != RAW:
        raise ValueError("unknown cache value encoding")
    return _loads(body)


class Epoch:
    """A shared counter in a memory-mapped file; `bump()` under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._mm = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._lock_path = str(path) + ".lock"
        self._tlock = threading.Lock()

    def read(self) -> int:
        return struct.unpack_from("<Q", self._mm, 0)[0]

    def bump(self) -> int:
        import fcntl

        with self._tlock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                value = self.read() + 1
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


class CacheStore:
    """Key → JSON value with expiry, on disk, with an optional in-memory LRU in front."""

    def __init__(self, directory: Path, *, size_limit_bytes: int = 256 * 2**20, compress_min_bytes: int = 4096,
                 lru_items: int = 0) -> None:
        self.directory = ensure_private_dir(directory)
        # SQLite follows links: never let a planted cache.db (or -wal/-shm) link write outside the data dir
        refuse_symlinks(*(self.directory / "store" / f"cache.db{c}" for c in ("", "-wal", "-shm")))
        old_umask = os.umask(0o077)  # diskcache creates cache.db and value files itself
        try:
            # diskcache owns `store/`; the epoch lives beside it so `check()` sees only its own files
            self._dc = diskcache.Cache(str(ensure_private_dir(self.directory / "store")), disk=_NoPickleDisk,
                                       size_limit=size_limit_bytes,
                                       eviction_policy="least-recently-stored", statistics=False,
                                       disk_min_file_size=2**40)  # values stay in cache.db (0600)
        finally:
            os.umask(old_umask)
        self.compress_min_bytes = compress_min_bytes
        self.epoch = Epoch(self.directory / "epoch")
        self._lru_items = lru_items
        self._lru = EpochLRU(lru_items)

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Any | None:
        """The stored value, or None. Expired-by-diskcache entries are gone."""
        if self._lru_items:
            epoch = self.epoch.read()
            hit = self._lru.get(key, epoch)
            if hit is not None:
                return hit
        blob = self._fetch(key)
        if blob is None:
            return None
        try:
            value = decode(blob)
        except (ValueError, zlib.error):  # not something we wrote: dropped, read as a miss
            self._dc.delete(key)
            return None
        if self._lru_items:
            self._remember(key, value, epoch)
        return value

    def _remember(self, key: str, value: Any, epoch: int) -> None:
        self._lru.put(key, value, epoch)

    def _fetch(self, key: str) -> Any:
        """The raw stored value; a tampered entry (pickled, refused by `_NoPickleDisk`) is dropped, never run."""
        try:
            return self._dc.get(key)
        except ValueError:
            self._dc.delete(key)
            return None

    def get_int(self, key: str, default: int = 0) -> int:
        v = self._fetch(key)
        try:
            return default if v is None else int(v)
        except (TypeError, ValueError):
            self._dc.delete(key)
            return default

    # ---------------------------------------------------------------- writes
    def set(self, key: str, value: Any, *, expire_s: float | None, tag: str | None = None) -> int:
        """Store a value (expire_s None = never); returns its encoded size."""
        blob = encode(value, self.compress_min_bytes)
        self._dc.set(key, blob, expire=expire_s, tag=tag)
        epoch = self.epoch.bump()
        if self._lru_items:
            self._remember(key, value, epoch)
        return len(blob)

    def delete(self, key: str) -> bool:
        removed = bool(self._dc.delete(key))
        self.epoch.bump()
        return removed

    def incr(self, key: str) -> int:
        """Atomic counter increment across processes (table generations)."""
        value = int(self._dc.incr(key, default=0))
        self.epoch.bump()
        return value

    # ---------------------------------------------------------------- indexes (sets of keys)
    def index_add(self, name: str, member: str) -> None:
        """Add to a set shared by processes (atomic; not served from the LRU)."""
        with self._dc.transact():
            blob = self._dc.get(name)
            members = decode(blob) if blob is not None else []
            if member not in members:
                members.append(member)
                self._dc.set(name, encode(members, self.compress_min_bytes))

    def index_members(self, name: str) -> list[str]:
        blob = self._dc.get(name)
        return list(decode(blob)) if blob is not None else []

    # ---------------------------------------------------------------- maintenance
    def expire(self) -> int:
        """Remove expired entries; returns how many."""
        return int(self._dc.expire())

    def clear(self) -> int:
        n = int(self._dc.clear())
        self.epoch.bump()
        self._lru.clear()
        return n

    def volume(self) -> int:
        return int(self._dc.volume())

    def __len__(self) -> int:
        return len(self._dc)

    def check(self) -> list[Any]:
        return list(self._dc.check())

    def lock(self, key: str, expire_s: float = 30.0) -> diskcache.Lock:
        """A lock shared by processes (stampede protection)."""
        return diskcache.Lock(self._dc, "lock:" + key, expire=expire_s)

    def close(self) -> None:
        self._dc.close()
        self.epoch.close()
