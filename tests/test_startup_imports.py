"""Start-up gate (issue 16): the read-only `--json` commands import none of the heavy modules.

Not a timing test: it checks *what* a new process imports (`python -X importtime`), which is what
start-up time is made of and what drifts when someone adds a top-level import. The ratios
themselves are in `./scripts/bench startup`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

#: what the full CLI pays before doing anything: Typer (its coercion imports pydantic), the pydantic
#: config models, the sandbox (its lark formula grammar), pyairtable and requests, rich, FastAPI
HEAVY_TOP = (
    "typer",
    "click",
    "pydantic",
    "pydantic_core",
    "lark",
    "pyairtable",
    "requests",
    "urllib3",
    "rich",
    "fastapi",
    "starlette",
    "yaml",
)
HEAVY_OURS = (
    "beststag_cli.config",
    "beststag_cli.sandbox",
    "beststag_cli.gateway",
    "beststag_cli.cli.main",
    "beststag_cli.logs",
)

FAKE_NOW = "2026-06-10T12:00:00Z"


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time")}


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY_TOP or m.startswith(HEAVY_OURS)}


def _beststag(*args: str, importtime: bool = True) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a new process, with the test's environment."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "beststag_cli", *args]
    return subprocess.run(cmd, env=os.environ.copy(), capture_output=True, text=True, timeout=180)


def _without_now(doc: Any) -> Any:
    return {k: v for k, v in doc.items() if k != "now"} if isinstance(doc, dict) else doc


@pytest.fixture
def one_backup(cli, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """A critical backup of the sandbox in the test's data dir (the full CLI also writes the settings snapshot)."""
    monkeypatch.setenv("BESTSTAG_FAKE_NOW", FAKE_NOW)  # schedule show's next runs agree across processes
    r = cli("--quiet", "backup", "run", "--type", "critical")
    assert r.exit_code == 0, r
    return str(cli("--json", "backup", "list").json()[0]["id"])


def test_read_only_json_commands_import_no_heavy_module(cli, one_backup: str) -> None:
    commands = [
        ("backup", "list"),
        ("backup", "list", "--type", "critical"),
        ("backup", "show", one_backup),
        ("schedule", "show"),
        ("schedule", "show", "-n", "5"),
    ]
    for args in commands:
        r = _beststag("--json", *args)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        assert not _heavy(_imported(r.stderr)), (args, sorted(_heavy(_imported(r.stderr))))
        full = cli("--json", *args)  # the Typer CLI, in-process: the same document
        assert full.exit_code == 0, full
        assert _without_now(json.loads(r.stdout)) == _without_now(full.json()), args


def _without_importtime(stderr: str) -> str:
    return "".join(line + "\n" for line in stderr.splitlines() if not line.startswith("import time"))


@pytest.fixture
def plain_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich's own terminal switches unset: piped output is piped output for rich and for the fast path alike."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def test_read_only_human_output_is_the_full_clis_without_heavy_modules(cli, one_backup: str, plain_pipes: None) -> None:
    """Issue 17: the tables (piped: tab-separated rows) come from the fast path too, byte for byte the Typer
    command's output, global options anywhere on the line."""
    commands = [
        ("backup", "list"),
        ("backup", "list", "--type", "critical"),
        ("backup", "list", "--type=complete"),
        ("backup", "show", one_backup),
        ("backup", "show", "latest"),
        ("schedule", "show"),
        ("schedule", "show", "-n", "5"),
        ("backup", "list", "--quiet"),
        ("-q", "schedule", "show"),
        ("backup", "--json", "list"),
        ("schedule", "show", "--count", "2", "--json"),
    ]
    for args in commands:
        r = _beststag(*args)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        assert not _heavy(_imported(r.stderr)), (args, sorted(_heavy(_imported(r.stderr))))
        full = cli(*args)
        assert (r.returncode, r.stdout, _without_importtime(r.stderr)) == (full.exit_code, full.stdout, full.stderr), (
            args
        )


def test_read_only_fast_path_leaves_errors_and_tables_to_the_full_cli(cli, one_backup: str) -> None:
    # an error is reported by the full CLI, exactly as before: one line, its exit code
    missing = _beststag("--json", "backup", "show", "critical/2001-01-01T00-00-00Z", importtime=False)
    full = cli("--json", "backup", "show", "critical/2001-01-01T00-00-00Z")
    assert (missing.returncode, missing.stdout) == (full.exit_code, full.stdout) and missing.returncode != 0
    bad = _beststag("--json", "backup", "list", "--type", "weekly", importtime=False)
    assert bad.returncode == 2 and "unknown backup type" in bad.stdout
    # an option it does not know (here --verbose) is the full CLI's
    verbose = _beststag("--verbose", "backup", "list")
    assert verbose.returncode == 0 and "typer" in {m.split(".")[0] for m in _imported(verbose.stderr)}
    # and the fast path itself: no heavy module for the same command with --json
    fast = _beststag("--json", "backup", "list")
    assert fast.returncode == 0 and not _heavy(_imported(fast.stderr)), sorted(_heavy(_imported(fast.stderr)))


