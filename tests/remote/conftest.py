"""Real servers for the multi-host tests: Debian's `redis-server` and moto's S3 server, on loopback.

Each pytest worker starts its own servers once (session fixtures) on free ports, as subprocesses,
and stops them at the end. A missing binary or package skips the tests that need it, with the
reason, on a developer's machine; with `CI` set it fails them instead (`scripts/test` installs
both, so in CI a skip would only hide a broken install step).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .limiters import LimiterFactory


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every server must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: tests that need it must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {err}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis-server --port <free> --save '' --appendonly no` on 127.0.0.1; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (scripts/test installs Debian's redis-server when run as root)")
    try:
        import redis
    except ImportError:
        unavailable("the redis package is not installed (pip install -e '.[remote,test]')")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    log = workdir / "redis.log"  # a file, not a pipe nobody reads (a full pipe would block the server)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--loglevel",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        _wait(client.ping, proc, "redis-server", log)
        yield url
    finally:
        client.close()
        _stop(proc)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    yield redis_server


@pytest.fixture
def make_redis(redis_url: str) -> Iterator[LimiterFactory]:
    """Builds Redis limiters on this test's (emptied) Redis, closed at the end: one per simulated host."""
    from beststag_cli.gateway.redis_ratelimit import RedisRateLimiter

    with LimiterFactory(lambda **kw: RedisRateLimiter(redis_url, **kw)) as build:
        yield build


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m moto.server -p <free>` on 127.0.0.1 (an S3-compatible endpoint); yields its URL."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("boto3 and moto[server] are not installed (pip install -e '.[remote,test]')")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    workdir = tmp_path_factory.mktemp("moto")
    log = workdir / "moto.log"  # it logs every request: a pipe nobody reads would fill and block it
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1) as r:
            return bool(r.status == 200)

    try:
        _wait(up, proc, "moto_server", log, timeout=240)  # a loaded CI box starts it slowly
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh bucket on the session's S3 server, and the AWS variables boto3 reads."""
    import boto3

    for k, v in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    bucket = f"bs-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return {"endpoint": s3_server, "bucket": bucket, "remote": f"s3://{bucket}/beststag"}


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    """A config file with the given sections (everything else: built-in defaults)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(sections, allow_unicode=True), encoding="utf-8")
    return path
