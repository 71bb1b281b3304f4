from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beststag_cli import fsutil


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(autouse=True)
def data_root(tmp_path: Path) -> Path:
    """tmp_path is a data dir: private modes and the no-symlink rule apply inside it."""
    return fsutil.register_private_root(tmp_path)


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every data dir (like the user's cwd or /tmp)."""
    return tmp_path_factory.mktemp("outside")


@pytest.fixture(params=[0o022, 0o000, 0o077], ids=["umask022", "umask000", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_ensure_private_dir_creates_nested_0700(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert fsutil.ensure_private_dir(target) == target
    for p in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert p.is_dir()
        assert mode(p) == 0o700


def test_ensure_private_dir_tightens_existing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    os.chmod(d, 0o755)
    fsutil.ensure_private_dir(d)
    assert mode(d) == 0o700
    fsutil.ensure_private_dir(d)  # idempotent
    assert mode(d) == 0o700


def test_ensure_private_dir_rejects_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError):
        fsutil.ensure_private_dir(f)


def test_private_open_creates_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    p = tmp_path / "sub" / "secret.txt"
    with fsutil.private_open(p, "w") as f:
        f.write("one\n")
    assert mode(p) == 0o600
    assert mode(p.parent) == 0o700
    with fsutil.private_open(p, "a") as f:
        f.write("two\n")
    assert p.read_text() == "one\ntwo\n"
    with fsutil.private_open(p, "wb") as f:
        f.write(b"bin")
    assert p.read_bytes() == b"bin"


def test_private_open_tightens_an_existing_file(tmp_path: Path) -> None:
    p = tmp_path / "loose"
    p.write_text("x")
    os.chmod(p, 0o644)
    with fsutil.private_open(p, "a") as f:
        f.write("y")
    assert mode(p) == 0o600
    assert p.read_text() == "xy"


def test_private_open_x_mode_refuses_existing(tmp_path: Path) -> None:
    p = tmp_path / "once"
    with fsutil.private_open(p, "x") as f:
        f.write("1")
    with pytest.raises(FileExistsError):
        fsutil.private_open(p, "x")


def test_private_open_rejects_read_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        fsutil.private_open(tmp_path / "f", "r")


def test_atomic_write_replaces_and_is_private(tmp_path: Path, umask: int) -> None:
    p = tmp_path / "out" / "state.json"
    fsutil.atomic_write(p, "first")
    fsutil.atomic_write(p, b"second")
    assert p.read_bytes() == b"second"
    assert mode(p) == 0o600
    assert [x.name for x in p.parent.iterdir()] == ["state.json"]  # no temp files left


def test_atomic_writer_keeps_old_content_on_error(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    fsutil.atomic_write(p, "old")
    with pytest.raises(RuntimeError), fsutil.atomic_writer(p) as f:
        f.write("half-written")
        raise RuntimeError("crash in the middle")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_atomic_writer_rejects_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError), fsutil.atomic_writer(tmp_path / "f", "a"):
        pass


def test_write_private_file_non_atomic(tmp_path: Path) -> None:
    p = tmp_path / "plain.txt"
    fsutil.write_private_file(p, "hello", atomic=False)
    assert p.read_text() == "hello"
    assert mode(p) == 0o600


def test_touch_private(tmp_path: Path, umask: int) -> None:
    p = tmp_path / "d" / "lock"
    fsutil.touch_private(p)
    fsutil.touch_private(p)
    assert p.read_bytes() == b""
    assert mode(p) == 0o600


# ---- outside the data dir: never chmod what beststag did not create (issue 15, defect 13)


@pytest.mark.parametrize("dir_mode", [0o755, 0o1777], ids=["0755", "sticky-1777"])
def test_writing_a_file_outside_the_data_dir_keeps_its_folder_mode(outside: Path, dir_mode: int) -> None:
    d = outside / "public"
    d.mkdir()
    os.chmod(d, dir_mode)
    old = os.umask(0o022)
    try:
        fsutil.atomic_write(d / "report.html", "<html>")
        fsutil.ensure_private_dir(d)
        fsutil.ensure_dir(d)
        with fsutil.private_open(d / "x.log", "a") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert mode(d) == dir_mode
    assert mode(d / "report.html") == 0o644  # 0666 minus the user's umask, like any tool's output
    assert [x for x in d.iterdir() if x.name.startswith(".")] == []


def test_replacing_a_file_outside_the_data_dir_keeps_its_mode(outside: Path) -> None:
    f = outside / "report.html"
    f.write_text("old")
    os.chmod(f, 0o640)
    fsutil.atomic_write(f, "new")
    assert f.read_text() == "new" and mode(f) == 0o640
    g = outside / "mine.txt"
    g.write_text("x")
    os.chmod(g, 0o644)
    with fsutil.private_open(g, "a") as fh:
        fh.write("y")
    assert mode(g) == 0o644  # not ours to tighten


def test_missing_folders_outside_are_created_per_umask(outside: Path) -> None:
    old = os.umask(0o022)
    try:
        fsutil.atomic_write(outside / "a" / "b" / "r.html", "x")
    finally:
        os.umask(old)
    assert mode(outside / "a") == 0o755 and mode(outside / "a" / "b") == 0o755


def test_a_link_outside_the_data_dir_is_the_users_and_is_followed(outside: Path) -> None:
    real = outside / "real.html"
    real.write_text("old")
    link = outside / "link.html"
    link.symlink_to(real)
    fsutil.atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


# ---- inside the data dir: symlinks are refused, never followed (issue 15, defect 14)


def _snapshot(p: Path) -> dict[str, tuple[int, bytes | None]]:
    out = {}
    for x in [p, *sorted(p.rglob("*"))] if p.is_dir() else [p]:
        st = os.lstat(x)
        out[str(x)] = (st.st_mode, x.read_bytes() if x.is_file() else None)
    return out


@pytest.fixture
def target(outside: Path) -> Path:
    t = outside / "target"
    t.mkdir()
    os.chmod(t, 0o755)
    (t / "victim").write_text("precious")
    os.chmod(t / "victim", 0o644)
    return t


WRITERS = {
    "ensure_private_dir": lambda p: fsutil.ensure_private_dir(p),
    "private_open_a": lambda p: fsutil.private_open(p / "f.log", "a").close(),
    "private_open_w": lambda p: fsutil.private_open(p / "f.log", "w").close(),
    "touch_private": lambda p: fsutil.touch_private(p / "f.lock"),
    "atomic_write": lambda p: fsutil.atomic_write(p / "f.json", "{}"),
    "write_private_file": lambda p: fsutil.write_private_file(p / "f.json", "{}", atomic=False),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_symlinked_folder_in_the_data_dir_is_refused(tmp_path: Path, target: Path, writer: str) -> None:
    from beststag_cli.errors import UnsafePath

    (tmp_path / "var").mkdir()
    link = tmp_path / "var" / "logs"
    link.symlink_to(target)
    before = _snapshot(target)
    with pytest.raises(UnsafePath) as e:
        WRITERS[writer](link / "deeper" if writer == "ensure_private_dir" else link)
    assert str(link) in e.value.message and "\n" not in e.value.message
    assert _snapshot(target) == before


FILE_WRITERS = {
    "private_open_a": lambda p: fsutil.private_open(p, "a").close(),
    "private_open_w": lambda p: fsutil.private_open(p, "w").close(),
    "private_open_r+": lambda p: fsutil.private_open(p, "r+").close(),
    "touch_private": lambda p: fsutil.touch_private(p),
    "atomic_write": lambda p: fsutil.atomic_write(p, "{}"),
    "ensure_private_dir": lambda p: fsutil.ensure_private_dir(p),
}


@pytest.mark.parametrize("writer", sorted(FILE_WRITERS))
def test_a_symlinked_file_in_the_data_dir_is_refused(tmp_path: Path, target: Path, writer: str) -> None:
    from beststag_cli.errors import UnsafePath

    link = tmp_path / "beststag.jsonl"
    link.symlink_to(target / ("victim" if writer != "ensure_private_dir" else ""))
    before = _snapshot(target)
    with pytest.raises(UnsafePath):
        FILE_WRITERS[writer](link)
    assert _snapshot(target) == before
    assert link.is_symlink()


def test_a_fifo_in_the_data_dir_is_refused_not_blocked_on(tmp_path: Path) -> None:
    from beststag_cli.errors import UnsafePath

    fifo = tmp_path / "beststag.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePath):
        fsutil.private_open(fifo, "a")


def test_safe_delete_never_leaves_the_data_dir(tmp_path: Path, target: Path, outside: Path) -> None:
    from beststag_cli.errors import UnsafePath

    att = tmp_path / "backups" / "attachments"
    att.mkdir(parents=True)
    (att / "ab").symlink_to(target)
    before = _snapshot(target)
    with pytest.raises(UnsafePath):
        fsutil.safe_unlink(att / "ab" / "victim")
    with pytest.raises(UnsafePath):
        fsutil.safe_rmtree(att / "ab" / "sub")
    assert fsutil.safe_rmtree(att / "ab")  # the link itself goes, never what it points to
    assert not os.path.lexists(att / "ab")
    (att / "cd").symlink_to(target / "victim")
    assert fsutil.safe_unlink(att / "cd")
    with pytest.raises(UnsafePath):
        fsutil.safe_unlink(outside / "target" / "victim")
    with pytest.raises(UnsafePath):
        fsutil.safe_rmtree(tmp_path)
    assert _snapshot(target) == before
    real = att / "ef"
    real.mkdir()
    (real / "blob").write_bytes(b"x")
    (real / "escape").symlink_to(target)
    assert fsutil.safe_rmtree(real) and not real.exists()
    assert _snapshot(target) == before


# ---- property: whatever links are planted where, no helper changes anything outside the data dir


_SPOTS = (
    "logs",
    "logs/beststag.jsonl",
    "cache",
    "backups",
    "backups/attachments",
    "backups/attachments/ab",
    "backups/attachments/ab/blob",
    "metrics",
    "metrics/beststag.prom",
    "locks",
    "locks/x.lock",
)


@given(
    links=st.sets(st.sampled_from(_SPOTS), max_size=4),
    op=st.sampled_from(["dir", "open_a", "touch", "atomic", "unlink", "rmtree"]),
    spot=st.sampled_from(_SPOTS),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_planted_links_never_reach_outside(
    tmp_path: Path, outside: Path, links: set[str], op: str, spot: str
) -> None:
    import shutil
    import uuid

    from beststag_cli.errors import UnsafePath

    data = tmp_path / f"var-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    target = outside / f"t-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    (target / "victim").write_text("precious")
    (target / "blob").write_text("precious too")
    for rel in sorted(links, key=len):
        p = data / rel
        if os.path.lexists(p) or any(os.path.islink(q) for q in p.parents if data in q.parents):
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target if "." not in rel and rel != "backups/attachments/ab/blob" else target / "victim")
    before = _snapshot(target)
    path = data / spot
    ops = {
        "dir": lambda: fsutil.ensure_private_dir(path),
        "open_a": lambda: fsutil.private_open(path, "a").close(),
        "touch": lambda: fsutil.touch_private(path),
        "atomic": lambda: fsutil.atomic_write(path, "x"),
        "unlink": lambda: fsutil.safe_unlink(path),
        "rmtree": lambda: fsutil.safe_rmtree(path),
    }
    try:
        ops[op]()
    except (UnsafePath, IsADirectoryError, NotADirectoryError, FileExistsError):
        pass
    assert _snapshot(target) == before
    shutil.rmtree(data)
