from __future__ import annotations

import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli import logs
from beststag_cli.config import Settings, load_config
from beststag_cli.logs import SharedRotatingFileHandler, log_event, setup_logging, teardown_logging

# Not shaped like a PAT on purpose: only the configured-secret rule can catch it.
TOKEN = "tok-3f9a1c77-very-secret"
HOOK = "hook-secret-8812"
PAT = "patAbCdEfGhIjKlMn." + "0123456789abcdef" * 4


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.chdir(tmp_path)
    env = {
        "AIRTABLE_TOKEN": TOKEN,
        "AIRTABLE_BASE_ID": "appBBBBBBBBBBBBBB",
        "BESTSTAG_WEBHOOK_SECRET": HOOK,
        "BESTSTAG_DATA_DIR": str(tmp_path / "data"),
    }
    root = logging.getLogger()
    level = root.level
    yield load_config(env=env)
    teardown_logging()
    root.setLevel(level)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def emit_secrets() -> None:
    log = logging.getLogger("beststag_cli.test")
    log.info("token in the message: %s", TOKEN)
    log.warning("webhook secret %s and header %s", HOOK, f"Authorization: Bearer {TOKEN}")
    log.error("a PAT nobody configured: " + PAT)
    log.error("dict arg %(tok)s", {"tok": TOKEN})
    try:
        raise RuntimeError(f"upstream said no to {TOKEN}")
    except RuntimeError:
        log.exception("request failed")
    log.error("extra field", extra={"url": f"https://x/?token={TOKEN}", "nested": {"k": [HOOK]}})
    log_event("gateway.request", token=TOKEN, headers={"Authorization": f"Bearer {PAT}"}, status=200)
    log_event("gateway.failed", _level=logging.ERROR, secret=HOOK)


def assert_clean(text: str) -> None:
    assert TOKEN not in text
    assert HOOK not in text
    assert PAT not in text
    assert PAT[:20] not in text


def test_file_is_json_lines_and_never_holds_a_secret(settings: Settings) -> None:
    stream = io.StringIO()
    path = setup_logging(settings, stream=stream, tty=False)
    assert path == settings.paths.log_file
    emit_secrets()
    text = path.read_text(encoding="utf-8")
    assert_clean(text)
    records = lines(path)
    assert len(records) == 8
    for r in records:
        assert {"ts", "level", "logger", "msg", "pid"} <= set(r)
    assert records[0]["msg"] == "token in the message: ***"
    assert records[1]["msg"] == "webhook secret *** and header Authorization: Bearer ***"
    assert records[2]["msg"] == "a PAT nobody configured: ***"
    assert "upstream said no to ***" in str(records[4]["exc"])
    assert records[5]["url"] == "https://x/?token=***"
    assert records[5]["nested"] == {"k": ["***"]}
    assert records[6]["event"] == "gateway.request"
    assert records[6]["token"] == "***"
    assert records[6]["status"] == 200
    assert records[6]["headers"] == {"Authorization": "Bearer ***"}


def test_rich_console_on_a_terminal_never_shows_a_secret(settings: Settings) -> None:
    from beststag_cli.cli.console_log import rich_handler

    stream = TtyStringIO()
    setup_logging(settings, stream=stream, terminal_handler=rich_handler)
    emit_secrets()
    out = stream.getvalue()
    assert "token in the message" in out  # INFO reaches a terminal
    assert "upstream said no to ***" in out
    assert_clean(out)


def test_json_console(settings: Settings) -> None:
    stream = io.StringIO()
    setup_logging(settings, stream=stream, tty=False, json_mode=True)
    emit_secrets()
    out = stream.getvalue()
    assert_clean(out)
    for line in out.splitlines():
        assert json.loads(line)["level"] == "ERROR"  # not a terminal: errors only


def test_no_terminal_means_errors_only(settings: Settings) -> None:
    stream = io.StringIO()
    path = setup_logging(settings, stream=stream, tty=False)
    logging.getLogger("beststag_cli.x").info("just info")
    logging.getLogger("beststag_cli.x").warning("a warning")
    logging.getLogger("beststag_cli.x").error("real trouble")
    assert stream.getvalue() == "beststag: ERROR: real trouble\n"
    assert path is not None
    assert [r["msg"] for r in lines(path)] == ["just info", "a warning", "real trouble"]


