"""Issue 16, "Prometheus textfile": node_exporter's conventions, a real histogram, series from the start,
per-job gauges, a configurable 0644 path written atomically.

Every file is parsed with prometheus_client, the library Prometheus's own docs point to for the format.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from beststag_cli.config import BACKUP_TYPES, JOB_NAMES
from beststag_cli.metrics import collect, write_prometheus

from .conftest import T

prom_parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is in the [test] extra")

REPO = Path(__file__).resolve().parents[2]
NON_BASE_UNITS = (
    "_ms",
    "_milliseconds",
    "_microseconds",
    "_minutes",
    "_hours",
    "_per_hour",
    "_days",
    "_kb",
    "_kilobytes",
    "_mb",
    "_megabytes",
    "_percent",
    "_pct",
)
#: window figures that rate()/histogram_quantile() over the counters and the histogram give
DERIVABLE = (
    "beststag_window_requests",
    "beststag_throughput_requests_per_hour",
    "beststag_response_time_seconds",
    "beststag_response_time_avg_seconds",
    "beststag_error_ratio",
    "beststag_window_rate_limited_requests",
    "beststag_window_retries",
    "beststag_api_budget_ratio",
    "beststag_api_budget_peak_hour_ratio",
    "beststag_cache_hit_ratio",
    "beststag_cache_miss_ratio",
    "beststag_cache_ttl_effectiveness_ratio",
)


def _traffic(journal: Any, durations_ms: list[float]) -> None:
    for i, d in enumerate(durations_ms):
        journal.record_request(
            base="appX",
            table_name="Usuários",
            method="GET",
            operation="list",
            status=200 if i else 429,
            duration_ms=d,
            records=100,
            bytes=9000,
            retries=1 if i == 1 else 0,
            ts=T - 600 - i,
        )
    journal.record_cache_event(event="hit", table_name="Usuários", age_s=3, ts=T - 100)
    journal.record_cache_event(event="miss", table_name="Usuários", ts=T - 90)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in prom_parser.text_string_to_metric_families(text)}


def _value(families: dict[str, Any], sample: str, **labels: str) -> float:
    name = re.sub(r"_(total|bucket|sum|count)$", "", sample)
    for s in families.get(name, families.get(sample)).samples:  # type: ignore[union-attr]
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


def check_conventions(text: str) -> dict[str, Any]:
    """Prometheus's naming and exposition rules, for every family of a textfile; returns the families."""
    heads = {m.group(2): m.group(1) for m in re.finditer(r"^# (HELP|TYPE) (\S+)", text, re.M) if m.group(1) == "TYPE"}
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    families = _families(text)
    assert families
    for name, fam in families.items():
        head = name + "_total" if fam.type == "counter" else name
        assert head in heads and head in helps, f"{name}: HELP and TYPE for every family"
        assert name.startswith("beststag_"), name
        assert fam.type in ("gauge", "counter", "histogram"), name
        for unit in NON_BASE_UNITS:
            assert unit not in name, f"{name}: base units (seconds, bytes, ratios)"
        if "timestamp" in name or "duration" in name:
            assert name.endswith("_seconds"), f"{name}: times in seconds, the unit in the name"
        if "bytes" in name:
            assert name.endswith("_bytes"), f"{name}: the unit ends the name"
        if fam.type == "counter":
            assert {s.name for s in fam.samples} == {name + "_total"}, f"{name}: counters end in _total"
        else:
            assert not name.endswith("_total"), f"{name}: _total is for counters"
        for s in fam.samples:
            assert "quantile" not in s.labels, f"{name}: a quantile gauge cannot be aggregated; use the histogram"
            assert "method" not in s.labels, f"{name}: a label whose value changes starts a new series"
        if fam.type == "histogram":
            series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
            counts: dict[tuple[tuple[str, str], ...], float] = {}
            for s in fam.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                if s.name.endswith("_bucket"):
                    series.setdefault(key, []).append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    counts[key] = s.value
            for key, buckets in series.items():
                assert buckets == sorted(buckets), f"{name}: buckets in le order"
                values = [v for _, v in buckets]
                assert values == sorted(values), f"{name}: buckets are cumulative"
                assert buckets[-1][0] == float("inf") and buckets[-1][1] == counts[key], f"{name}: +Inf = _count"
    for name in DERIVABLE:
        assert name not in families, f"{name}: rate() over the counters gives it"
    return families


