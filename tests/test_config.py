from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from beststag_cli import config as cfg
from beststag_cli.config import (
    AIRTABLE_ENDPOINT_URL,
    BESTSTAG_TABLES,
    SANDBOX_BASE_ID,
    SANDBOX_ENDPOINT_URL,
    Settings,
    load_config,
)
from beststag_cli.errors import EXIT_BAD_INPUT, BadInput, ConfigError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config" / "beststag.yaml"
TOKEN = "patAbCdEfGhIjKlMn." + "0123456789abcdef" * 4


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (so ./config/beststag.yaml is absent unless a test writes it)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(text: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    path = write(cwd / "config" / "beststag.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith("config/beststag.yaml: "), message
    return message


# ---- defaults and the shipped file


def test_defaults_without_any_file(cwd: Path) -> None:
    s = load_config(env={})
    assert s.config_path is None
    assert s.data_dir == cwd / "var"
    assert s.sandbox_mode
    assert s.airtable.base_id == SANDBOX_BASE_ID
    assert s.airtable.endpoint_url == SANDBOX_ENDPOINT_URL
    assert s.api_token() == "sandbox"
    assert s.airtable.rate_limit_per_s == 5
    assert s.cache.default_ttl_s == 300
    assert s.cache.mirror_max_records == 2000
    assert list(s.tables) == [*BESTSTAG_TABLES, "Métricas"]
    assert s.backup.of("incremental").tables == ["Usuários", "Interações", "Tarefas", "Eventos"]
    assert s.backup.of("complete").tables == list(BESTSTAG_TABLES)
    assert s.backup.of("critical").tables == ["Usuários", "Interações"]
    assert s.backup.of("incremental").schedule == "0 0 * * *"
    assert s.backup.of("complete").schedule == "0 2 * * 0"
    assert s.backup.of("critical").schedule == "30 */4 * * *"
    assert (s.metrics.schedules.usage, s.metrics.schedules.performance, s.metrics.schedules.storage) == (
        "5 0 * * *",
        "0 * * * *",
        "0 3 * * 0",
    )
    assert s.metrics.plan_record_limit == 50000
    assert s.alerts.cache_hit_ratio_min == 0.60
    assert s.alerts.response_time_max_s == 5.0
    assert s.alerts.error_rate_max == 0.05
    assert s.alerts.storage_usage_max == 0.80
    assert (s.webhook.host, s.webhook.port) == ("127.0.0.1", 8787)


def test_paths_helpers(cwd: Path) -> None:
    p = load_config(env={"BESTSTAG_DATA_DIR": "d"}).paths
    d = cwd / "d"
    assert p.data_dir == d
    assert p.cache_dir == d / "cache"
    assert p.journal == d / "journal.sqlite"
    assert p.backups == d / "backups"
    assert p.logs == d / "logs"
    assert p.log_file == d / "logs" / "beststag.jsonl"
    assert p.metrics == d / "metrics"
    assert p.sandbox_db == d / "sandbox" / "base.sqlite"
    assert p.locks == d / "locks"


def test_shipped_config_loads_and_equals_the_builtin_defaults(cwd: Path) -> None:
    s = load_config(SHIPPED, env={})
    assert s.config_path == SHIPPED
    assert s.data_dir == REPO / "var"  # ../var relative to config/
    defaults = cfg.default_settings(REPO / "var")
    assert s.model_dump() == defaults.model_dump()


def test_ttl_for(cwd: Path) -> None:
    s = load_config(env={})
    assert s.ttl_for("Interações") == 120
    assert s.ttl_for("Métricas") == 300  # no ttl_s: the default
    assert s.ttl_for("unknown") == 300


def test_backup_of_unknown_type_is_bad_input(cwd: Path) -> None:
    with pytest.raises(BadInput):
        load_config(env={}).backup.of("hourly")


# ---- search order


def test_explicit_path_wins_over_env_and_cwd(cwd: Path, tmp_path: Path) -> None:
    write(cwd / "config" / "beststag.yaml", "cache: {default_ttl_s: 1}\n")
    env_file = write(tmp_path / "env.yaml", "cache: {default_ttl_s: 2}\n")
    explicit = write(tmp_path / "explicit.yaml", "cache: {default_ttl_s: 3}\n")
    env = {"BESTSTAG_CONFIG": str(env_file)}
    assert load_config(explicit, env=env).cache.default_ttl_s == 3
    assert load_config(None, env=env).cache.default_ttl_s == 2
    assert load_config(None, env={}).cache.default_ttl_s == 1


def test_explicit_missing_file_is_an_error(cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config("nope.yaml", env={})


def test_env_config_missing_file_is_an_error(cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"BESTSTAG_CONFIG"):
        load_config(env={"BESTSTAG_CONFIG": str(cwd / "missing.yaml")})


def test_empty_file_means_defaults(cwd: Path) -> None:
    p = write(cwd / "config" / "beststag.yaml", "# nothing but a comment\n")
    s = load_config(p, env={})
    assert s.cache.default_ttl_s == 300
    assert s.data_dir == cwd / "var"


# ---- relative paths and env overrides


def test_relative_paths_resolve_against_the_file(cwd: Path, tmp_path: Path) -> None:
    p = write(tmp_path / "elsewhere" / "conf.yaml", "data_dir: data\nbackup: {dir: ../bk}\n")
    s = load_config(p, env={})
    assert s.data_dir == tmp_path / "elsewhere" / "data"
    assert s.paths.backups == tmp_path / "bk"
    assert s.paths.backups_partial == tmp_path / "bk" / ".partial"


def test_env_data_dir_is_relative_to_cwd_and_wins(cwd: Path, tmp_path: Path) -> None:
    p = write(tmp_path / "elsewhere" / "conf.yaml", "data_dir: data\n")
    s = load_config(p, env={"BESTSTAG_DATA_DIR": "mine"})
    assert s.data_dir == cwd / "mine"


def test_home_is_expanded(cwd: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = load_config(env={"BESTSTAG_DATA_DIR": "~/bs"})
    assert s.data_dir == tmp_path / "home" / "bs"


def test_env_overrides_win_over_the_file(cwd: Path) -> None:
    p = write(
        cwd / "config" / "beststag.yaml",
        """\
        airtable:
          base_id: appAAAAAAAAAAAAAA
          endpoint_url: http://file.example
        """,
    )
    env = {
        "AIRTABLE_TOKEN": TOKEN,
        "AIRTABLE_BASE_ID": "appBBBBBBBBBBBBBB",
        "AIRTABLE_ENDPOINT_URL": "http://proxy.example:8080/",
        "BESTSTAG_WEBHOOK_SECRET": "hook-secret-value",
    }
    s = load_config(p, env=env)
    assert not s.sandbox_mode
    assert s.api_token() == TOKEN
    assert s.airtable.base_id == "appBBBBBBBBBBBBBB"
    assert s.airtable.endpoint_url == "http://proxy.example:8080"
    assert s.webhook.secret is not None and s.webhook.secret.get_secret_value() == "hook-secret-value"
    assert s.secrets() == [TOKEN, "hook-secret-value"]


def test_token_alias_and_precedence(cwd: Path) -> None:
    base = {"AIRTABLE_BASE_ID": "appBBBBBBBBBBBBBB"}  # a token needs its base (tests/test_config_modes.py)
    assert load_config(env={"AIRTABLE_API_KEY": "key-alias", **base}).api_token() == "key-alias"
    both = {"AIRTABLE_API_KEY": "key-alias", "AIRTABLE_TOKEN": "real-token", **base}
    assert load_config(env=both).api_token() == "real-token"


def test_token_means_real_airtable_endpoint(cwd: Path) -> None:
    s = load_config(env={"AIRTABLE_TOKEN": TOKEN, "AIRTABLE_BASE_ID": "appBBBBBBBBBBBBBB"})
    assert s.airtable.endpoint_url == AIRTABLE_ENDPOINT_URL
    assert s.endpoint_url == AIRTABLE_ENDPOINT_URL


def test_empty_env_values_are_ignored(cwd: Path) -> None:
    s = load_config(env={"AIRTABLE_TOKEN": "", "BESTSTAG_DATA_DIR": "  "})
    assert s.sandbox_mode
    assert s.data_dir == cwd / "var"


def test_sandbox_token_from_env(cwd: Path) -> None:
    s = load_config(env={"BESTSTAG_SANDBOX_TOKEN": "sbx-123"})
    assert s.api_token() == "sbx-123"
    assert s.sandbox_mode


def test_sandbox_mode_keeps_an_explicit_base_id(cwd: Path) -> None:
    s = load_config(env={"AIRTABLE_BASE_ID": "appCCCCCCCCCCCCCC", "BESTSTAG_SANDBOX": "1"})
    assert s.sandbox_mode
    assert s.airtable.base_id == "appCCCCCCCCCCCCCC"


# ---- secrets stay secret


def test_token_never_in_repr_str_or_json(cwd: Path) -> None:
    s = load_config(
        env={
            "AIRTABLE_TOKEN": TOKEN,
            "AIRTABLE_BASE_ID": "appBBBBBBBBBBBBBB",
            "BESTSTAG_WEBHOOK_SECRET": "hook-secret-value",
        }
    )
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.airtable), json.dumps(s.model_dump(mode="json"))):
        assert TOKEN not in text
        assert "hook-secret-value" not in text


def test_a_bad_token_type_is_not_echoed(cwd: Path) -> None:
    msg = config_error("airtable:\n  token: [s3cr3t-list-item]\n", cwd)
    assert "airtable.token" in msg
    assert "s3cr3t" not in msg


# ---- every bad-config case is one line naming the file and the key


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("cache:\n  default_ttl_s: abc\n", "cache.default_ttl_s", "expected an integer number of seconds, got 'abc'"),
        ("cache:\n  default_ttl_s: -1\n", "cache.default_ttl_s", "expected a value >= 0"),
        ("cache:\n  defualt_ttl_s: 30\n", "cache.defualt_ttl_s", "unknown key; did you mean 'default_ttl_s'?"),
        ("nonsense: 1\n", "nonsense", "unknown key"),
        ("cache: 5\n", "cache", "expected a mapping"),
        ("tables:\n  Tarefas:\n    cache_mode: sometimes\n", "tables.Tarefas.cache_mode", "expected one of"),
        ("tables:\n  Tarefas:\n    critical: maybe\n", "tables.Tarefas.critical", "expected true or false"),
        ("tables:\n  Tarefas:\n    ttl: 5\n", "tables.Tarefas.ttl", "unknown key; did you mean 'ttl_s'?"),
        ("airtable:\n  timeout_s: fast\n", "airtable.timeout_s", "expected a number of seconds"),
        ("airtable:\n  base_id: xyz\n", "airtable.base_id", "expected a base id"),
        ("airtable:\n  endpoint_url: ftp://x\n", "airtable.endpoint_url", "expected an http:// or https:// URL"),
        ("airtable:\n  rate_limit_per_s: 0\n", "airtable.rate_limit_per_s", "expected a value >= 1"),
        ("webhook:\n  port: 70000\n", "webhook.port", "expected a value <= 65535"),
        ("alerts:\n  error_rate_max: 2\n", "alerts.error_rate_max", "expected a value <= 1"),
        ("alerts:\n  notify_urls: [not-a-url]\n", "alerts.notify_urls", "expected an http:// or https:// URL"),
        ("backup:\n  compression: rar\n", "backup.compression", "expected one of 'gzip' or 'zstd'"),
        (
            "backup:\n  types:\n    critical:\n      tables: [Usuários, Nope]\n"
            "      schedule: '0 * * * *'\n      retention: {keep_last: 3}\n",
            "backup.types.critical.tables[1]",
            "unknown table 'Nope'",
        ),
        (
            "backup:\n  types:\n    critical:\n      tables: [Usuários]\n"
            "      schedule: 'every hour'\n      retention: {keep_last: 3}\n",
            "backup.types.critical.schedule",
            "expected a cron expression with 5 fields",
        ),
        (
            "backup:\n  types:\n    critical:\n      tables: [Usuários]\n"
            "      schedule: '0 25 * * *'\n      retention: {keep_last: 3}\n",
            "backup.types.critical.schedule",
            "outside 0-23",
        ),
        (
            "backup:\n  types:\n    critical:\n      tables: [Usuários]\n      schedule: '0 * * * *'\n"
            "      retention: {keep_within: forever}\n",
            "backup.types.critical.retention.keep_within",
            "expected a duration like 12H",
        ),
        (
            "backup:\n  types:\n    critical:\n      tables: [Usuários]\n      schedule: '0 * * * *'\n"
            "      retention: {}\n",
            "backup.types.critical.retention",
            "at least one keep_* rule",
        ),
        ("backup:\n  types:\n    hourly: {}\n", "backup.types.hourly", "unknown key"),
        ("metrics:\n  table: Stats\n", "metrics.table", "unknown table 'Stats'"),
        ("metrics:\n  schedules:\n    usage: '* * *'\n", "metrics.schedules.usage", "5 fields"),
        ("metrics:\n  ranges:\n    usage: 2h\n", "metrics.ranges.usage", "expected one of"),
        (
            "cache:\n  dynamic_ttl: {enabled: true, min_s: 900, max_s: 60}\n",
            "cache.dynamic_ttl.min_s",
            "must be <= max_s",
        ),
        ("tables: {}\n", "tables", "expected at least one table"),
        ("logging:\n  level: LOUD\n", "logging.level", "expected one of"),
        ("data_dir: ''\n", "data_dir", "expected a folder path"),
    ],
)
def test_bad_config_names_file_and_key(cwd: Path, text: str, key: str, expected: str) -> None:
    msg = config_error(text, cwd)
    assert f": {key}: " in msg, msg
    assert expected in msg, msg


