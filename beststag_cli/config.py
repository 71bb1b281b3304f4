"""Settings: pydantic models, the YAML file, and environment overrides.

Where settings come from — the config file's search order, the environment variables that override
it, the secret settings and the data dir rule — is declared once in
:mod:`beststag_cli.settings_sources`, which the pydantic-free snapshot path (``fastconfig``) reads
too. Loading writes nothing: the CLI saves the settings snapshot (``fastconfig.save_snapshot``).

Relative paths in the file resolve against the file's folder. Sandbox mode (no token: the base id
defaults to the sample base and the endpoint to the in-process sandbox) is entered only with
``BESTSTAG_SANDBOX=1`` or when neither a token nor a base id is configured; a base id without a
token, a token without a base id, and a token with ``BESTSTAG_SANDBOX=1`` are refused
(:func:`beststag_cli.settings_sources.mode_problem`).

Every problem (bad YAML, unknown key, wrong type) raises :class:`ConfigError` with one line that
names the file (or the environment variable), the dotted key path and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from beststag_cli.cache.policy import MAX_TTL_S
from beststag_cli.errors import BadInput, ConfigError
from beststag_cli.paths import BACKUP_TYPES, JOB_NAMES, Paths
from beststag_cli.settings_sources import (
    ENV_DATA_DIR,
    SANDBOX_DEFAULT_TOKEN,
    MissingConfigFile,
    env_overrides,
    is_secret_path,
    mask_url_password,
    mode_problem,
    resolve_data_dir,
    resolve_path,
    secret_values,
    url_password,
)
from beststag_cli.settings_sources import (
    SANDBOX_BASE_ID as SANDBOX_BASE_ID,  # re-exported: callers import it from here
)
from beststag_cli.settings_sources import find_config_file as _find_config_file

# --------------------------------------------------------------------------------------------
# constants shared with other modules

SANDBOX_ENDPOINT_URL = "http://sandbox.beststag.local"
AIRTABLE_ENDPOINT_URL = "https://api.airtable.com"

T_USUARIOS = "Usuários"
T_INTERACOES = "Interações"
T_TAREFAS = "Tarefas"
T_EVENTOS = "Eventos"
T_MEMORIA = "Memória Contextual"
T_LOGS = "Logs do Sistema"
T_METRICAS = "Métricas"

#: the six BestStag data tables, in the order the spec lists them
BESTSTAG_TABLES: tuple[str, ...] = (T_USUARIOS, T_INTERACOES, T_TAREFAS, T_EVENTOS, T_MEMORIA, T_LOGS)

BackupType = Literal["incremental", "complete", "critical"]
MetricType = Literal["usage", "performance", "storage"]
TimeRange = Literal["1h", "24h", "7d", "30d"]
METRIC_TYPES: tuple[str, ...] = ("usage", "performance", "storage")

# --------------------------------------------------------------------------------------------
# small validators


class _KeyProblem(ValueError):
    """A cross-field problem that knows the key path it belongs to (relative to the model)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


_CRON_FIELD = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def validate_cron(expr: str) -> str:
    """Check a five-field cron expression (numbers, ``*``, ranges, steps, lists, names)."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"expected a cron expression with 5 fields (m h dom mon dow), got {expr!r}")
    for part, (lo, hi), name in zip(parts, _CRON_RANGES, _CRON_NAMES, strict=True):
        for item in part.split(","):
            m = _CRON_FIELD.match(item)
            if not m:
                raise ValueError(f"cron {name} field {part!r} is not valid in {expr!r}")
            for num in re.findall(r"(?<![/0-9])[0-9]+", item.split("/")[0]):
                if not lo <= int(num) <= hi:
                    raise ValueError(f"cron {name} value {num} is outside {lo}-{hi} in {expr!r}")
    return " ".join(parts)


_DURATION = re.compile(r"^(\d+)([Hdwmy])$")
_DURATION_UNITS = {"H": 3600, "d": 86400, "w": 7 * 86400, "m": 31 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """Parse a borg-style ``keep_within`` duration: ``12H``, ``2d``, ``3w``, ``6m``, ``1y``."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"expected a duration like 12H, 2d, 3w, 6m or 1y, got {text!r}")
    return timedelta(seconds=int(m.group(1)) * _DURATION_UNITS[m.group(2)])


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _check_endpoint_url(value: str | None, who_authenticates: str) -> str | None:
    """An API endpoint: an http(s) URL without a password (one more secret to keep out of every file)."""
    if value in (None, ""):
        return None
    if url_password(str(value)) is not None:
        raise ValueError(
            f"expected a URL without user:password@ ({who_authenticates}), got {mask_url_password(str(value))!r}"
        )
    return _check_url(str(value))


