"""A small private tmpfs for the disk-full and read-only tests (root only: root ignores file modes,
so a full or read-only disk must be real). One helper for every test that needs one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a `size` tmpfs (mode 0700) at `where` (created if missing) for the block; skip unless it can be."""
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs needs root (mount -t tmpfs -o size={size})")
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()[:200]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
