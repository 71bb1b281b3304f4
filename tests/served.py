"""`beststag sandbox serve` in a subprocess for the tests that need a real HTTP Airtable (other processes,
other hosts): the one copy of the start-up handshake (the "sandbox serving URL" line) and the stop, which
used to be written out in four test modules (found by `duplicates`, issue 17)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def serve_sandbox(env: Mapping[str, str], *flags: str) -> Iterator[str]:
    """The served sandbox's base URL, on a free loopback port (`--port 0`), with `flags` (`--rate-limit`,
    `--latency-ms N`, …); its data dir is env's BESTSTAG_DATA_DIR. Stopped on exit, also when it failed to
    start (the assertion names its stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "beststag_cli", "sandbox", "serve", "--port", "0", *flags],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("sandbox serving http://"), line + (proc.stderr.read() if proc.stderr else "")
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