def _check_redis_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if not re.match(r"^(redis|rediss|unix)://\S+$", str(value)):
        raise ValueError(
            "expected a Redis URL like redis://host:6379/0 (or rediss://, unix://), "
            f"got {mask_url_password(str(value))!r}"
        )
    return value


Cron = Annotated[str, Field(min_length=1)]
Seconds = Annotated[int, Field(ge=0)]
#: a cache TTL: at most the webhook's cap (cache.policy.MAX_TTL_S, 30 days)
TTLSeconds = Annotated[int, Field(ge=0, le=MAX_TTL_S)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Ratio = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --------------------------------------------------------------------------------------------
# sections


class BackoffSettings(_Model):
    """Retry waits for 429 and 5xx: ``min(max_s, base_s * factor**attempt)`` plus jitter."""

    base_s: PositiveSeconds = 0.5
    factor: Annotated[float, Field(ge=1)] = 2.0
    max_s: PositiveSeconds = 30.0
    jitter: Ratio = 0.1
    #: how long every process waits after a 429 (Airtable's penalty is 30 s)
    penalty_s: Annotated[float, Field(ge=0)] = 30.0


class AirtableSettings(_Model):
    token: SecretStr | None = None
    base_id: str | None = None
    endpoint_url: str | None = None
    timeout_s: PositiveSeconds = 30.0
    rate_limit_per_s: Annotated[int, Field(ge=1, le=50)] = 5
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    #: run against the sandbox (BESTSTAG_SANDBOX=1); needed when a base id is configured without a token
    sandbox: bool = False
    #: the token the sandbox accepts (only used in sandbox mode, or by `sandbox serve`)
    sandbox_token: SecretStr = SecretStr(SANDBOX_DEFAULT_TOKEN)
    #: file: the limit is shared by the processes of this host (a lock file under data_dir/locks);
    #: redis: by every host using the same Redis (sorted-set sliding window, one Lua script)
    limiter: Literal["file", "redis"] = "file"
    #: the limiter's Redis; None = cache.redis_url
    limiter_redis_url: str | None = None

    @field_validator("limiter_redis_url", mode="after")
    @classmethod
    def _limiter_url(cls, v: str | None) -> str | None:
        return _check_redis_url(v)

    @field_validator("token", mode="after")
    @classmethod
    def _empty_token_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            return None
        return v

    @field_validator("base_id", mode="after")
    @classmethod
    def _check_base_id(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not re.fullmatch(r"app[A-Za-z0-9]{14}", v):
            raise ValueError(f"expected a base id like appXXXXXXXXXXXXXX got {v!r}")
        return v

    @field_validator("endpoint_url", mode="after")
    @classmethod
    def _check_endpoint(cls, v: str | None) -> str | None:
        return _check_endpoint_url(v, "the token authenticates")


class TableSettings(_Model):
    #: Airtable table id (tbl...), optional: names work too, ids survive renames
    id: str | None = None
    #: cache TTL for this table; None = cache.default_ttl_s
    ttl_s: TTLSeconds | None = None
    #: query: cache each query's answer; mirror: keep the whole table locally; off: never cache
    cache_mode: Literal["query", "mirror", "off"] = "query"
    #: critical tables are backed up by the `critical` backup and get stricter alerts
    critical: bool = False

    @field_validator("cache_mode", mode="before")
    @classmethod
    def _bare_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false; take it as meant
        return "off" if v is False else v

    @field_validator("id", mode="after")
    @classmethod
    def _check_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"tbl[A-Za-z0-9]{14}", v):
            raise ValueError(f"expected a table id like tblXXXXXXXXXXXXXX, got {v!r}")
        return v


def _default_tables() -> dict[str, TableSettings]:
    return {
        T_USUARIOS: TableSettings(ttl_s=600, critical=True),
        T_INTERACOES: TableSettings(ttl_s=120, critical=True),
        T_TAREFAS: TableSettings(ttl_s=300),
        T_EVENTOS: TableSettings(ttl_s=300),
        T_MEMORIA: TableSettings(ttl_s=600),
        T_LOGS: TableSettings(ttl_s=60, cache_mode="off"),
        T_METRICAS: TableSettings(cache_mode="off"),
    }


class DynamicTTLSettings(_Model):
    """TTL that grows for often-read, rarely-written answers, inside [min_s, max_s]."""

    enabled: bool = True
    min_s: TTLSeconds = 60
    max_s: TTLSeconds = 1800

    @model_validator(mode="after")
    def _order(self) -> DynamicTTLSettings:
        if self.min_s > self.max_s:
            raise _KeyProblem(("min_s",), f"must be <= max_s ({self.max_s}), got {self.min_s}")
        return self


#: the spec's two hot queries (its "Teste 1" and "Teste 2")
DEFAULT_WARM: tuple[dict[str, Any], ...] = (
    {"table": "Usuários", "filters": {"status": "Ativo"}},
    {
        "table": "Interações",
        "filters": {"timestamp": {"operator": "date_after", "days": -7}},
        "fields": ["user", "message", "timestamp"],
        "sort": [{"field": "timestamp", "direction": "desc"}],
        "maxRecords": 50,
    },
)


class CacheSettings(_Model):
    default_ttl_s: TTLSeconds = 300
    #: how long past expiry an answer may still be served when Airtable is unavailable
    max_stale_s: Seconds = 3600
    size_limit_mb: Annotated[int, Field(ge=1)] = 256
    #: answers at least this big are stored compressed (0 = always, large = never)
    compress_min_bytes: Seconds = 4096
    dynamic_ttl: DynamicTTLSettings = Field(default_factory=DynamicTTLSettings)
    #: tables with cache_mode: mirror are mirrored only while they hold at most this many records
    mirror_max_records: Annotated[int, Field(ge=0)] = 2000
    #: cache only queries whose complexity score reaches this (0 = cache every query)
    selective_min_score: Annotated[float, Field(ge=0)] = 0.0
    #: on expiry, bring a table's answers up to date with one listing of its changes (and its ids)
    #: instead of refetching each answer; tables over mirror_max_records are refetched per answer
    revalidate: bool = True
    #: how often a revalidation also lists the table's ids to see deletions by other clients
    #: (0 = every time; other clients' deletions stay invisible at most this long)
    deletion_check_s: Seconds = 3600
    #: answers kept in memory by long-running processes (the webhook server); 0 = none
    lru_items: Annotated[int, Field(ge=0)] = 1000
    #: hot queries `beststag cache warm` loads (each in the webhook's JSON shape: table, filters, ...)
    warm: list[dict[str, Any]] = Field(default_factory=lambda: [dict(q) for q in DEFAULT_WARM])
    #: diskcache: one host (files under data_dir/cache); redis: shared by every host using redis_url
    backend: Literal["diskcache", "redis"] = "diskcache"
    #: redis://[:password@]host:6379/0 (env BESTSTAG_REDIS_URL wins); needed by backend: redis
    redis_url: str | None = None
    #: prefix of every cache key in Redis (deployments sharing one Redis use different prefixes)
    redis_prefix: Annotated[str, Field(min_length=1)] = "beststag:"

    @field_validator("redis_url", mode="after")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        return _check_redis_url(v)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> CacheSettings:
        if self.backend == "redis" and not self.redis_url:
            raise _KeyProblem(("redis_url",), "required with backend: redis (or set BESTSTAG_REDIS_URL)")
        return self


class RetentionPolicy(_Model):
    """Which backups to keep (borg-style; a backup kept by any rule stays). None = rule off."""

    keep_last: Annotated[int, Field(ge=0)] | None = None
    keep_hourly: Annotated[int, Field(ge=0)] | None = None
    keep_daily: Annotated[int, Field(ge=0)] | None = None
    keep_weekly: Annotated[int, Field(ge=0)] | None = None
    keep_monthly: Annotated[int, Field(ge=0)] | None = None
    #: keep everything newer than this: 12H, 2d, 3w, 6m, 1y
    keep_within: str | None = None

    @field_validator("keep_within", mode="after")
    @classmethod
    def _check_within(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @property
    def keep_within_delta(self) -> timedelta | None:
        return parse_duration(self.keep_within) if self.keep_within else None

    @model_validator(mode="after")
    def _not_empty(self) -> RetentionPolicy:
        rules = (self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly)
        if all(r in (None, 0) for r in rules) and not self.keep_within:
            raise ValueError("at least one keep_* rule is needed (or cleanup would delete every backup)")
        return self


class BackupTypeSettings(_Model):
    tables: list[str]
    schedule: Cron
    retention: RetentionPolicy

    @field_validator("schedule", mode="after")
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)

    @field_validator("tables", mode="after")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("expected at least one table")
        if len(set(v)) != len(v):
            raise ValueError(f"a table is listed twice: {v}")
        return v


class BackupTypes(_Model):
    incremental: BackupTypeSettings = Field(
        default_factory=lambda: BackupTypeSettings(
            tables=[T_USUARIOS, T_INTERACOES, T_TAREFAS, T_EVENTOS],
            schedule="0 0 * * *",
            retention=RetentionPolicy(keep_daily=14),
        )
    )
    complete: BackupTypeSettings = Field(
        default_factory=lambda: BackupTypeSettings(
            tables=list(BESTSTAG_TABLES),
            schedule="0 2 * * 0",
            retention=RetentionPolicy(keep_weekly=8, keep_monthly=6),
        )
    )
    critical: BackupTypeSettings = Field(
        default_factory=lambda: BackupTypeSettings(
            tables=[T_USUARIOS, T_INTERACOES],
            schedule="30 */4 * * *",
            retention=RetentionPolicy(keep_last=12, keep_daily=7),
        )
    )


class BackupSettings(_Model):
    #: where backups go; None = <data_dir>/backups (relative paths: against the config file)
    dir: Path | None = None
    compression: Literal["gzip", "zstd"] = "gzip"
    #: how many tables one run fetches at once (they share the 5 req/s limit of the base)
    parallel_tables: Annotated[int, Field(ge=1, le=16)] = 2
    #: incremental backups take records modified in the last N hours when no earlier run exists
    incremental_lookback_h: Annotated[int, Field(ge=1)] = 24
    #: download attachments (their URLs expire after about 2 h)
    attachments: bool = True
    types: BackupTypes = Field(default_factory=BackupTypes)
    #: off-site copy: s3://bucket/prefix (S3 or any S3-compatible store); credentials from the
    #: standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)
    remote: str | None = None
    #: the S3-compatible endpoint (MinIO, Ceph, R2, ...); None = AWS
    remote_endpoint_url: str | None = None
    #: the bucket's region; None = AWS_DEFAULT_REGION, else us-east-1
    remote_region: str | None = None
    #: the backup alert fires when the newest complete backup has had no passing `backup drill` this many
    #: hours after it finished (the weekly drill runs a few hours after the weekly complete backup)
    drill_max_age_h: Annotated[float, Field(gt=0)] = 48

    @field_validator("remote", mode="after")
    @classmethod
    def _check_remote(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?", str(v)):
            raise ValueError(f"expected s3://bucket or s3://bucket/prefix, got {v!r}")
        return str(v).rstrip("/")

    @field_validator("remote_endpoint_url", mode="after")
    @classmethod
    def _check_remote_endpoint(cls, v: str | None) -> str | None:
        # botocore would not use a user:password@ anyway: it sent requests to "user:pw@host" as a host name
        return _check_endpoint_url(v, "credentials come from the AWS_* variables")

    def of(self, backup_type: str) -> BackupTypeSettings:
        """Settings of one backup type (``incremental``, ``complete`` or ``critical``)."""
        if backup_type not in BACKUP_TYPES:
            known = ", ".join(BACKUP_TYPES)
            raise BadInput(f"unknown backup type {backup_type!r} (expected one of {known})")
        return typing.cast(BackupTypeSettings, getattr(self.types, backup_type))


class MetricSchedules(_Model):
    usage: Cron = "5 0 * * *"
    performance: Cron = "0 * * * *"
    storage: Cron = "0 3 * * 0"

    @field_validator("usage", "performance", "storage", mode="after")
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)


class MetricRanges(_Model):
    """The time range each scheduled collection covers (the spec's defaults)."""

    usage: TimeRange = "24h"
    performance: TimeRange = "1h"
    storage: TimeRange = "7d"


class MetricsSettings(_Model):
    #: Airtable table that `metrics collect --push` writes to (one of `tables`)
    table: str = T_METRICAS
    schedules: MetricSchedules = Field(default_factory=MetricSchedules)
    ranges: MetricRanges = Field(default_factory=MetricRanges)
    #: records allowed by the Airtable plan per base; storage usage = records / this
    plan_record_limit: Annotated[int, Field(ge=1)] = 50000
    #: journal rows older than this are pruned by `metrics archive`
    retention_days: Annotated[int, Field(ge=1)] = 90
    #: count records by sampling pages above this many records (0 = always count fully)
    sample_above_records: Annotated[int, Field(ge=0)] = 0
    #: the Prometheus textfile (written 0644); unset = <data_dir>/metrics/beststag.prom, which node_exporter
    #: cannot read through the 0700 data dir: point it at its textfile folder (--collector.textfile.directory)
    prometheus_path: Path | None = None

    @field_validator("prometheus_path", mode="before")
    @classmethod
    def _prom_path(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str | Path):
            return v  # pydantic says what type it expected
        p = Path(v).expanduser()
        if not p.is_absolute():
            # a system folder, not a place relative to wherever cron or the config file happens to be
            raise ValueError(
                f"expected an absolute path, got {str(v)!r} "
                "(e.g. /var/lib/node_exporter/textfile_collector/beststag.prom)"
            )
        if p.suffix != ".prom":
            raise ValueError(
                f"expected a file name ending in .prom, got {p.name!r} "
                "(node_exporter's textfile collector reads only *.prom files)"
            )
        return Path(os.path.normpath(p))


class BackupMaxAge(_Model):
    """Hours after which a backup type with no successful run counts as failed."""

    incremental: Annotated[float, Field(gt=0)] = 26
    complete: Annotated[float, Field(gt=0)] = 8 * 24
    critical: Annotated[float, Field(gt=0)] = 5


class BackupAlertRule(_Model):
    enabled: bool = True
    #: fire after this many consecutive failed runs of one type
    consecutive_failures: Annotated[int, Field(ge=1)] = 1
    max_age_h: BackupMaxAge = Field(default_factory=BackupMaxAge)


class AlertsSettings(_Model):
    cache_hit_ratio_min: Ratio = 0.60
    response_time_max_s: PositiveSeconds = 5.0
    error_rate_max: Ratio = 0.05
    storage_usage_max: Ratio = 0.80
    backup_failure: BackupAlertRule = Field(default_factory=BackupAlertRule)
    #: the window alerts are evaluated over when `metrics alerts` gets no --range
    range: TimeRange = "1h"
    #: ratio alerts stay quiet below this many samples in the window
    min_samples: Annotated[int, Field(ge=0)] = 20
    #: webhooks (e.g. n8n) that receive a JSON POST when an alert starts or stops firing
    notify_urls: list[str] = Field(default_factory=list)
    #: minimum time between two notifications of the same alert
    cooldown_s: Seconds = 3600

    @field_validator("notify_urls", mode="after")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_check_url(u) for u in v]


