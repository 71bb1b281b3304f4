"""`./scripts/bench NAME --PART`: a benchmark's parts are flags; an unknown one is refused before anything runs."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main


@pytest.mark.parametrize(
    "argv", [["backup", "--nope"], ["backup", "incremental"], ["startup", "--incremental"]], ids=str
)
def test_an_unknown_part_exits_2_naming_the_parts(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unknown option {argv[1]!r}" in err
    if argv[0] == "backup":
        assert "--incremental (" in err and "--restore (" in err
    else:
        assert "its parts: none" in err
