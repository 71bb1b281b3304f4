"""Private files and directories, atomic writes, and the data dir's no-symlink rule.

Everything the tool keeps under its data dir (journal, cache, logs, backups) may hold Airtable
data or secrets, so directories are created 0700 and files 0600. Modes are set with an explicit
chmod after creation, so the caller's umask cannot loosen (or tighten) them.

Private roots. :class:`beststag_cli.paths.Paths` registers the data dir (and a backups folder
configured elsewhere) with :func:`register_private_root`. Inside a registered root:

- nothing below the root may be a symlink: folders and files that are links are refused with
  :class:`~beststag_cli.errors.UnsafePath` (one line, exit 2), files are opened with
  ``O_NOFOLLOW``, and deletes check every component first (:func:`safe_unlink`, :func:`safe_rmtree`);
- existing folders and files we own are tightened to 0700/0600.

Outside every root (a ``--out`` path, the parents of the data dir) beststag never changes the mode
of anything that exists: missing folders are created as ``mkdir`` would (0777 minus the umask the
process started with), a new file gets 0666 minus that umask, and a file replaced atomically keeps
its mode. Links there are the user's own and are followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600
#: the umask :func:`harden_umask` replaces the process's with while beststag runs
PRIVATE_UMASK = 0o077

_ROOTS: set[str] = set()
_ROOTS_LOCK = threading.Lock()
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_started_umask: int | None = None
#: `doctor` looks and never fixes: while set, no existing file or folder gets its mode changed
_KEEP_MODES = False


# --------------------------------------------------------------------------------------------
# roots and containment


def register_private_root(path: str | Path) -> Path:
    """Declare ``path`` a beststag-owned folder (the data dir): private modes and no symlinks below it."""
    p = os.path.abspath(path)
    with _ROOTS_LOCK:
        _ROOTS.add(p)
    return Path(p)


def private_root(path: str | Path, *, outermost: bool = False) -> Path | None:
    """The registered root that contains ``path`` (lexically, links not resolved), or None.

    The innermost one by default; ``outermost`` for link checks (``backups/`` is a root of its own
    but, inside the data dir, must not be a link either).
    """
    p = os.path.abspath(path)
    best: str | None = None
    with _ROOTS_LOCK:
        roots = list(_ROOTS)
    for r in roots:
        if not (p == r or p.startswith(r.rstrip(os.sep) + os.sep)):
            continue
        if best is None or (len(r) < len(best) if outermost else len(r) > len(best)):
            best = r
    return Path(best) if best is not None else None


def _below(root: Path, path: Path) -> list[Path]:
    """The components of ``path`` strictly below ``root``, outermost first (``path`` included)."""
    rel = path.relative_to(root)
    out: list[Path] = []
    cur = root
    for part in rel.parts:
        cur = cur / part
        out.append(cur)
    return out


def _unsafe(link: Path, root: Path) -> Exception:
    from .errors import UnsafePath

    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return UnsafePath(f"{link} is a symlink (to {target}); beststag does not follow links inside its data dir {root}")


def check_safe_path(path: str | Path) -> Path:
    """Refuse ``path`` when it, or a folder between its private root and it, is a symlink.

    Paths outside every registered root are returned unchecked.

    :raises UnsafePath: naming the link.
    """
    p = Path(os.path.abspath(path))
    root = private_root(p, outermost=True)
    if root is None:
        return p
    for comp in _below(root, p):
        try:
            st = os.lstat(comp)
        except FileNotFoundError:
            break
        except NotADirectoryError:
            break
        if stat.S_ISLNK(st.st_mode):
            raise _unsafe(comp, root)
    return p


def refuse_symlinks(*paths: str | Path) -> None:
    """:func:`check_safe_path` for each path (e.g. a SQLite file and its -wal/-shm companions)."""
    for p in paths:
        check_safe_path(p)


# --------------------------------------------------------------------------------------------
# umask


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(PRIVATE_UMASK)  # pragma: no cover - no /proc
    os.umask(old)  # pragma: no cover
    return old  # pragma: no cover


def harden_umask() -> int:
    """Set the process umask to 077 (so files that libraries create, e.g. SQLite's, are private too).

    The umask the process started with is remembered for files written outside the data dir.
    :return: the previous umask (give it to :func:`restore_umask`).
    """
    global _started_umask
    old = os.umask(PRIVATE_UMASK)
    if _started_umask is None:
        _started_umask = old
    return old


def restore_umask(old: int) -> None:
    global _started_umask
    os.umask(old)
    _started_umask = None


def user_umask() -> int:
    """The umask the user runs beststag with (before :func:`harden_umask`)."""
    return _current_umask() if _started_umask is None else _started_umask


def keep_modes(on: bool = True) -> None:
    """Turn off (or back on) the tightening of existing files and folders, for the whole process.

    ``beststag doctor`` reports a loose mode with the chmod that fixes it; it must not fix it
    silently on its way (loading settings, the journal, the log file, the settings snapshot).
    New files and folders are still created private. The CLI root turns it off after each command.
    """
    global _KEEP_MODES
    _KEEP_MODES = on


def modes_kept() -> bool:
    """True while :func:`keep_modes` is on (code that chmods outside this module asks)."""
    return _KEEP_MODES


# --------------------------------------------------------------------------------------------
# folders


def _tighten(path: Path, mode: int, *, new: bool = False) -> None:
    if _KEEP_MODES and not new:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return
    if stat.S_IMODE(st.st_mode) != mode:
        with contextlib.suppress(PermissionError):
            os.chmod(path, mode, follow_symlinks=False)


def ensure_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it if it already exists, is ours, and is
    inside the data dir.

    Folders that already exist outside the data dir are never touched (they may be ``/tmp`` or a
    home dir); folders owned by someone else are not touched either. Inside the data dir a folder
    that is a symlink is refused.

    :return: the path, as a ``Path``.
    :raises UnsafePath: when ``path`` or a folder above it (inside the data dir) is a symlink.
    :raises OSError: when the directory cannot be created.
    """
    p = Path(os.path.abspath(path))
    root = private_root(p)
    check_safe_path(p)
    missing = _missing_dirs(p)
    for d in missing:
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            # another process created it between our check and mkdir
            check_safe_path(d)
            if root is not None and _inside(d, root):
                _tighten(d, DIR_MODE)
            continue
        _tighten(d, DIR_MODE, new=True)  # ours: the umask must not loosen (or tighten) it
    if not p.is_dir():
        raise NotADirectoryError(f"{p} exists and is not a directory")
    if not missing and root is not None:
        _tighten(p, DIR_MODE)
    return p


def _missing_dirs(p: Path) -> list[Path]:
    """The folders of ``p`` (itself included) that do not exist yet, outermost first: what to mkdir."""
    missing: list[Path] = []
    cur = p
    while not os.path.lexists(cur):
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    return missing[::-1]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def ensure_dir(path: str | Path) -> Path:
    """A folder for a file the user asked for: inside the data dir :func:`ensure_private_dir`, else create
    missing folders as ``mkdir -p`` does (umask applies) and never change an existing one."""
    p = Path(os.path.abspath(path))
    if private_root(p) is not None:
        return ensure_private_dir(p)
    mode = 0o777 & ~user_umask()
    missing = _missing_dirs(p)
    for d in missing:
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
            os.chmod(d, mode)
    if not p.is_dir():
        raise NotADirectoryError(f"{p} exists and is not a directory")
    return p


# --------------------------------------------------------------------------------------------
# files


_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "r+": os.O_RDWR | os.O_CREAT,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "w+": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
}