class JobSchedules(_Model):
    """Cron schedules of the maintenance jobs (backups and collections have theirs in their sections)."""

    alerts: Cron = "*/15 * * * *"
    cache_prune: Cron = "20 * * * *"
    #: takes the backups' lock: keep it clear of every backup's start
    backup_cleanup: Cron = "15 3 * * *"
    metrics_archive: Cron = "40 4 1 * *"
    #: a no-op while the change feed is off; Airtable's webhooks expire 7 days after their last refresh
    feed_refresh: Cron = "50 4 * * *"
    #: `backup drill latest --type complete`: weekly, after Sunday's complete backup (takes no backup lock)
    backup_drill: Cron = "30 5 * * 0"

    @field_validator(
        "alerts", "cache_prune", "backup_cleanup", "metrics_archive", "feed_refresh", "backup_drill", mode="after"
    )
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)


class JobPings(_Model):
    """Healthchecks-style URLs a job calls when it starts, succeeds or fails (each optional).

    ``url`` is a shorthand for healthchecks.io: start = ``url/start``, success = ``url``,
    fail = ``url/fail``, each with ``?rid=<run id>``. ``start``/``success``/``fail`` override it
    and may use ``{job}``, ``{run_id}`` and ``{exit_code}``.
    """

    url: str | None = None
    start: str | None = None
    success: str | None = None
    fail: str | None = None

    @field_validator("url", "start", "success", "fail", mode="after")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else _check_url(v)