def test_quiet_on_a_terminal(settings: Settings) -> None:
    stream = TtyStringIO()
    setup_logging(settings, quiet=True, stream=stream)
    logging.getLogger("beststag_cli.x").warning("hidden")
    logging.getLogger("beststag_cli.x").error("shown")
    out = stream.getvalue()
    assert "hidden" not in out
    assert "shown" in out


def test_verbose_reaches_debug(settings: Settings) -> None:
    stream = io.StringIO()
    path = setup_logging(settings, verbose=True, stream=stream, tty=False)
    logging.getLogger("beststag_cli.x").debug("details %s", TOKEN)
    assert "details ***" in stream.getvalue()
    assert path is not None
    assert lines(path)[0]["msg"] == "details ***"


def test_default_file_level_skips_debug(settings: Settings) -> None:
    path = setup_logging(settings, stream=io.StringIO(), tty=False)
    logging.getLogger("beststag_cli.x").debug("not kept")
    logging.getLogger("beststag_cli.x").info("kept")
    assert path is not None
    assert [r["msg"] for r in lines(path)] == ["kept"]


def test_setup_twice_does_not_duplicate(settings: Settings) -> None:
    setup_logging(settings, stream=io.StringIO(), tty=False)
    path = setup_logging(settings, stream=io.StringIO(), tty=False)
    logging.getLogger("beststag_cli.x").warning("once")
    assert path is not None
    assert len(lines(path)) == 1


def test_permissions(settings: Settings) -> None:
    old = os.umask(0o022)
    try:
        path = setup_logging(settings, stream=io.StringIO(), tty=False)
    finally:
        os.umask(old)
    logging.getLogger("beststag_cli.x").warning("x")
    assert path is not None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_rotation_keeps_files_private_and_bounded(settings: Settings) -> None:
    settings.logging.max_bytes = 2048
    settings.logging.backups = 2
    path = setup_logging(settings, stream=io.StringIO(), tty=False)
    assert path is not None
    for i in range(200):
        logging.getLogger("beststag_cli.x").warning("line %d %s", i, "x" * 40)
    files = sorted(path.parent.glob("beststag.jsonl*"))
    names = {f.name for f in files}
    assert {"beststag.jsonl", "beststag.jsonl.1", "beststag.jsonl.2"} <= names
    assert "beststag.jsonl.3" not in names
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert lines(path)[-1]["msg"].endswith("x" * 40)  # type: ignore[union-attr]


def test_two_writers_sharing_one_file_lose_no_line(tmp_path: Path) -> None:
    # Two handlers on one file behave like two processes: each rotation is seen by the other.
    path = tmp_path / "logs" / "shared.jsonl"
    (tmp_path / "logs").mkdir()
    a = SharedRotatingFileHandler(path, max_bytes=1024, backup_count=50)
    b = SharedRotatingFileHandler(path, max_bytes=1024, backup_count=50)
    for h in (a, b):
        h.setFormatter(logging.Formatter("%(message)s"))
    for i in range(120):
        rec = logging.LogRecord("x", logging.INFO, __file__, 1, f"line {i:04d} " + "y" * 30, None, None)
        (a if i % 2 else b).emit(rec)
    a.close()
    b.close()
    got = sorted(
        line
        for f in path.parent.glob("shared.jsonl*")
        if not f.name.endswith(".lock")
        for line in f.read_text().splitlines()
    )
    assert got == sorted(f"line {i:04d} " + "y" * 30 for i in range(120))


def test_unwritable_log_dir_falls_back_to_console(settings: Settings) -> None:
    settings.paths.data_dir.mkdir(parents=True)
    settings.paths.logs.write_text("a file where the folder should be")
    stream = io.StringIO()
    assert setup_logging(settings, stream=stream, tty=False) is None
    logging.getLogger("beststag_cli.x").error("still reported")
    assert "still reported" in stream.getvalue()


def test_module_redact_helper(settings: Settings) -> None:
    setup_logging(settings, stream=io.StringIO(), tty=False)
    assert logs.redact(f"x {TOKEN} y {HOOK} Bearer abc4def5") == "x *** y *** Bearer ***"


def test_bad_format_string_neither_crashes_nor_leaks(settings: Settings) -> None:
    path = setup_logging(settings, stream=io.StringIO(), tty=False)
    logging.getLogger("beststag_cli.x").error("two %s %s but one arg", TOKEN)
    assert path is not None
    text = path.read_text()
    assert TOKEN not in text
    assert "unformattable" in text


def test_short_secrets_are_not_masked() -> None:
    r = logs.Redactor(["ab", "", "longer-secret"])
    assert r.redact("ab longer-secret") == "ab ***"