def test_every_family_follows_the_naming_conventions(settings, gateway, journal) -> None:  # type: ignore[no-untyped-def]
    _traffic(journal, [100.0 + i for i in range(10)])
    journal.record_backup_run(
        id="b1", type="critical", status="ok", started=T - 300, finished=T - 200, records=10, bytes=1000
    )
    collect(settings, "all", "24h", gateway=gateway, journal=journal)
    fams = check_conventions(write_prometheus(journal, settings.paths.prom_file))
    assert _value(fams, "beststag_requests_total") == journal.query("SELECT count(*) AS n FROM requests")[0]["n"]
    assert _value(fams, "beststag_requests_rate_limited_total") == 1
    assert _value(fams, "beststag_cache_events_total", event="hit") == 1
    # the count method is a gauge of its own, so the records series stays one series when sampling starts
    assert _value(fams, "beststag_table_records", table="Interações") == 1000
    assert _value(fams, "beststag_table_records_estimated", table="Interações") == 0
    assert _value(fams, "beststag_backup_last_success_timestamp_seconds", type="critical") == T - 200


def test_durations_are_a_histogram_read_from_the_journal(settings, journal) -> None:  # type: ignore[no-untyped-def]
    # 1.5 ms, 3 ms, 100 ms (twice) and a 100 s timeout: known buckets, and one beyond the last bound
    _traffic(journal, [1.5, 3.0, 100.0, 100.0, 100_000.0])
    collect(settings, "performance", "1h", journal=journal)
    text = write_prometheus(journal, settings.paths.prom_file)
    fams = check_conventions(text)
    h = "beststag_request_duration_seconds"
    assert fams[h].type == "histogram"
    assert _value(fams, h + "_bucket", le="0.002") == 1
    assert _value(fams, h + "_bucket", le="0.004") == 2
    assert _value(fams, h + "_bucket", le="0.064") == 2
    assert _value(fams, h + "_bucket", le="0.128") == 4
    assert _value(fams, h + "_bucket", le="65.536") == 4
    assert _value(fams, h + "_bucket", le="+Inf") == _value(fams, h + "_count") == 5
    assert _value(fams, h + "_sum") == pytest.approx((1.5 + 3 + 100 + 100 + 100_000) / 1000)
    assert f"{h}_sum 100.2045\n" in text  # exact decimals, no float noise
    assert 'le="0.128"' in text and 'le="0.12800000000000003"' not in text


def test_every_backup_type_and_job_has_its_series_before_the_first_run(settings, journal) -> None:  # type: ignore[no-untyped-def]
    text = write_prometheus(journal, settings.paths.prom_file)
    fams = check_conventions(text)
    for t in BACKUP_TYPES:  # 0 until the first success, so `time() - x > 26*3600` fires on a new install
        assert _value(fams, "beststag_backup_last_success_timestamp_seconds", type=t) == 0
        assert _value(fams, "beststag_backup_consecutive_failures", type=t) == 0
    for job in JOB_NAMES:
        assert _value(fams, "beststag_job_last_run_timestamp_seconds", job=job) == 0
        assert _value(fams, "beststag_job_last_success_timestamp_seconds", job=job) == 0
        assert {s.labels["outcome"] for s in fams["beststag_job_last_outcome"].samples if s.labels["job"] == job} == {
            "ok",
            "alerting",
            "partial",
            "failed",
            "locked",
            "interrupted",
        }
    for section in ("usage", "performance", "storage", "backup"):
        assert _value(fams, "beststag_metrics_generated_timestamp_seconds", section=section) == 0