def test_read_only_commands_with_a_token_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # a real-looking installation whose endpoint is unreachable: listing local backups needs neither
    # Airtable nor pyairtable, and after the first (full, validating) run not even pydantic
    monkeypatch.setenv("AIRTABLE_TOKEN", "patFAKEFAKEFAKEFAK.0123456789abcdef0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appFAKEFAKEFAKE12")
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("BESTSTAG_SANDBOX", raising=False)  # a token: not sandbox mode
    first = _beststag("--json", "backup", "list")
    assert first.returncode == 0 and json.loads(first.stdout) == [], first.stderr[-2000:]
    for args in (("backup", "list"), ("schedule", "show")):
        r = _beststag("--json", *args)
        assert r.returncode == 0, r.stderr[-2000:]
        assert not _heavy(_imported(r.stderr)), (args, sorted(_heavy(_imported(r.stderr))))
    assert "patFAKE" not in json.dumps(
        json.loads((Path(os.environ["BESTSTAG_DATA_DIR"]) / "settings.snapshot.json").read_text())
    )


def test_snapshot_is_not_used_when_another_beststag_variable_changes(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable the config loader may read (BESTSTAG_SANDBOX, say) is part of the snapshot's fingerprint."""
    from beststag_cli.config import load_config
    from beststag_cli.fastconfig import fast_settings, save_snapshot

    clean_env.mkdir(parents=True)
    monkeypatch.setenv("BESTSTAG_SANDBOX", "1")
    save_snapshot(load_config())  # the snapshot for this environment, as the CLI writes it
    assert fast_settings() is not None
    monkeypatch.setenv("BESTSTAG_SANDBOX", "")
    assert fast_settings() is None
    monkeypatch.setenv("BESTSTAG_FAKE_NOW", FAKE_NOW)  # read at run time only: not a reason to miss
    monkeypatch.setenv("BESTSTAG_SANDBOX", "1")
    assert fast_settings() is not None


# --------------------------------------------------------------------------------------------
# `metrics alerts` and `doctor --offline`: they run as a job / look at the installation, so they write the log
# (beststag_cli.logs is stdlib only: allowed) and the journal; everything else heavy stays out

_RUN_ALLOWED = ("beststag_cli.logs",)


def _heavy_run(stderr: str) -> set[str]:
    return {m for m in _heavy(_imported(stderr)) if not m.startswith(_RUN_ALLOWED)}


def _free_space_blind(text: str) -> str:
    """doctor's data_dir line gives the free space, which other processes on the machine move between two runs."""
    import re

    return re.sub(r"[\d.,]+ (bytes|KiB|MiB|GiB) free", "N free", text)


def _same_as_full_cli(cli: Any, args: tuple[str, ...], *, fast: bool) -> subprocess.CompletedProcess[str]:
    """Run ``args`` through the console script, then through the full CLI in-process: same exit code, stdout and
    stderr; and the console script answered on the fast path (no heavy module) or declined to the full CLI."""
    r = _beststag(*args)
    full = cli(*args)
    mine = (r.returncode, _free_space_blind(r.stdout), _free_space_blind(_without_importtime(r.stderr)))
    theirs = (int(full.exit_code), _free_space_blind(full.stdout), _free_space_blind(full.stderr))
    assert mine == theirs, args
    if fast:
        assert not _heavy_run(r.stderr), (args, sorted(_heavy_run(r.stderr)))
    else:
        assert "typer" in {m.split(".")[0] for m in _imported(r.stderr)}, args  # the full CLI answered
    return r


_ALERTS = [
    ("metrics", "alerts"),
    ("--json", "metrics", "alerts"),
    ("--quiet", "metrics", "alerts"),
    ("metrics", "alerts", "--range", "24h", "--json"),
    ("metrics", "alerts", "-r", "7d"),
    ("-q", "metrics", "--json", "alerts"),
]
_DOCTOR = [("doctor", "--offline"), ("--json", "doctor", "--offline"), ("doctor", "--offline", "--quiet")]


def test_metrics_alerts_and_doctor_offline_on_the_fast_path(cli, one_backup: str, plain_pipes: None) -> None:
    """Issue 16: `metrics alerts` (here firing: two backup types never ran) and `doctor --offline` answer without
    Typer or pydantic, byte for byte the Typer commands' output and exit codes."""
    for args in _ALERTS:
        assert _same_as_full_cli(cli, args, fast=True).returncode == 1, args
    for args in _DOCTOR:
        assert _same_as_full_cli(cli, args, fast=True).returncode == 0, args
    # bad input inside the job: the same one line and exit 2 (the run is logged as failed, as the Typer command's)
    assert _same_as_full_cli(cli, ("metrics", "alerts", "--range", "bogus"), fast=True).returncode == 2
    # the job's log lines are written on the fast path too (job.started / job.finished, outcome alerting)
    log = (Path(os.environ["BESTSTAG_DATA_DIR"]) / "logs" / "beststag.jsonl").read_text().splitlines()
    ends = [e for e in map(json.loads, log) if e.get("msg") == "job.finished" and e.get("job") == "alerts"]
    assert len(ends) == 2 * len(_ALERTS) + 2, ends
    assert [e["outcome"] for e in ends] == ["alerting"] * 2 * len(_ALERTS) + ["failed"] * 2, ends


def test_alerts_quiet_and_doctor_failing_on_the_fast_path(
    cli, one_backup: str, plain_pipes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing firing (exit 0), and a doctor check failing (a broken manifest: exit 1, one line each)."""
    config = tmp_path / "quiet.yaml"
    config.write_text("alerts:\n  backup_failure:\n    enabled: false\n")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(config))
    cli("--json", "backup", "list")  # the full CLI writes the snapshot for this config
    for args in _ALERTS:
        assert _same_as_full_cli(cli, args, fast=True).returncode == 0, args
    [manifest] = list((Path(os.environ["BESTSTAG_DATA_DIR"]) / "backups").glob("critical/*/manifest.json"))
    manifest.write_text("{not json")
    for args in _DOCTOR:
        r = _same_as_full_cli(cli, args, fast=True)
        assert r.returncode == 1 and "backups" in r.stdout + r.stderr, args


@pytest.mark.parametrize(
    "config",
    [
        "jobs:\n  ping_retries: 0\n  pings:\n    alerts:\n      url: http://127.0.0.1:9/ping-uuid\n",
        'alerts:\n  notify_urls: ["http://127.0.0.1:9/hook-key"]\n',
    ],
    ids=["pings", "notify_urls"],
)
def test_alerts_answer_on_the_fast_path_only_without_ping_or_notify_urls(
    cli, one_backup: str, plain_pipes: None, tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ping and alert URLs are secrets the snapshot does not hold: with one configured the fast path declines and
    the full CLI answers (and calls it), the output the same as ever; without, the fast path answers."""
    path = tmp_path / "urls.yaml"
    path.write_text("metrics:\n  plan_record_limit: 60000\n")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
    cli("--json", "backup", "list")  # the full CLI writes the snapshot for this config
    _same_as_full_cli(cli, ("--json", "metrics", "alerts"), fast=True)
    path.write_text(config)
    cli("--json", "backup", "list")
    from beststag_cli.fastconfig import fast_settings

    assert fast_settings() is not None  # a good snapshot: what declines is the URLs, not a stale fingerprint
    for args in (("metrics", "alerts"), ("--json", "metrics", "alerts")):
        _same_as_full_cli(cli, args, fast=False)
    assert _same_as_full_cli(cli, ("doctor", "--offline"), fast=False).returncode == 0


def test_doctor_offline_with_a_token_reads_it_from_the_environment(
    cli, tmp_path: Path, plain_pipes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token's length is in doctor's line, the token is not in the snapshot: the fast path reads it again from
    the environment; a token in the config file (not in the environment) leaves doctor to the full CLI."""
    token = "patFAKEFAKEFAKEFAK.0123456789abcdef0123456789abcdef0123456789abcdef"
    monkeypatch.delenv("BESTSTAG_SANDBOX", raising=False)
    monkeypatch.setenv("AIRTABLE_TOKEN", token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appFAKEFAKEFAKE12")
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", "http://127.0.0.1:9")
    cli("--json", "backup", "list")
    r = _same_as_full_cli(cli, ("doctor", "--offline"), fast=True)
    assert f"({len(token)} characters)" in r.stdout
    monkeypatch.delenv("AIRTABLE_TOKEN")
    path = tmp_path / "token.yaml"
    path.write_text(f"airtable:\n  token: {token}\n")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
    cli("--json", "backup", "list")
    r = _same_as_full_cli(cli, ("doctor", "--offline"), fast=False)
    assert f"({len(token)} characters)" in r.stdout
    assert token not in (Path(os.environ["BESTSTAG_DATA_DIR"]) / "settings.snapshot.json").read_text()


_MINUTES = st.sampled_from(["0", "15", "30", "*/15", "*/20", "0,30", "10-20", "*"])
_HOURS = st.sampled_from(["0", "2", "*/4", "3,4", "1-5", "*", "*/6"])
_DAYS = st.sampled_from(["* * *", "* * 0", "1 * *", "* * 1-5", "1,15 * *"])


@settings_(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(_MINUTES, _HOURS, _DAYS, st.sampled_from(["backup", "other"])), min_size=2, max_size=4),
    st.integers(0, 23),
    st.sampled_from([0, 5, -3]),
)
def test_lock_collisions_skips_only_jobs_that_cannot_collide(
    crons: list[tuple[str, str, str, str]], hour: int, offset_h: int
) -> None:
    """`schedule show`'s year scan expands only the jobs that may start with another of their lock: same answer."""
    from datetime import datetime, timedelta, timezone

    from beststag_cli.ops.schedule import ScheduledJob, expand, lock_collisions

    jobs = [ScheduledJob(f"j{i}", f"{m} {h} {d}", ("x",), "", lock) for i, (m, h, d, lock) in enumerate(crons)]
    start = datetime(2026, 3, 1, hour, 7, tzinfo=timezone(timedelta(hours=offset_h)))
    by_minute: dict[tuple[str, datetime], list[str]] = {}  # the scan of every job, as before
    for j in jobs:
        for t in expand(j.cron, start, start + timedelta(days=9)):
            by_minute.setdefault((str(j.lock), t), []).append(j.name)
    expected = sorted((t, names) for (_, t), names in by_minute.items() if len(names) > 1)
    assert lock_collisions(jobs, start, days=9) == expected


_FORMULAS = [
    "{status}='Ativo'",
    "AND({status}='Ativo', {tokens} > 3)",
    "OR(x, NOT({resolvido}))",
    "IF({a} >= 2, 'big' & \"x\", -{b} / 2 * 3)",
    "/* c */ LEN({Nome}) != 0",
    "{a\\}b} = 'it''s'",
    "SWITCH({plano}, 'Pro', 1, 2) + 1",
    "DATETIME_DIFF(NOW(), {timestamp}, 'days') < 7",
    "FIND('x', {Resumo})",
    "TRUE()",
    "{x} = ",
    "AND(",
    "'unclosed",
    "{a} == 1",
    ")",
    "1 +* 2",
]


def test_formula_parser_comes_from_the_precompiled_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox loads its formula parser from lalr_tables.py instead of analysing the grammar in every process."""
    import lark

    from beststag_cli.sandbox.formula import lalr_tables, parser

    grammar = parser._GRAMMAR_PATH.read_text(encoding="utf-8")
    assert parser._stamp(grammar) == lalr_tables.STAMP, (
        "grammar.lark (or lark) changed: run python -c 'from beststag_cli.sandbox.formula.parser import "
        "write_tables; write_tables()'"
    )
    built = parser._build(grammar)

    def outcome(p: lark.Lark, text: str) -> Any:
        try:
            return p.parse(text)
        except lark.exceptions.UnexpectedInput as exc:
            return (type(exc).__name__, parser._describe(text, exc))

    monkeypatch.setattr(parser, "_build", lambda grammar: pytest.fail("built the parser instead of loading it"))
    parser.get_parser.cache_clear()
    try:
        loaded = parser.get_parser()
        for text in _FORMULAS:
            assert outcome(loaded, text) == outcome(built, text), text
    finally:
        parser.get_parser.cache_clear()


@pytest.mark.parametrize("form", [["--config="], ["--config", ""]])
@pytest.mark.parametrize("command", [["backup", "list"], ["cache", "get", "Usuários"]])
def test_an_empty_config_value_is_refused_by_every_path(clean_env: Path, form: list[str], command: list[str]) -> None:
    """Found by review: the fast paths answered `--config=` from the snapshot, where the full CLI exits 2."""
    assert _beststag("--json", *command).returncode == 0  # the snapshot exists
    r = _beststag("--json", *form, *command)
    assert r.returncode == 2, (r.stdout[-300:], r.stderr[-300:])
