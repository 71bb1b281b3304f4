"""The pydantic-free settings snapshot used by the cache-hit path."""

from __future__ import annotations

import os
from pathlib import Path

from beststag_cli.config import load_config
from beststag_cli.fastconfig import SNAPSHOT_NAME, fast_settings, save_snapshot


def _repo_config() -> Path:
    return Path(__file__).parent.parent / "config" / "beststag.yaml"


def test_snapshot_matches_the_full_loader(clean_env: Path) -> None:
    clean_env.mkdir(parents=True)
    assert fast_settings(_repo_config()) is None  # nothing saved yet
    full = load_config(_repo_config())
    save_snapshot(full)  # what the CLI does after loading
    fast = fast_settings(_repo_config())
    assert fast is not None
    assert fast.paths == full.paths
    assert fast.base_id == full.base_id and fast.sandbox_mode == full.sandbox_mode
    for t in full.tables:
        assert fast.ttl_for(t) == full.ttl_for(t)
    assert fast.cache.default_ttl_s == full.cache.default_ttl_s
    assert fast.tables["Usuários"].cache_mode == full.tables["Usuários"].cache_mode
    assert (clean_env / SNAPSHOT_NAME).stat().st_mode & 0o777 == 0o600


def test_any_change_invalidates_the_snapshot(clean_env: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clean_env.mkdir(parents=True)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_repo_config().read_text().replace("data_dir: ../var", f"data_dir: {clean_env}"))
    save_snapshot(load_config(cfg))
    assert fast_settings(cfg) is not None
    cfg.write_text(cfg.read_text().replace("default_ttl_s: 300", "default_ttl_s: 301"))
    assert fast_settings(cfg) is None
    save_snapshot(load_config(cfg))
    assert fast_settings(cfg).cache.default_ttl_s == 301  # type: ignore[union-attr]
    monkeypatch.setenv("AIRTABLE_TOKEN", "patSecret")
    assert fast_settings(cfg) is None  # a token appears: sandbox mode ends


def test_snapshot_holds_no_secret(clean_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clean_env.mkdir(parents=True)
    monkeypatch.setenv("AIRTABLE_TOKEN", "patTOPSECRETvalue1234")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appBBBBBBBBBBBBBB")
    monkeypatch.delenv("BESTSTAG_SANDBOX")
    monkeypatch.setenv("BESTSTAG_WEBHOOK_SECRET", "hooksecret-xyz-987")
    save_snapshot(load_config(_repo_config()))
    text = (clean_env / SNAPSHOT_NAME).read_text()
    assert "patTOPSECRET" not in text and "hooksecret" not in text
    assert fast_settings(_repo_config(), env=dict(os.environ)) is not None