class JobsSettings(_Model):
    schedules: JobSchedules = Field(default_factory=JobSchedules)
    #: job name -> its ping URLs (names: see JOB_NAMES / `beststag schedule show`)
    pings: dict[str, JobPings] = Field(default_factory=dict)
    #: one ping never holds a job longer than this (a failed ping is logged, never fails the job)
    ping_timeout_s: PositiveSeconds = 5.0
    ping_retries: Annotated[int, Field(ge=0, le=5)] = 1

    @field_validator("pings", mode="after")
    @classmethod
    def _known_jobs(cls, v: dict[str, JobPings]) -> dict[str, JobPings]:
        from beststag_cli.names import suggest

        for name in v:
            if name not in JOB_NAMES:
                close = suggest(name, list(JOB_NAMES))
                hint = f"; did you mean {close!r}?" if close else ""
                raise ValueError(f"unknown job {name!r} (known: {', '.join(JOB_NAMES)}){hint}")
        return v


class WebhookSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8787
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    #: bearer secret n8n sends; set it with BESTSTAG_WEBHOOK_SECRET rather than in the file
    secret: SecretStr | None = None


class FeedSettings(_Model):
    """The change feed (Airtable's webhooks; beststag_cli/feed/)."""

    #: where Airtable pings when there are payloads (`beststag serve`'s /webhook/airtable/notify, reachable
    #: from the internet); none: the feed is polled (`beststag feed pull`, or `serve`'s loop every poll_s)
    notification_url: str | None = None
    #: `serve` pulls every poll_s while the feed is on and has no notification_url (0: no loop, cron only);
    #: pings' pulls are poll_s apart at least; covered tables skip revalidation's listing while the feed
    #: was pulled within 2 × poll_s + 1 s
    poll_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    #: at most this many pages of 50 payloads a pull; a longer backlog is a gap until the next pull
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 40
    #: refresh the webhook when it expires within this (Airtable's webhooks live 7 days)
    refresh_before_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 2 * 86400
    #: the feed alert fires when the feed has been broken for longer than this
    max_gap_s: Annotated[float, Field(gt=0)] = 3600.0


