"""Sandbox mode only on purpose: token / base id / BESTSTAG_SANDBOX combinations, through the real console
script (exit codes are the point), the snapshot fast path, and the cron wrapper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beststag_cli.config import SANDBOX_BASE_ID, load_config
from beststag_cli.errors import ConfigError
from beststag_cli.fastconfig import SNAPSHOT_NAME, fast_settings, save_snapshot

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "scripts" / "cron-job"
TOKEN = "pat" + "MODESxx1234567" + "." + "ab" * 32
BASE = "appBBBBBBBBBBBBBB"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _env(**kw: str | None) -> dict[str, str]:
    env = os.environ.copy()
    env.pop("BESTSTAG_SANDBOX", None)  # the fixture's explicit sandbox mode: each case sets its own
    for k, v in kw.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AIRTABLE_TOKEN": TOKEN}, "AIRTABLE_BASE_ID"),  # was an AssertionError reported as a bug (exit 1)
        ({"AIRTABLE_BASE_ID": BASE}, "BESTSTAG_SANDBOX=1"),  # was sandbox mode, then "the token's scopes"
        ({"AIRTABLE_TOKEN": TOKEN, "AIRTABLE_BASE_ID": BASE, "BESTSTAG_SANDBOX": "1"}, "both set"),
        ({"AIRTABLE_API_KEY": TOKEN, "BESTSTAG_SANDBOX": "1"}, "both set"),
    ],
)
def test_a_configuration_that_is_not_one_clear_mode_exits_2_with_one_line(
    clean_env: Path, env: dict[str, str], needle: str
) -> None:
    r = _run(_env(**env), "backup", "list")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "bug" not in r.stderr and TOKEN not in r.stderr + r.stdout
    assert not (clean_env / "sandbox").exists()  # nothing was touched: the sample base was never opened


def test_a_base_id_without_a_token_says_what_to_set(clean_env: Path) -> None:
    r = _run(_env(AIRTABLE_BASE_ID=BASE), "--json", "doctor")
    assert r.returncode == 2, r
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "config_error"
    assert "AIRTABLE_TOKEN" in err["hint"] and "BESTSTAG_SANDBOX=1" in err["hint"], err
    assert "scope" not in json.dumps(err)


@pytest.mark.parametrize(
    "env", [{"BESTSTAG_SANDBOX": "1"}, {}, {"BESTSTAG_SANDBOX": "1", "AIRTABLE_BASE_ID": SANDBOX_BASE_ID}]
)
def test_sandbox_mode_when_asked_for_or_when_nothing_is_configured(clean_env: Path, env: dict[str, str]) -> None:
    r = _run(_env(**env), "--json", "sandbox", "info")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["base_id"] == SANDBOX_BASE_ID


def test_the_test_suite_runs_sandbox_mode_explicitly() -> None:
    assert os.environ.get("BESTSTAG_SANDBOX") == "1"
    assert load_config().sandbox_mode


@given(token=st.booleans(), base=st.sampled_from([None, SANDBOX_BASE_ID, BASE]), sandbox=st.booleans())
def test_mode_rule_is_sandbox_only_on_purpose(token: bool, base: str | None, sandbox: bool) -> None:
    from beststag_cli.fastconfig import mode_problem

    problem = mode_problem(token=token, base_id=base, sandbox=sandbox)
    if token:  # Airtable: needs its base, and never the sandbox flag
        assert (problem is None) == (base is not None and not sandbox)
    else:  # sandbox mode: asked for, or nothing that names a real base
        assert (problem is None) == (sandbox or base in (None, SANDBOX_BASE_ID))


def test_the_snapshot_fast_path_refuses_where_the_full_loader_does(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.mkdir(parents=True)
    monkeypatch.setenv("AIRTABLE_BASE_ID", BASE)
    save_snapshot(load_config())  # BESTSTAG_SANDBOX=1 (the fixture): a good snapshot for these settings
    assert fast_settings() is not None
    monkeypatch.delenv("BESTSTAG_SANDBOX")
    assert fast_settings() is None  # the flag is part of the fingerprint
    with pytest.raises(ConfigError, match="AIRTABLE_TOKEN is not set"):
        load_config()
    # a snapshot left by an older rule (same fingerprint, sandbox mode for a real base id): never answers
    path = clean_env / SNAPSHOT_NAME
    snap = json.loads(path.read_text())
    snap["settings"]["airtable"]["sandbox"] = False
    path.write_text(json.dumps(snap))
    monkeypatch.setenv("BESTSTAG_SANDBOX", "1")
    assert fast_settings() is None


# ---- the cron wrapper


def _env_file(tmp_path: Path, data_dir: Path, body: str) -> Path:
    f = tmp_path / "beststag.env"
    f.write_text(f"BESTSTAG_DATA_DIR={data_dir}\n{body}", encoding="utf-8")
    f.chmod(0o600)
    return f


def _wrapper(env_file: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "BESTSTAG_BIN": str(Path(sys.executable).parent / "beststag"),
        **(extra or {}),
    }
    return subprocess.run(
        [str(WRAPPER), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=120,
    )


@pytest.fixture
def seeded(clean_env: Path, _sample_db: Path) -> Path:
    (clean_env / "sandbox").mkdir(parents=True)
    shutil.copy(_sample_db, clean_env / "sandbox" / "base.sqlite")
    return clean_env


@pytest.mark.parametrize("body", ["", "BESTSTAG_SANDBOX=1\n", f"AIRTABLE_BASE_ID={BASE}\n"])
def test_cron_job_refuses_sandbox_mode_unless_asked(tmp_path: Path, seeded: Path, body: str) -> None:
    r = _wrapper(_env_file(tmp_path, seeded, body), "cache", "prune")
    assert r.returncode == 2, r
    assert "refusing" in r.stderr and "BESTSTAG_ALLOW_SANDBOX=1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (seeded / "logs").exists()  # beststag never ran


def test_cron_job_refuses_a_sandbox_flag_next_to_a_token(tmp_path: Path, seeded: Path) -> None:
    r = _wrapper(_env_file(tmp_path, seeded, f"AIRTABLE_TOKEN={TOKEN}\nBESTSTAG_SANDBOX=1\n"), "cache", "prune")
    assert r.returncode == 2 and "BESTSTAG_ALLOW_SANDBOX=1" in r.stderr, r


@pytest.mark.parametrize("off", ["0", "false", "No", "OFF"])
def test_cron_job_reads_a_sandbox_flag_that_says_no_like_the_loader(tmp_path: Path, seeded: Path, off: str) -> None:
    """Found by review: `BESTSTAG_SANDBOX=false`, which the loader reads as False, was refused as a sandbox."""
    r = _wrapper(
        _env_file(
            tmp_path, seeded, f"AIRTABLE_TOKEN={TOKEN}\nAIRTABLE_BASE_ID=appBestStagSandbx\nBESTSTAG_SANDBOX={off}\n"
        ),
        "cache",
        "prune",
    )
    assert "cron-job:" not in r.stderr, r


@pytest.mark.parametrize("where", ["file", "environment"])
def test_cron_job_runs_the_sandbox_when_asked(tmp_path: Path, seeded: Path, where: str) -> None:
    allow = "BESTSTAG_ALLOW_SANDBOX=1\n" if where == "file" else ""
    r = _wrapper(
        _env_file(tmp_path, seeded, allow),
        "cache",
        "prune",
        extra={"BESTSTAG_ALLOW_SANDBOX": "1"} if where == "environment" else None,
    )
    assert (r.returncode, r.stderr) == (0, ""), r


def _config_file(tmp_path: Path, airtable: str) -> Path:
    f = tmp_path / "beststag.yaml"
    f.write_text(f"airtable:\n{airtable}", encoding="utf-8")
    f.chmod(0o600)
    return f


@pytest.mark.parametrize("how", ["BESTSTAG_CONFIG", "--config"])
def test_cron_job_accepts_a_token_kept_in_the_config_file(tmp_path: Path, seeded: Path, how: str) -> None:
    """Found by review: the wrapper looked for AIRTABLE_TOKEN in the environment only, so a token in
    the config file (airtable.token, which the loader reads) made every job exit 2."""
    conf = _config_file(tmp_path, f"  token: {TOKEN}\n  base_id: {BASE}\n")
    body = f"BESTSTAG_CONFIG={conf}\n" if how == "BESTSTAG_CONFIG" else ""
    args = ["cache", "prune"] + (["--config", str(conf)] if how == "--config" else [])
    r = _wrapper(_env_file(tmp_path, seeded, body), *args)
    assert (r.returncode, r.stderr) == (0, ""), r
    assert TOKEN not in r.stdout + r.stderr


def test_cron_job_still_refuses_a_config_file_without_a_token(tmp_path: Path, seeded: Path) -> None:
    conf = _config_file(tmp_path, "  timeout_s: 20\n")
    r = _wrapper(_env_file(tmp_path, seeded, f"BESTSTAG_CONFIG={conf}\n"), "cache", "prune")
    assert r.returncode == 2, r
    assert "refusing" in r.stderr and "airtable.token" in r.stderr and "BESTSTAG_ALLOW_SANDBOX=1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (seeded / "logs").exists()  # beststag never ran


def test_cron_job_says_why_a_configuration_that_does_not_load_is_refused(tmp_path: Path, seeded: Path) -> None:
    conf = _config_file(tmp_path, "  timeout_s: soon\n")
    r = _wrapper(_env_file(tmp_path, seeded, f"BESTSTAG_CONFIG={conf}\n"), "cache", "prune")
    assert r.returncode == 2, r
    assert "does not load" in r.stderr and "timeout_s" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