def test_each_job_run_refreshes_its_gauges(cli, settings, now) -> None:  # type: ignore[no-untyped-def]
    prom = settings.paths.prom_file
    assert (
        cli(
            "--json", "metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus"
        ).exit_code
        == 0
    )
    fams = check_conventions(prom.read_text())
    assert _value(fams, "beststag_job_last_run_timestamp_seconds", job="metrics-performance") == T
    assert _value(fams, "beststag_job_last_exit_code", job="metrics-performance") == 0
    assert _value(fams, "beststag_job_last_outcome", job="metrics-performance", outcome="ok") == 1
    assert _value(fams, "beststag_job_last_duration_seconds", job="metrics-performance") >= 0

    # a backup (which never writes the textfile itself) shows up at once, not at the next collection
    assert cli("--json", "backup", "run", "--type", "critical").exit_code == 0
    fams = check_conventions(prom.read_text())
    assert _value(fams, "beststag_job_last_success_timestamp_seconds", job="backup-critical") == T
    assert _value(fams, "beststag_backup_last_success_timestamp_seconds", type="critical") > 0
    assert _value(fams, "beststag_backup_last_success_timestamp_seconds", type="complete") == 0

    # a failed run: new run time and exit code, the last success kept
    from beststag_cli import clock

    clock.advance(60)
    assert (
        cli(
            "--json", "metrics", "collect", "--type", "performance", "--range", "nope", "--format", "prometheus"
        ).exit_code
        == 2
    )
    fams = check_conventions(prom.read_text())
    assert _value(fams, "beststag_job_last_run_timestamp_seconds", job="metrics-performance") == T + 60
    assert _value(fams, "beststag_job_last_success_timestamp_seconds", job="metrics-performance") == T
    assert _value(fams, "beststag_job_last_exit_code", job="metrics-performance") == 2
    assert _value(fams, "beststag_job_last_outcome", job="metrics-performance", outcome="failed") == 1
    assert _value(fams, "beststag_job_last_outcome", job="metrics-performance", outcome="ok") == 0


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_values_have_no_float_noise(x: float) -> None:
    from beststag_cli.metrics.export import _num

    out = _num(x)
    assert float(out) == round(x, 6)
    assert len(out.partition(".")[2]) <= 6, out  # not 0.30000000000000004
    assert _num(0.1 + 0.2) == "0.3" and _num(3.0) == "3" and _num(1733100000.25) == "1733100000.25"


def test_the_default_file_is_0644_in_the_private_metrics_folder(settings, journal) -> None:  # type: ignore[no-untyped-def]
    prom = settings.paths.prom_file
    assert prom == settings.paths.data_dir / "metrics" / "beststag.prom"  # the default has not moved
    write_prometheus(journal, prom)
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # the one file another user (node_exporter) reads
    assert stat.S_IMODE(prom.parent.stat().st_mode) == 0o700  # inside the data dir its rules hold
    assert [p.name for p in prom.parent.iterdir()] == ["beststag.prom"]  # no temp file left


def _config_with(tmp_path: Path, **metrics: Any) -> Path:
    raw = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    raw["metrics"].update(metrics)
    cfg = tmp_path / "beststag.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return cfg