class LoggingSettings(_Model):
    #: level of the JSON-lines file (the console follows --quiet/-v)
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: Annotated[int, Field(ge=1024)] = 5 * 1024 * 1024
    backups: Annotated[int, Field(ge=0)] = 5


class Settings(_Model):
    airtable: AirtableSettings = Field(default_factory=AirtableSettings)
    data_dir: Path = Path("var")
    tables: dict[str, TableSettings] = Field(default_factory=_default_tables)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_not_empty(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("expected a folder path, got an empty value")
        return v

    @field_validator("tables", mode="after")
    @classmethod
    def _tables_not_empty(cls, v: dict[str, TableSettings]) -> dict[str, TableSettings]:
        if not v:
            raise ValueError("expected at least one table")
        for name in v:
            if not name.strip():
                raise ValueError("a table name is empty")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        known = list(self.tables)
        for btype in BACKUP_TYPES:
            for i, name in enumerate(self.backup.of(btype).tables):
                if name not in self.tables:
                    raise _KeyProblem(("backup", "types", btype, "tables", i), _unknown_table_message(name, known))
        if self.metrics.table not in self.tables:
            raise _KeyProblem(("metrics", "table"), _unknown_table_message(self.metrics.table, known))
        if self.airtable.limiter == "redis" and not (self.airtable.limiter_redis_url or self.cache.redis_url):
            raise _KeyProblem(
                ("airtable", "limiter_redis_url"), "required with limiter: redis when cache.redis_url is not set"
            )
        # Identity defaults depend on sandbox mode; filling them here keeps `Settings()` usable.
        if self.airtable.token is None:
            if self.airtable.base_id is None:
                self.airtable.base_id = SANDBOX_BASE_ID
            if self.airtable.endpoint_url is None:
                self.airtable.endpoint_url = SANDBOX_ENDPOINT_URL
        elif self.airtable.endpoint_url is None:
            self.airtable.endpoint_url = AIRTABLE_ENDPOINT_URL
        return self

    # ---- derived values

    @property
    def sandbox_mode(self) -> bool:
        """True when no Airtable token is configured: requests go to the in-process sandbox."""
        return self.airtable.token is None

    @property
    def config_path(self) -> Path | None:
        """The file these settings came from (None: built-in defaults)."""
        return self._source

    @property
    def paths(self) -> Paths:
        return Paths.from_data_dir(self.data_dir, self.backup.dir, prom_file=self.metrics.prometheus_path)

    @property
    def base_id(self) -> str | None:
        return self.airtable.base_id

    @property
    def endpoint_url(self) -> str:
        return self.airtable.endpoint_url or (SANDBOX_ENDPOINT_URL if self.sandbox_mode else AIRTABLE_ENDPOINT_URL)

    def api_token(self) -> str:
        """The bearer token to send: the Airtable token, or the sandbox token in sandbox mode."""
        tok = self.airtable.token if self.airtable.token is not None else self.airtable.sandbox_token
        return tok.get_secret_value()

    def secrets(self) -> list[str]:
        """Every configured secret value (for log redaction); empty strings left out.

        Which settings are secret is `settings_sources.SECRET_SETTINGS` (the snapshot leaves out the same ones).
        """
        return secret_values(self.model_dump())

    @property
    def limiter_redis_url(self) -> str | None:
        """The Redis the shared rate limiter uses (its own URL, else the cache's)."""
        return self.airtable.limiter_redis_url or self.cache.redis_url

    def table(self, name: str) -> TableSettings:
        """Settings of one table; raises :class:`UnknownTable` for a name not in `tables`."""
        from beststag_cli.errors import UnknownTable

        try:
            return self.tables[name]
        except KeyError:
            raise UnknownTable(_unknown_table_message(name, list(self.tables))) from None

    def ttl_for(self, table: str) -> int:
        """The TTL of a table's cached answers (its ``ttl_s``, else ``cache.default_ttl_s``)."""
        t = self.tables.get(table)
        return t.ttl_s if t is not None and t.ttl_s is not None else self.cache.default_ttl_s


def _unknown_table_message(name: str, known: list[str]) -> str:
    from beststag_cli.names import suggest

    close = suggest(name, known)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown table {name!r} (known: {', '.join(known)}){hint}"


# --------------------------------------------------------------------------------------------
# loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping (YAML would keep the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def find_config_file(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file the search order (`settings_sources.find_config_file`) picks, or None for defaults.

    :raises ConfigError: when an explicit path or ``$BESTSTAG_CONFIG`` names a missing file.
    """
    try:
        return _find_config_file(path, env)
    except MissingConfigFile as e:
        raise ConfigError(
            f"{_show(e.path)}: config file not found (given with {e.named_by})"
            if e.named_by == "--config"
            else f"{_show(e.path)}: config file not found (named by {e.named_by})"
        ) from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings: the file the search order finds (or defaults), then env overrides.

    :param path: explicit config file (``--config``); must exist.
    :param env: environment to read overrides from (default ``os.environ``).
    :raises ConfigError: one line naming the file (or env var), the key path and what is expected.
    """
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    raw: dict[str, Any]
    if file is None:
        raw = {}
        base_dir = Path.cwd()
        source_name = "built-in defaults"
    else:
        raw = _read_yaml(file)
        base_dir = file.resolve().parent
        source_name = _show(file)

    env_locs: dict[tuple[str, ...], str] = {}
    for override, value in env_overrides(env):
        _set_in(raw, override.path, value, source_name)
        env_locs[override.path] = override.var

    # Paths: file values resolve against the file's folder, env values against the cwd (one rule,
    # shared with the snapshot path); an unusable value is left for the model to reject.
    data_dir = resolve_data_dir(raw, from_env=env_locs.get(("data_dir",)) == ENV_DATA_DIR, base_dir=base_dir)
    if data_dir is not None:
        raw["data_dir"] = data_dir
    backup = raw.get("backup")
    if isinstance(backup, dict) and isinstance(backup.get("dir"), str | Path) and str(backup["dir"]):
        backup["dir"] = resolve_path(backup["dir"], base_dir)

    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source_name, env_locs)) from None
    except _KeyProblem as exc:  # pragma: no cover - pydantic wraps these; kept as a safety net
        raise ConfigError(f"{source_name}: {_dotted(exc.loc)}: {exc.message}") from None
    _check_mode(settings)
    settings._source = file.resolve() if file is not None else None
    return settings