def test_the_reported_example_message(cwd: Path) -> None:
    msg = config_error("cache:\n  default_ttl_s: abc\n", cwd)
    assert msg == "config/beststag.yaml: cache.default_ttl_s: expected an integer number of seconds, got 'abc'"


def test_several_problems_still_one_line(cwd: Path) -> None:
    msg = config_error("cache:\n  default_ttl_s: abc\n  max_stale_s: xyz\nbogus: 1\n", cwd)
    assert "(and 2 more problems)" in msg


def test_unknown_key_lists_allowed_keys(cwd: Path) -> None:
    msg = config_error("webhook:\n  hots: 0.0.0.0\n", cwd)
    assert "did you mean 'host'?" in msg
    assert "allowed: host, port, max_body_bytes, secret" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache:\n  default_ttl_s: [1\n", "invalid YAML"),
        ("cache: {a: 1\n", "invalid YAML"),
        ("cache:\n  default_ttl_s: 1\ncache:\n  max_stale_s: 2\n", "duplicate key 'cache'"),
        ("- just\n- a list\n", "expected a mapping of sections at the top level, got a list"),
        ("data_dir: !!python/object:os.system {}\n", "invalid YAML"),
    ],
)
def test_bad_yaml(cwd: Path, text: str, expected: str) -> None:
    msg = config_error(text, cwd)
    assert expected in msg, msg