def test_a_configured_path_outside_the_data_dir(
    tmp_path: Path, clean_env: Path, journal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beststag_cli.config import load_config

    collector = tmp_path / "node_exporter"
    collector.mkdir(mode=0o750)
    os.chmod(collector, 0o750)  # the operator's folder: beststag must not chmod it
    target = collector / "textfile" / "sub" / "beststag.prom"
    monkeypatch.setenv("BESTSTAG_CONFIG", str(_config_with(tmp_path, prometheus_path=str(target))))
    settings = load_config()
    assert settings.paths.prom_file == target
    old = os.umask(0o077)  # what the CLI runs with: the modes below are explicit, not the umask's
    try:
        text = write_prometheus(journal, settings.paths.prom_file)
    finally:
        os.umask(old)
    assert target.read_text() == text
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((collector / "textfile").stat().st_mode) == 0o755  # created by beststag: 0755
    assert stat.S_IMODE((collector / "textfile" / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE(collector.stat().st_mode) == 0o750  # existed: untouched
    assert not (clean_env / "metrics" / "beststag.prom").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["beststag.prom"]


def test_the_write_never_follows_a_planted_link(
    tmp_path: Path, clean_env: Path, journal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a shared collector folder, links planted at the temp name and at the file itself are not followed."""
    from beststag_cli.config import load_config

    folder = tmp_path / "collector"
    folder.mkdir()
    target = folder / "beststag.prom"
    victims = {name: tmp_path / name for name in ("temp-victim", "file-victim")}
    for v in victims.values():
        v.write_text("precious\n")
    (folder / f".beststag.prom.{os.getpid()}.tmp").symlink_to(victims["temp-victim"])
    target.symlink_to(victims["file-victim"])
    monkeypatch.setenv("BESTSTAG_CONFIG", str(_config_with(tmp_path, prometheus_path=str(target))))
    text = write_prometheus(journal, load_config().paths.prom_file)
    assert all(v.read_text() == "precious\n" for v in victims.values())
    assert not target.is_symlink() and target.read_text() == text  # the link was replaced by the file
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    check_conventions(text)  # complete
    planted = f".beststag.prom.{os.getpid()}.tmp"
    assert (folder / planted).is_symlink()  # not ours to delete
    assert [p.name for p in folder.iterdir() if p.name not in ("beststag.prom", planted)] == []


def _beststag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beststag_cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_the_cron_command_writes_the_configured_path(tmp_path: Path, clean_env: Path) -> None:
    target = tmp_path / "textfile_collector" / "beststag.prom"
    env = os.environ.copy()
    env["BESTSTAG_CONFIG"] = str(_config_with(tmp_path, prometheus_path=str(target)))
    r = _beststag(
        "--quiet", "metrics", "collect", "--type", "performance", "--range", "1h", "--format", "prometheus", env=env
    )
    assert r.returncode == 0, r.stderr
    check_conventions(r.stdout)
    # then the job's end refreshed its own gauges in the file
    fams = check_conventions(target.read_text())
    assert _value(fams, "beststag_job_last_run_timestamp_seconds", job="metrics-performance") > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert not (clean_env / "metrics" / "beststag.prom").exists()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("metrics/beststag.prom", "expected an absolute path"),
        ("/var/lib/node_exporter/textfile_collector/beststag.txt", "ending in .prom"),
    ],
)
def test_a_bad_path_is_a_configuration_error(tmp_path: Path, value: str, says: str) -> None:
    env = os.environ.copy()
    env["BESTSTAG_CONFIG"] = str(_config_with(tmp_path, prometheus_path=value))
    r = _beststag("--quiet", "metrics", "collect", "--type", "performance", "--format", "prometheus", env=env)
    assert r.returncode == 2, r
    assert "metrics.prometheus_path" in r.stderr and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_a_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be\n")
    env = os.environ.copy()
    env["BESTSTAG_CONFIG"] = str(_config_with(tmp_path, prometheus_path=str(blocker / "beststag.prom")))
    r = _beststag("--quiet", "metrics", "collect", "--type", "performance", "--format", "prometheus", env=env)
    assert r.returncode == 2, r
    assert "cannot write the Prometheus textfile" in r.stderr and "metrics.prometheus_path" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert blocker.read_text() == "a file where the folder should be\n"


def test_a_textfile_that_cannot_be_written_never_changes_a_jobs_outcome(
    cli, tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x\n")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(_config_with(tmp_path, prometheus_path=str(blocker / "b.prom"))))
    assert cli("--json", "cache", "warm", "Usuários").exit_code == 0  # the journal exists from here on
    r = cli("--json", "cache", "prune")
    assert r.exit_code == 0, r  # the job did its work; only the textfile refresh failed
    log = (clean_env / "logs" / "beststag.jsonl").read_text(encoding="utf-8")
    assert '"job.textfile_failed"' in log and "cannot write the Prometheus textfile" in log