def _check_mode(settings: Settings) -> None:
    """Refuse a token / base id / sandbox combination that is not one clear mode (exit 2, one line)."""
    air = settings.airtable
    # the base id as configured: sandbox mode fills in the sample base's id, which is never a problem
    problem = mode_problem(token=air.token is not None, base_id=air.base_id, sandbox=air.sandbox)
    if problem is not None:
        raise ConfigError(problem[0], hint=problem[1])


def default_settings(data_dir: str | Path = "var") -> Settings:
    """Built-in defaults with ``data_dir`` resolved against the working directory (no env)."""
    return Settings.model_validate({"data_dir": resolve_path(data_dir, Path.cwd())})


def _show(p: Path) -> str:
    """A file name as users want to read it: relative to the cwd when inside it."""
    try:
        rel = os.path.relpath(p.absolute(), Path.cwd())
    except ValueError:
        return str(p)
    return str(p.absolute()) if rel.startswith("..") else rel


def _read_yaml(file: Path) -> dict[str, Any]:
    name = _show(file)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the config file: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{name}: {where}invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {_one_line(str(exc))}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of sections at the top level, got {_kind(data)}")
    return data


def _set_in(raw: dict[str, Any], loc: tuple[str, ...], value: str, source_name: str) -> None:
    cur = raw
    for i, key in enumerate(loc[:-1]):
        nxt = cur.get(key)
        if nxt is None:
            nxt = cur[key] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(
                f"{source_name}: {_dotted(loc[: i + 1])}: expected a mapping (key: value lines), got {_kind(nxt)}"
            )
        cur = nxt
    cur[loc[-1]] = value