def _open_fd(p: Path, flags: int) -> int:
    """Open a data file: never through a symlink inside the data dir, never a FIFO or device.

    Inside the data dir the file is chmod-ed 0600 (ours, or an existing one we own); outside it only a
    file this call created gets a mode (0600).
    """
    root = private_root(p)
    if root is None:
        created = False
        if flags & os.O_CREAT and not flags & os.O_EXCL:
            try:
                fd = os.open(p, flags | os.O_EXCL, FILE_MODE)
                created = True
            except FileExistsError:
                fd = os.open(p, flags & ~os.O_CREAT)
        else:
            fd = os.open(p, flags, FILE_MODE)
            created = bool(flags & os.O_EXCL)
        if created:
            try:
                os.fchmod(fd, FILE_MODE)
            except BaseException:
                os.close(fd)
                raise
        return fd
    try:
        fd = os.open(p, flags | _NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(p):
            raise _unsafe(p, root) from None
        if e.errno == errno.ENXIO:  # a FIFO without a reader
            from .errors import UnsafePath

            raise UnsafePath(f"{p} is not a regular file; beststag only writes regular files in its data dir") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            from .errors import UnsafePath

            raise UnsafePath(f"{p} is not a regular file; beststag only writes regular files in its data dir")
        if (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not _KEEP_MODES:
            os.fchmod(fd, FILE_MODE)
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_open(
    path: str | Path,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    parents: bool = True,
) -> IO[Any]:
    """Open ``path`` like ``open()``, creating it 0600 (and its folder 0700 when ``parents``).

    ``mode`` is one of ``w``, ``a``, ``x``, ``r+`` with an optional ``b``. An existing file keeps
    its content semantics (``w`` truncates, ``a`` appends) and, inside the data dir, is chmod-ed
    to 0600. Inside the data dir a symlink (at the file or a folder above it) is refused.

    :raises UnsafePath: for a symlink or a non-regular file inside the data dir.
    """
    p = Path(os.path.abspath(path))
    if parents:
        ensure_private_dir(p.parent)
    else:
        check_safe_path(p.parent)
    base = mode.replace("b", "").replace("t", "")
    flags = _FLAGS.get(base)
    if flags is None:
        raise ValueError(f"private_open: unsupported mode {mode!r}")
    fd = _open_fd(p, flags | _CLOEXEC)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def touch_private(path: str | Path) -> Path:
    """Create an empty 0600 file if missing (tightening an existing one); return its path."""
    p = Path(os.path.abspath(path))
    ensure_private_dir(p.parent)
    os.close(_open_fd(p, os.O_WRONLY | os.O_CREAT | _CLOEXEC))
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
def _temp_then_rename(fd: int, tmp: Path, target: Path, mode: str, encoding: str, file_mode: int) -> Iterator[IO[Any]]:
    """The block writes the open temp file ``tmp`` (descriptor ``fd``); then flush, fsync, ``file_mode`` (set on the
    descriptor: the umask cannot narrow it) and ``os.replace`` onto ``target``. On any exception ``tmp`` is removed
    and ``target`` is unchanged. Shared by :func:`atomic_writer` and :func:`write_public_file`."""
    try:
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
            os.fchmod(f.fileno(), file_mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temp file beside ``path`` and rename it over ``path`` when the block succeeds.

    Readers see either the old file or the complete new one. On an exception the temp file is
    removed and ``path`` is unchanged. Inside the data dir the file is 0600 and a symlink at
    ``path`` (or above it) is refused; outside it, a link is followed (its target is replaced), a new
    file gets 0666 minus the user's umask and a replaced file keeps its mode, and no existing folder
    is chmod-ed.

    :raises UnsafePath: for a symlink inside the data dir.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_writer: mode must be 'w' or 'wb'")
    p = Path(os.path.abspath(path))
    private = private_root(p) is not None
    if private:
        ensure_private_dir(p.parent)
        check_safe_path(p)
        file_mode = FILE_MODE
    else:
        p = Path(os.path.realpath(p))
        ensure_dir(p.parent)
        try:
            file_mode = stat.S_IMODE(os.stat(p).st_mode)
        except FileNotFoundError:
            file_mode = 0o666 & ~user_umask()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    with _temp_then_rename(fd, Path(tmp_name), p, mode, encoding, file_mode) as f:
        yield f
    _fsync_dir(p.parent)


def atomic_write(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + ``os.replace``); see :func:`atomic_writer`."""
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


# --------------------------------------------------------------------------------------------
# files other users read (the Prometheus textfile)

#: the one kind of file beststag writes for another user: node_exporter's textfile collector reads it
PUBLIC_FILE_MODE = 0o644
#: folders beststag creates for such a file (folders that already exist are never chmod-ed)
PUBLIC_DIR_MODE = 0o755


def ensure_public_dir(path: str | Path) -> Path:
    """Create the missing folders of ``path`` as 0755 (whatever the umask); never touch an existing one.

    Inside the data dir the data dir's rules win (:func:`ensure_private_dir`): another user could not
    traverse the 0700 data dir anyway.
    """
    p = Path(os.path.abspath(path))
    if private_root(p) is not None:
        return ensure_private_dir(p)
    for d in _missing_dirs(p):
        try:
            os.mkdir(d, PUBLIC_DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by someone else: not ours to chmod
        # by descriptor, so a link swapped in after mkdir is not followed (and the umask cannot narrow it)
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC)
        try:
            os.fchmod(fd, PUBLIC_DIR_MODE)
        finally:
            os.close(fd)
    if not p.is_dir():
        raise NotADirectoryError(f"{p} exists and is not a directory")
    return p


def _exclusive_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new temp file beside ``name``: never an entry that exists (a planted link is not opened).

    The first choice names the process (``.NAME.PID.tmp``), so a crash's leftover says whose it was;
    if that entry exists (a leftover, or something planted) a random name is used instead. The
    suffix keeps it out of node_exporter's ``*.prom`` glob while it is incomplete.
    """
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE), tmp
    except FileExistsError:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)  # O_EXCL as well
        return fd, Path(tmp_name)


def write_public_file(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` atomically with a world-readable (0644) file, for a reader running as another user.

    Temp file in the same folder + fsync + ``os.replace``: readers see the old file or the complete
    new one. The temp file is created exclusively (never through an existing entry or link) and a link
    at ``path`` is replaced, not followed. Missing folders are created 0755
    (:func:`ensure_public_dir`); inside the data dir its rules hold (0700 folders, links refused).

    :raises UnsafePath: for a symlink at ``path`` or above it inside the data dir.
    """
    p = Path(os.path.abspath(path))
    ensure_public_dir(p.parent)
    check_safe_path(p)
    fd, tmp = _exclusive_temp(p.parent, p.name)
    with _temp_then_rename(fd, tmp, p, "wb", encoding, PUBLIC_FILE_MODE) as f:
        f.write(data if isinstance(data, bytes) else data.encode(encoding))
    # No fsync of the folder: after a power loss the old (complete) file is still there, and the file is
    # rewritten at every job's end; that saves a sync per job on a busy disk.
    return p


# --------------------------------------------------------------------------------------------
# deleting


def _deletable(path: str | Path) -> tuple[Path, Path]:
    from .errors import UnsafePath

    p = Path(os.path.abspath(path))
    root = private_root(p)
    if root is None or p == root:
        raise UnsafePath(
            f"refusing to delete {p}: not inside beststag's data dir",
            hint="beststag only deletes what it keeps in its data dir",
        )
    check_safe_path(p.parent)
    return p, root


def safe_unlink(path: str | Path, *, missing_ok: bool = True) -> bool:
    """Delete one file inside the data dir without following links; return whether it was there.

    A symlink at ``path`` itself is removed (the link, never its target); a symlink in a folder
    above it is refused.

    :raises UnsafePath: outside the data dir, or through a symlinked folder.
    """
    p, _ = _deletable(path)
    try:
        os.unlink(p)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    return True


def safe_rmtree(path: str | Path) -> bool:
    """Remove a folder inside the data dir with everything in it, never following a link.

    A symlink at ``path`` is unlinked (its target is untouched); links inside the tree are removed
    as links (``shutil.rmtree`` does not follow them). Errors on single entries are ignored.

    :raises UnsafePath: outside the data dir, or through a symlinked folder above ``path``.
    """
    p, _ = _deletable(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(p)
        return True
    shutil.rmtree(p, ignore_errors=True)
    return True