def test_yaml_error_has_a_line_number(cwd: Path) -> None:
    msg = config_error("cache:\n  default_ttl_s: 1\n  max_stale_s: [\n", cwd)
    assert "line " in msg


def test_non_utf8_file(cwd: Path) -> None:
    p = cwd / "config" / "beststag.yaml"
    p.parent.mkdir()
    p.write_bytes(b"data_dir: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p, env={})


def test_bad_env_value_names_the_variable(cwd: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"AIRTABLE_BASE_ID": "bogus"})
    msg = str(info.value)
    assert msg.startswith("environment variable AIRTABLE_BASE_ID: airtable.base_id: "), msg


def test_env_override_into_a_non_mapping_section(cwd: Path) -> None:
    p = write(cwd / "config" / "beststag.yaml", "airtable: 5\n")
    with pytest.raises(ConfigError, match=r"config/beststag.yaml: airtable: expected a mapping"):
        load_config(p, env={"AIRTABLE_TOKEN": TOKEN})


def test_config_error_exit_code_and_hint(cwd: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("missing.yaml", env={})
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert info.value.hint


def test_file_outside_cwd_is_named_absolutely(cwd: Path, tmp_path: Path) -> None:
    p = write(tmp_path / "other" / "c.yaml", "cache: {default_ttl_s: x}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    assert str(info.value).startswith(f"{p}: cache.default_ttl_s: ")


def test_tables_mapping_replaces_defaults(cwd: Path) -> None:
    text = """\
    tables:
      Usuários: {}
      Interações: {critical: true, id: tblAAAAAAAAAAAAAA}
      Métricas: {cache_mode: "off"}
    backup:
      types:
        incremental: {tables: [Usuários], schedule: "0 0 * * *", retention: {keep_daily: 3}}
        complete: {tables: [Usuários, Interações], schedule: "0 2 * * 0", retention: {keep_weekly: 2}}
        critical: {tables: [Interações], schedule: "0 */4 * * *", retention: {keep_within: 2d}}
    """
    s = load_config(write(cwd / "c.yaml", text), env={})
    assert list(s.tables) == ["Usuários", "Interações", "Métricas"]
    assert s.tables["Interações"].id == "tblAAAAAAAAAAAAAA"
    retention = s.backup.of("critical").retention
    assert retention.keep_within_delta is not None
    assert retention.keep_within_delta.days == 2


def test_settings_constructed_directly_is_valid() -> None:
    s = Settings()
    assert s.sandbox_mode
    assert s.airtable.base_id == SANDBOX_BASE_ID


@pytest.mark.parametrize("expr", ["0 0 * * *", "*/15 * * * 1-5", "0 2 * * 0", "5 0 1,15 * *", "0 9 * jan mon"])
def test_validate_cron_accepts(expr: str) -> None:
    assert cfg.validate_cron(expr) == expr


@pytest.mark.parametrize("expr", ["", "* * * *", "60 * * * *", "0 0 32 * *", "0 0 * 13 *", "a-b-c * * * *"])
def test_validate_cron_rejects(expr: str) -> None:
    with pytest.raises(ValueError):
        cfg.validate_cron(expr)


def test_bare_off_cache_mode_means_off(cwd: Path) -> None:
    names = [*BESTSTAG_TABLES, "Métricas"]
    text = "tables:\n" + "".join(f"  {n}:\n    cache_mode: off\n" for n in names)
    s = load_config(write(cwd / "c.yaml", text), env={})
    assert {t.cache_mode for t in s.tables.values()} == {"off"}
