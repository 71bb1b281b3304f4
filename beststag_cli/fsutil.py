"""Private files and directories, and atomic writes.

Everything the tool keeps under its data dir (journal, cache, logs, backups) may hold Airtable
data or secrets, so directories are created 0700 and files 0600. Modes are set with an explicit
chmod after creation, so the caller's umask cannot loosen (or tighten) them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it if it already exists and is ours.

    Parents that already exist are left alone (they may be ``/tmp`` or a home dir). A directory
    owned by someone else is not touched: chmod would fail, and it is not ours to change.

    :return: the path, as a ``Path``.
    :raises OSError: when the directory cannot be created.
    """
    p = Path(path)
    missing: list[Path] = []
    cur = p
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            # another process created it between our check and mkdir
            pass
        _tighten(d, DIR_MODE)
    if not missing:
        if not p.is_dir():
            raise NotADirectoryError(f"{p} exists and is not a directory")
        _tighten(p, DIR_MODE)
    return p


def _tighten(path: Path, mode: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return
    if stat.S_IMODE(st.st_mode) != mode:
        with contextlib.suppress(PermissionError):
            os.chmod(path, mode)


def private_open(
    path: str | Path,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    parents: bool = True,
) -> IO[Any]:
    """Open ``path`` like ``open()``, creating it 0600 (and its folder 0700 when ``parents``).

    ``mode`` is one of ``w``, ``a``, ``x``, ``r+`` with an optional ``b``. An existing file keeps
    its content semantics (``w`` truncates, ``a`` appends) and is chmod-ed to 0600.
    """
    p = Path(path)
    if parents:
        ensure_private_dir(p.parent)
    base = mode.replace("b", "").replace("t", "")
    flags = {
        "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
        "r+": os.O_RDWR | os.O_CREAT,
        "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
        "w+": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    }.get(base)
    if flags is None:
        raise ValueError(f"private_open: unsupported mode {mode!r}")
    flags |= getattr(os, "O_CLOEXEC", 0)
    fd = os.open(p, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def touch_private(path: str | Path) -> Path:
    """Create an empty 0600 file if missing (tightening an existing one); return its path."""
    p = Path(path)
    ensure_private_dir(p.parent)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return p


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. some network filesystems).
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temp file beside ``path`` and rename it over ``path`` when the block succeeds.

    Readers see either the old file or the complete new one. The file is 0600. On an exception
    the temp file is removed and ``path`` is unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_writer: mode must be 'w' or 'wb'")
    p = Path(path)
    ensure_private_dir(p.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, FILE_MODE)
        f = os.fdopen(fd, mode) if mode == "wb" else os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(p.parent)


def atomic_write(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + ``os.replace``); 0600."""
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding) as f:
        f.write(data)
    return Path(path)


def write_private_file(path: str | Path, data: str | bytes, *, atomic: bool = True) -> Path:
    """Write ``data`` to a 0600 file (atomically by default), creating its folder 0700."""
    if atomic:
        return atomic_write(path, data)
    with private_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)
