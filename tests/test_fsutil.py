from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli import fsutil


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


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
