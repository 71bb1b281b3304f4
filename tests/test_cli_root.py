"""The CLI root: global options, version, the error → exit code mapping, doctor."""

from __future__ import annotations

from pathlib import Path

from beststag_cli import __version__
from beststag_cli.errors import EXIT_BAD_INPUT, all_error_classes


def test_version(cli) -> None:
    r = cli("--version")
    assert r.exit_code == 0 and __version__ in r.stdout


def test_unknown_command_is_bad_input(cli) -> None:
    r = cli("nope")
    assert r.exit_code == EXIT_BAD_INPUT
    assert "Traceback" not in r.stdout + r.stderr


def test_doctor_passes_on_the_sandbox(cli) -> None:
    r = cli("--json", "doctor")
    assert r.exit_code == 0, r
    data = r.json()
    assert data["healthy"] is True
    assert {c["name"] for c in data["checks"]} >= {"config", "token", "base", "tables", "data_dir", "locks"}
    assert "sandbox mode" in next(c for c in data["checks"] if c["name"] == "token")["message"]


def test_doctor_fails_on_a_missing_table_with_a_suggestion(cli, tmp_path: Path) -> None:
    shipped = (Path(__file__).parent.parent / "config" / "beststag.yaml").read_text()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(shipped.replace("tables:\n", "tables:\n  Memoria Contextual: {}\n", 1))
    r = cli("--json", "--config", str(cfg), "doctor")
    assert r.exit_code == 1, r
    tables = next(c for c in r.json()["checks"] if c["name"] == "tables")
    assert tables["status"] == "fail"
    assert '"Memoria Contextual"; did you mean "Memória Contextual"?' in tables["message"]
    r = cli("--config", str(cfg), "doctor")
    assert r.exit_code == 1
    assert "doctor: 1 check(s) failed: tables" in r.stderr.replace("\n", " ")
    assert "Traceback" not in r.stderr


def test_bad_config_is_one_line_exit_2(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("cache:\n  default_ttl_s: abc\n")
    r = cli("--config", str(cfg), "doctor")
    assert r.exit_code == 2
    assert "cache.default_ttl_s" in r.stderr and "bad.yaml" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 2
    assert "Traceback" not in r.stderr


def test_json_errors_are_objects_on_stdout(cli, tmp_path: Path) -> None:
    r = cli("--json", "--config", str(tmp_path / "missing.yaml"), "doctor")
    assert r.exit_code == 2
    err = r.json()["error"]
    assert err["type"] == "config_error" and "missing.yaml" in err["message"]


def test_exit_codes_follow_the_published_table() -> None:
    allowed = {1, 2, 3, 4, 75, 130, 143}
    for cls in all_error_classes():
        assert cls.exit_code in allowed, cls
    kinds = [c.kind for c in all_error_classes()]
    assert len(kinds) == len(set(kinds))


def test_sandbox_info_and_seed(cli) -> None:
    r = cli("--json", "sandbox", "info")
    assert r.exit_code == 0, r
    info = r.json()
    assert info["base_id"] == "appBestStagSandbx" and info["token"] == "sandbox"
    counts = {t["name"]: t["records"] for t in info["tables"]}
    assert counts["Interações"] == 1000
    r = cli("--json", "sandbox", "seed", "--scale", "0.1", "--yes")
    assert r.exit_code == 0, r
    assert r.json()["tables"]["Interações"] == 100


def test_quiet_prints_nothing_but_json_still_does(cli) -> None:
    r = cli("--quiet", "cache", "get", "Tarefas", "--max", "2")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    r = cli("--quiet", "--json", "cache", "get", "Tarefas", "--max", "2")
    assert r.exit_code == 0 and len(r.json()["records"]) == 2
    r = cli("--quiet", "cache", "get", "Tarefaz")
    assert r.exit_code == 2 and r.stderr.startswith("error:")  # errors still reach stderr
