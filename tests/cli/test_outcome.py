"""cli/outcome.py: the one failure → line + exit code mapping the full CLI (cli/main.py:run) and the read-only
fast path (cli/readonly.py:_run) share (issue 17). End to end, tests/test_startup_imports.py checks the two
doors answer a failure byte for byte alike; here, each kind of failure and that neither door maps on its own."""

from __future__ import annotations

import ast
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from beststag_cli import errors
from beststag_cli.cli import main, readonly
from beststag_cli.cli.outcome import BUG_HINT, report_failure
from beststag_cli.cli.state import STATE

OURS: list[errors.BestStagError] = [
    errors.BadInput("--data is not valid JSON", hint="h"),
    errors.FilterError("bad filter"),
    errors.PartialSuccess("2 of 3 tables"),
    errors.UpstreamUnavailable("Airtable answered 503"),
    errors.LockHeld("held by pid 1"),
    errors.Interrupted(signal.SIGTERM),
    errors.DiskFull("/data/x", 10),
    errors.BackupBroken("critical/x", "a.json", "missing"),
]


@pytest.fixture
def json_mode() -> Iterator[None]:
    STATE.reset()
    STATE.json = True
    yield
    STATE.reset()


@pytest.mark.parametrize("e", OURS, ids=lambda e: type(e).__name__)
def test_our_errors_are_their_kind_message_hint_and_code(
    e: errors.BestStagError, json_mode: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_failure(e, tmp_path) is e.exit_code
    out = capsys.readouterr()
    assert json.loads(out.out) == {"error": {"type": e.kind, "message": e.message, "hint": e.hint}}
    assert out.err == ""


def test_ctrl_c_is_130_and_a_bug_is_one_line_exit_1(
    json_mode: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_failure(KeyboardInterrupt(), tmp_path) is errors.ExitStatus.SIGINT
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "interrupted"
    STATE.emitted = False
    assert report_failure(ZeroDivisionError("division by zero"), tmp_path) is errors.ExitStatus.FAILED
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "error": {"type": "internal_error", "message": "ZeroDivisionError: division by zero", "hint": BUG_HINT}
    }


def test_verbose_adds_the_traceback_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    STATE.reset()
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        assert report_failure(e, tmp_path, verbose=True) is errors.ExitStatus.FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: RuntimeError: boom") and "Traceback (most recent call last)" in err


@pytest.mark.parametrize("module", [main, readonly], ids=["main", "readonly"])
def test_no_door_maps_failures_itself(module: object) -> None:
    # the mapping lives in cli/outcome.py only: a door printing `internal_error` or catching BestStagError
    # again would be the duplicate issue 17 removed
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    handled = [ast.unparse(h.type) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and h.type is not None]
    assert not [h for h in handled if "BestStagError" in h], handled
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "this is a bug; run again with -v for the traceback and report it" not in strings