# ---- turning pydantic's errors into one line


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{value!r}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unit(loc: tuple[str | int, ...]) -> str:
    last = str(loc[-1]) if loc else ""
    if last.endswith("_s") or last == "cooldown_s":
        return " number of seconds"
    if last.endswith("_mb"):
        return " number of megabytes"
    if last.endswith("_bytes"):
        return " number of bytes"
    if last.endswith("_h"):
        return " number of hours"
    if last.endswith("_days"):
        return " number of days"
    return ""


def _unwrap(annotation: Any) -> Any:
    """The model class (or dict/list element model) behind an annotation, if any."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _unwrap(arg)
    return annotation


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model found at a key path of Settings (to list the keys it allows)."""
    cur: Any = Settings
    for part in loc:
        cur = _unwrap(cur)
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            field = cur.model_fields.get(str(part))
            if field is None:
                return None
            cur = field.annotation
        elif typing.get_origin(cur) in (dict, list):
            cur = typing.get_args(cur)[-1]
        else:
            return None
    cur = _unwrap(cur)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _expectation(err: Mapping[str, Any]) -> str:
    etype: str = err["type"]
    loc: tuple[str | int, ...] = tuple(err["loc"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    unit = _unit(loc)
    if etype in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer{unit}"
    if etype in ("float_parsing", "float_type"):
        return f"expected a{unit}" if unit else "expected a number"
    if etype in ("bool_parsing", "bool_type"):
        return "expected true or false"
    if etype in ("string_type", "path_type"):
        return "expected a text value"
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping (key: value lines)"
    if etype in ("list_type", "tuple_type"):
        return "expected a list"
    if etype == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le"))
        return f"expected a value {op[etype]} {bound}"
    if etype == "string_too_short":
        return "expected a non-empty value"
    if etype == "missing":
        return "required key is missing"
    if etype == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        msg = "unknown key"
        if close:
            msg += f"; did you mean {close[0]!r}?"
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
        return msg
    if etype == "value_error":
        error = ctx.get("error")
        return str(getattr(error, "message", None) or error or err.get("msg", "invalid value"))
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _format_validation_error(exc: ValidationError, source_name: str, env_locs: Mapping[tuple[str, ...], str]) -> str:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc: tuple[str | int, ...] = tuple(err["loc"])
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _KeyProblem):
        loc = loc + ctx_error.loc
    expected = _one_line(_expectation(err))
    got = ""
    secret = is_secret_path(loc)
    if secret and isinstance(err.get("input"), str) and err["input"]:
        # a validator's message may quote the value (a bad ping URL): its key must not reach stderr
        expected = expected.replace(repr(err["input"]), "a value that is not shown (secret)")
    if err["type"] not in ("missing", "extra_forbidden", "value_error"):
        value = err.get("input")
        if secret:
            got = ", got a value that is not shown (secret)"
        elif not isinstance(value, dict | list) and value is not None:
            shown = repr(value)
            got = f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        elif value is not None:
            got = f", got {_kind(value)}"
    where = source_name
    env_var = env_locs.get(tuple(str(p) for p in loc))
    if env_var is not None:
        where = f"environment variable {env_var}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {_dotted(loc)}: {expected}{got}{more}"
