"""A token set in the environment appears in no output, error, log line or traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

CANARY = "patCANARYcanary123." + "0123456789abcdef" * 4


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    shipped = (Path(__file__).parent.parent / "config" / "beststag.yaml").read_text()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(shipped.replace("max_retries: 5", "max_retries: 0").replace("data_dir: ../var", "data_dir: var"))
    monkeypatch.setenv("AIRTABLE_TOKEN", CANARY)
    monkeypatch.delenv("BESTSTAG_SANDBOX")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appBestStagSandbx")
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: refused at once
    return cfg


def _everything_written(data_dir: Path, *texts: str) -> str:
    logs = "".join(p.read_text(errors="replace") for p in data_dir.rglob("*.jsonl*") if p.is_file())
    return "".join(texts) + logs


@pytest.mark.parametrize("flags", [[], ["--json"], ["-v"], ["--json", "-v"]])
def test_canary_token_never_leaks(cli, canary_env: Path, clean_env: Path, flags: list[str]) -> None:
    r = cli(*flags, "--config", str(canary_env), "doctor")
    assert r.exit_code == 1, r
    assert "did not answer" in r.stdout + r.stderr and "127.0.0.1" in r.stdout  # the failure is explained...
    assert CANARY not in _everything_written(clean_env, r.stdout, r.stderr)  # ...without the token
    assert CANARY[:20] not in r.stdout + r.stderr


def test_config_repr_and_dump_hide_the_token(canary_env: Path) -> None:
    from beststag_cli.config import load_config

    s = load_config(canary_env)
    assert s.api_token() == CANARY
    assert CANARY not in repr(s) and CANARY not in s.model_dump_json() and CANARY not in str(s.model_dump())
